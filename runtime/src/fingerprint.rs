//! SQL fingerprints: a statement with its literals, placeholders, `IN (...)` lists and `VALUES` lists
//! normalised away, so that `SELECT * FROM items WHERE id = 7` and `... id = 8` are the same query.
//!
//! The normaliser streams tokens into a sink: hashing (no allocation, on every query) and text (only when a
//! fingerprint has to be shown) share one code path, so they always agree.

/// What the normaliser writes normalised tokens to.
trait Sink {
    fn token(&mut self, text: &str);
}

/// A multiply-rotate hash over the normalised tokens, eight bytes at a time (a per-byte hash is a chain of
/// dependent multiplies: several times slower on a typical statement). Each token ends with its length, so
/// token boundaries count.
struct Hasher(u64);

impl Hasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Sink for Hasher {
    #[inline]
    fn token(&mut self, text: &str) {
        let mut chunks = text.as_bytes().chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        self.mix(u64::from_le_bytes(word));
        self.mix(text.len() as u64);
    }
}

struct Text(String);

impl Sink for Text {
    fn token(&mut self, text: &str) {
        let glue = matches!(text, "," | ")" | ".") || self.0.ends_with('(') || self.0.ends_with('.');
        if !self.0.is_empty() && !glue {
            self.0.push(' ');
        }
        self.0.push_str(text);
    }
}

/// The 64-bit fingerprint of a statement.
///
/// Applications run the same statement text again and again (placeholders, prepared statements), so the
/// result is cached per thread by a hash of the raw text: a repeated statement costs one pass of a fast
/// hasher instead of a normalisation. The cache is small and direct-mapped (no allocation, bounded).
pub(crate) fn hash(sql: &str) -> u64 {
    use std::hash::BuildHasher;
    const KEY_STATE: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x9e37_79b9_7f4a_7c15);
    const SLOTS: usize = 64;
    thread_local! {
        static CACHE: [std::cell::Cell<(u64, u64)>; SLOTS] = const { [const { std::cell::Cell::new((0, 0)) }; SLOTS] };
    }
    // The key only has to tell raw texts apart (a 64-bit collision would give one statement the other's
    // fingerprint): foldhash reads 16 bytes per folded multiply, in two independent chains on long inputs.
    let key = KEY_STATE.hash_one(sql) | 1; // never 0, the empty slot
    let slot = (key >> 7) as usize % SLOTS;
    let cached = CACHE.try_with(|cache| {
        let (stored, fingerprint) = cache[slot].get();
        (stored == key).then_some(fingerprint)
    });
    if let Ok(Some(fingerprint)) = cached {
        return fingerprint;
    }
    let fingerprint = normalized_hash(sql);
    let _ = CACHE.try_with(|cache| cache[slot].set((key, fingerprint)));
    fingerprint
}

fn normalized_hash(sql: &str) -> u64 {
    let mut hasher = Hasher(0xcbf2_9ce4_8422_2325);
    normalize(sql, &mut hasher);
    hasher.0
}

/// The normalised text of a statement, as shown in N+1 warnings and test failures.
///
/// ```
/// assert_eq!(
///     observe::query::fingerprint("SELECT * FROM items WHERE order_id = 42 AND sku IN ('a', 'b', 'c')"),
///     "SELECT * FROM items WHERE order_id = ? AND sku IN (...)"
/// );
/// ```
pub fn fingerprint(sql: &str) -> String {
    let mut text = Text(String::with_capacity(sql.len()));
    normalize(sql, &mut text);
    text.0
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Word,
    /// A number, string, placeholder (`?`, `$1`, `:name`, `@p1`), `TRUE`/`FALSE`/`NULL`.
    Value,
    Open,
    Close,
    Comma,
    Other,
}

#[derive(Clone)]
struct Tokens<'a> {
    sql: &'a str,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn new(sql: &'a str) -> Tokens<'a> {
        Tokens { sql, pos: 0 }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = (Kind, &'a str);

    fn next(&mut self) -> Option<(Kind, &'a str)> {
        let bytes = self.sql.as_bytes();
        loop {
            // Skip white space and comments.
            while self.pos < bytes.len() && bytes[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if bytes[self.pos..].starts_with(b"--") {
                while self.pos < bytes.len() && bytes[self.pos] != b'\n' {
                    self.pos += 1;
                }
                continue;
            }
            if bytes[self.pos..].starts_with(b"/*") {
                self.pos = match self.sql[self.pos + 2..].find("*/") {
                    Some(end) => self.pos + 2 + end + 2,
                    None => bytes.len(),
                };
                continue;
            }
            break;
        }
        if self.pos >= bytes.len() {
            return None;
        }
        let start = self.pos;
        let b = bytes[start];
        fn take_while(bytes: &[u8], pos: &mut usize, f: impl Fn(u8) -> bool) {
            while *pos < bytes.len() && f(bytes[*pos]) {
                *pos += 1;
            }
        }
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
        let kind = match b {
            b'\'' | b'"' | b'`' => {
                // A quoted string ('...', with '' escapes) is a value; a quoted identifier ("..", `..`) a word.
                let quote = b;
                self.pos += 1;
                loop {
                    match bytes[self.pos..].iter().position(|&c| c == quote) {
                        Some(i) => {
                            self.pos += i + 1;
                            if self.pos < bytes.len() && bytes[self.pos] == quote {
                                self.pos += 1;
                                continue;
                            }
                        }
                        None => self.pos = bytes.len(),
                    }
                    break;
                }
                if quote == b'\'' {
                    Kind::Value
                } else {
                    Kind::Word
                }
            }
            b'0'..=b'9' => {
                take_while(bytes, &mut self.pos, |c| {
                    c.is_ascii_alphanumeric() || c == b'.' || c == b'_'
                });
                Kind::Value
            }
            b'.' if bytes.get(start + 1).is_some_and(u8::is_ascii_digit) => {
                self.pos += 1;
                take_while(bytes, &mut self.pos, |c| c.is_ascii_alphanumeric() || c == b'.');
                Kind::Value
            }
            b'?' => {
                self.pos += 1;
                take_while(bytes, &mut self.pos, |c| c.is_ascii_digit());
                Kind::Value
            }
            b'$' | b'@' if bytes.get(start + 1).is_some_and(|&c| ident(c)) => {
                self.pos += 1;
                take_while(bytes, &mut self.pos, ident);
                Kind::Value
            }
            b':' if bytes
                .get(start + 1)
                .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_') =>
            {
                self.pos += 1;
                take_while(bytes, &mut self.pos, ident);
                Kind::Value
            }
            b'(' => {
                self.pos += 1;
                Kind::Open
            }
            b')' => {
                self.pos += 1;
                Kind::Close
            }
            b',' => {
                self.pos += 1;
                Kind::Comma
            }
            c if ident(c) => {
                take_while(bytes, &mut self.pos, ident);
                let word = &self.sql[start..self.pos];
                if ["true", "false", "null"].iter().any(|k| word.eq_ignore_ascii_case(k)) {
                    Kind::Value
                } else {
                    Kind::Word
                }
            }
            _ => {
                // One character, or one of the multi-character operators.
                let rest = &self.sql[start..];
                let len = ["->>", "<=", ">=", "<>", "!=", "::", "||", "->", "<<", ">>"]
                    .iter()
                    .find(|op| rest.starts_with(**op))
                    .map_or_else(|| rest.chars().next().map_or(1, char::len_utf8), |op| op.len());
                self.pos += len;
                Kind::Other
            }
        };
        Some((kind, &self.sql[start..self.pos]))
    }
}

/// If `tokens` starts right after an `(`, and the group holds only values, commas and signs, skips past its
/// closing `)` and returns true.
fn skip_value_group(tokens: &mut Tokens<'_>) -> bool {
    let mut ahead = tokens.clone();
    let mut values = 0;
    for (kind, text) in ahead.by_ref() {
        match kind {
            Kind::Value => values += 1,
            Kind::Comma => {}
            Kind::Other if text == "-" || text == "+" => {}
            Kind::Close => {
                if values == 0 {
                    return false;
                }
                *tokens = ahead;
                return true;
            }
            _ => return false,
        }
    }
    false
}

fn normalize(sql: &str, sink: &mut impl Sink) {
    let mut tokens = Tokens::new(sql);
    let mut previous_word_in_or_values = false;
    let mut in_values = false;
    let mut last = Kind::Other;
    while let Some((kind, text)) = tokens.next() {
        match kind {
            Kind::Value => {
                // A sign in front of a number is part of the value: `= -1` and `= 1` are one query.
                sink.token("?");
            }
            Kind::Open if previous_word_in_or_values => {
                if skip_value_group(&mut tokens) {
                    sink.token("(...)");
                    if in_values {
                        // `VALUES (..), (..), (..)`: the following groups are the same shape.
                        loop {
                            let mut ahead = tokens.clone();
                            if ahead.next().map(|t| t.0) == Some(Kind::Comma)
                                && ahead.next().map(|t| t.0) == Some(Kind::Open)
                                && skip_value_group(&mut ahead)
                            {
                                tokens = ahead;
                            } else {
                                break;
                            }
                        }
                    }
                } else {
                    sink.token("(");
                }
            }
            Kind::Word => {
                if text.eq_ignore_ascii_case("in") || text.eq_ignore_ascii_case("values") {
                    in_values = text.eq_ignore_ascii_case("values");
                    sink.token(&text.to_ascii_uppercase_small());
                    previous_word_in_or_values = true;
                    last = kind;
                    continue;
                }
                sink.token(text);
            }
            Kind::Open => sink.token("("),
            Kind::Close => sink.token(")"),
            Kind::Comma => sink.token(","),
            Kind::Other => {
                if (text == "-" || text == "+") && last != Kind::Value && last != Kind::Word && last != Kind::Close {
                    if let Some((Kind::Value, _)) = tokens.clone().next() {
                        // Unary sign: dropped, the value that follows becomes `?`.
                        last = kind;
                        continue;
                    }
                }
                sink.token(text);
            }
        }
        previous_word_in_or_values = false;
        last = kind;
    }
}

trait UpperSmall {
    fn to_ascii_uppercase_small(&self) -> SmallUpper;
}

/// `IN` / `VALUES` uppercased without allocating.
struct SmallUpper {
    buf: [u8; 6],
    len: usize,
}

impl std::ops::Deref for SmallUpper {
    type Target = str;
    fn deref(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl UpperSmall for str {
    fn to_ascii_uppercase_small(&self) -> SmallUpper {
        let mut buf = [0u8; 6];
        let len = self.len().min(6);
        for (slot, b) in buf.iter_mut().zip(self.bytes()) {
            *slot = b.to_ascii_uppercase();
        }
        SmallUpper { buf, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_placeholders_become_question_marks() {
        for (sql, expected) in [
            ("SELECT * FROM t WHERE id = 7", "SELECT * FROM t WHERE id = ?"),
            ("select * from t where id = $1", "select * from t where id = ?"),
            (
                "SELECT * FROM t WHERE name = 'O''Brien' AND x = -3.5e2",
                "SELECT * FROM t WHERE name = ? AND x = ?",
            ),
            (
                "SELECT * FROM t WHERE a = :name AND b = @p1 AND c = ?",
                "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?",
            ),
            (
                "SELECT * FROM t WHERE flag = TRUE AND v IS NULL",
                "SELECT * FROM t WHERE flag = ? AND v IS ?",
            ),
            ("SELECT \"id\", `name` FROM \"t\"", "SELECT \"id\", `name` FROM \"t\""),
            (
                "SELECT a::text FROM t -- trailing\n WHERE /* c */ b = 1",
                "SELECT a :: text FROM t WHERE b = ?",
            ),
            ("SELECT t.id FROM t", "SELECT t.id FROM t"),
        ] {
            assert_eq!(fingerprint(sql), expected, "{sql}");
        }
    }

    #[test]
    fn in_and_values_lists_collapse() {
        assert_eq!(
            fingerprint("SELECT * FROM t WHERE id IN (1, 2, 3, 4)"),
            fingerprint("SELECT * FROM t WHERE id in ($1,$2)")
        );
        assert_eq!(
            fingerprint("SELECT * FROM t WHERE id IN (1, 2)"),
            "SELECT * FROM t WHERE id IN (...)"
        );
        assert_eq!(
            fingerprint("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')"),
            "INSERT INTO t (a, b) VALUES (...)"
        );
        assert_eq!(
            fingerprint("INSERT INTO t (a, b) values (?, ?)"),
            "INSERT INTO t (a, b) VALUES (...)"
        );
        // A subquery after IN is kept.
        assert_eq!(
            fingerprint("SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE x = 1)"),
            "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE x = ?)"
        );
    }

    #[test]
    fn cached_and_fresh_hashes_agree() {
        for sql in [
            "SELECT 1",
            "SELECT * FROM t WHERE id = 7",
            "INSERT INTO t VALUES (1, 2), (3, 4)",
        ] {
            assert_eq!(hash(sql), normalized_hash(sql));
            assert_eq!(hash(sql), normalized_hash(sql), "second call, from the cache");
        }
    }

    #[test]
    fn hash_agrees_with_text() {
        let pairs = [
            (
                "SELECT * FROM items WHERE order_id = 1",
                "SELECT *   FROM items WHERE order_id = 99",
            ),
            ("SELECT * FROM t WHERE id IN (1,2,3)", "SELECT * FROM t WHERE id IN (4)"),
        ];
        for (a, b) in pairs {
            assert_eq!(fingerprint(a), fingerprint(b));
            assert_eq!(hash(a), hash(b));
        }
        assert_ne!(hash("SELECT a FROM t"), hash("SELECT b FROM t"));
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for sql in [
            "",
            "'",
            "\"",
            "/*",
            "--",
            "(",
            ")",
            "IN (",
            "VALUES (1,",
            "é€😀",
            "$",
            "?",
            ":",
            "@",
            ".",
            ". 5",
            "IN ((1))",
            "''''",
        ] {
            let _ = fingerprint(sql);
            let _ = hash(sql);
        }
    }
}
