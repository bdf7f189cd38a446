//! Log output: every event written inside a scope carries the scope's trace ID.
//!
//! [`layer()`] is a `tracing-subscriber` formatting layer; [`init`](crate::init) installs it for you. Two
//! formats, chosen with `OBSERVE_LOG` or [`Config::log_format`](crate::Config::log_format):
//!
//! - `pretty` (the default): `2026-11-24T23:41:15.123456Z  INFO trace_id=4bf9…4736 shop::orders: loaded order id=7`
//! - `json`: one object a line, `trace_id` a top-level field:
//!   `{"timestamp":"…","level":"INFO","target":"shop::orders","trace_id":"4bf9…4736","scope":"shop::orders::get_order","id":7,"message":"loaded order"}`
//!
//! Events outside any scope simply have no trace ID. `log` records are forwarded by [`init`](crate::init) and
//! formatted the same way.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::scope::{current_site, current_trace_id};

/// The log line format.
///
/// ```
/// let config = observe::Config::default().log_format(observe::LogFormat::Json);
/// # drop(config);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines with `trace_id=<hex>` after the level. The default.
    #[default]
    Pretty,
    /// One JSON object a line with `trace_id` and `scope` as top-level fields.
    Json,
}

impl LogFormat {
    pub(crate) fn parse(text: &str) -> Option<LogFormat> {
        match text.trim().to_ascii_lowercase().as_str() {
            "pretty" | "text" | "" => Some(LogFormat::Pretty),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    /// The format named by `OBSERVE_LOG` (`pretty` when unset or not recognised).
    pub(crate) fn from_env() -> LogFormat {
        std::env::var("OBSERVE_LOG")
            .ok()
            .and_then(|v| LogFormat::parse(&v))
            .unwrap_or_default()
    }
}

/// The event formatter behind [`layer()`]: puts the current scope's trace ID on every event.
///
/// Use it directly with `tracing_subscriber::fmt().event_format(..)` if you build your own fmt layer.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(tracing_subscriber::fmt::layer().event_format(observe::EventFormat::new(observe::LogFormat::Json)));
/// # drop(subscriber);
/// ```
#[derive(Debug, Clone)]
pub struct EventFormat {
    format: LogFormat,
}

impl EventFormat {
    /// A formatter writing `format`.
    ///
    /// ```
    /// let format = observe::EventFormat::new(observe::LogFormat::Pretty);
    /// # drop(format);
    /// ```
    pub fn new(format: LogFormat) -> EventFormat {
        EventFormat { format }
    }
}

impl<S, N> FormatEvent<S, N> for EventFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        match self.format {
            LogFormat::Pretty => format_pretty(ctx, writer, event),
            LogFormat::Json => format_json(ctx, writer, event),
        }
    }
}

fn format_pretty<S, N>(ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let normalized = event.normalized_metadata();
    let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
    let ansi = writer.has_ansi_escapes();
    if ansi {
        writer.write_str("\x1b[2m")?;
    }
    SystemTime.format_time(&mut writer)?;
    if ansi {
        writer.write_str("\x1b[0m")?;
    }
    let level = *meta.level();
    if ansi {
        write!(writer, " {}{:>5}\x1b[0m", level_color(level), level.as_str())?;
    } else {
        write!(writer, " {:>5}", level.as_str())?;
    }
    if let Some(id) = line_trace_id() {
        write!(writer, " trace_id={id}")?;
    }
    writer.write_char(' ')?;
    if let Some(scope) = ctx.event_scope() {
        for span in scope.from_root() {
            write!(writer, "{}", span.name())?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                if !fields.is_empty() {
                    write!(writer, "{{{fields}}}")?;
                }
            }
            writer.write_str(": ")?;
        }
    }
    write!(writer, "{}: ", meta.target())?;
    // The event's fields through our own escaping visitor, whatever field formatter the layer has: a value
    // cannot start a line of its own.
    let mut visitor = EscapingVisitor::new(writer.by_ref());
    event.record(&mut visitor);
    visitor.result?;
    writeln!(writer)
}

/// Writes into `W` with every control character escaped (`\n`, `\r`, `\u{1b}`, ...), and the Unicode line and
/// paragraph separators: whatever a field value holds, it stays on its line and cannot colour the terminal.
struct Escaped<W>(W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(|c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}') {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// The fields of a pretty line: the message first, then `name=value`, each value escaped ([`Escaped`]).
/// (`log` records' `log.*` metadata fields are left out: the line already shows their target.)
struct EscapingVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl<'w> EscapingVisitor<'w> {
    fn new(writer: Writer<'w>) -> EscapingVisitor<'w> {
        EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        }
    }

    fn separate(&mut self) -> fmt::Result {
        if std::mem::replace(&mut self.first, false) {
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            // Quoted, as tracing's own formatter writes text.
            self.record_debug(field, &value);
        }
    }

    /// An error as tracing's own formatter writes it: its message, then its causes (`err.sources=[..]`).
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
        if self.result.is_err() {
            return;
        }
        let mut source = value.source();
        if source.is_none() {
            return;
        }
        let name = field.name();
        self.result = write!(self.writer, " {}.sources=[", name.strip_prefix("r#").unwrap_or(name)).and_then(|()| {
            let mut first = true;
            while let Some(cause) = source {
                if !std::mem::replace(&mut first, false) {
                    self.writer.write_str(", ")?;
                }
                write!(Escaped(&mut self.writer), "{cause}")?;
                source = cause.source();
            }
            self.writer.write_char(']')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        self.result = self.separate().and_then(|()| {
            if name != "message" {
                write!(self.writer, "{}=", name.strip_prefix("r#").unwrap_or(name))?;
            }
            write!(Escaped(&mut self.writer), "{value:?}")
        });
    }
}

/// tracing-subscriber's field formatter for pretty lines, with every value escaped ([`Escaped`]): used for
/// the fields of spans (the events' go through [`EscapingVisitor`] whatever the formatter).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor::new(writer);
        fields.record(&mut visitor);
        visitor.result
    }
}

/// The trace ID of a line: the current scope's or, on a thread that runs work for a scope without being inside
/// it (sqlx's SQLite worker), that scope's.
fn line_trace_id() -> Option<crate::TraceId> {
    let id = current_trace_id();
    #[cfg(feature = "sqlx")]
    let id = id.or_else(crate::sqlx_carrier::entered_trace_id);
    id
}

/// The scope of a line, found as its trace ID is.
fn line_site() -> Option<&'static crate::Site> {
    let site = current_site();
    #[cfg(feature = "sqlx")]
    let site = site.or_else(crate::sqlx_carrier::entered_site);
    site
}

fn level_color(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    }
}

/// Keys the JSON format writes itself; an event field with one of these names is written as `field.<name>`.
const RESERVED: [&str; 7] = ["timestamp", "level", "target", "trace_id", "scope", "message", "spans"];

fn format_json<S, N>(ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let normalized = event.normalized_metadata();
    let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
    let mut line = String::with_capacity(256);
    let mut timestamp = String::with_capacity(32);
    SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
    line.push_str("{\"timestamp\":");
    push_json_str(&mut line, &timestamp);
    line.push_str(",\"level\":");
    push_json_str(&mut line, meta.level().as_str());
    line.push_str(",\"target\":");
    push_json_str(&mut line, meta.target());
    if let Some(id) = line_trace_id() {
        write!(line, ",\"trace_id\":\"{id}\"")?;
    }
    if let Some(site) = line_site() {
        line.push_str(",\"scope\":");
        push_json_str(&mut line, site.name());
    }
    let mut visitor = JsonVisitor {
        out: &mut line,
        message: None,
    };
    event.record(&mut visitor);
    if let Some(message) = visitor.message.take() {
        line.push_str(",\"message\":");
        push_json_str(&mut line, &message);
    }
    if let Some(scope) = ctx.event_scope() {
        line.push_str(",\"spans\":[");
        for (i, span) in scope.from_root().enumerate() {
            if i > 0 {
                line.push(',');
            }
            push_json_str(&mut line, span.name());
        }
        line.push(']');
    }
    line.push_str("}\n");
    writer.write_str(&line)
}

struct JsonVisitor<'a> {
    out: &'a mut String,
    message: Option<String>,
}

impl JsonVisitor<'_> {
    fn key(&mut self, field: &Field) {
        self.out.push(',');
        let name = field.name();
        if RESERVED.contains(&name) {
            push_json_str(self.out, &format!("field.{name}"));
        } else {
            push_json_str(self.out, name);
        }
        self.out.push(':');
    }

    fn skip(field: &Field) -> bool {
        field.name().starts_with("log.")
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if Self::skip(field) {
            return;
        }
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.out, "{value}");
        } else {
            push_json_str(self.out, &value.to_string());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if Self::skip(field) {
            return;
        }
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if Self::skip(field) {
            return;
        }
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if Self::skip(field) {
            return;
        }
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
            return;
        }
        if Self::skip(field) {
            return;
        }
        self.key(field);
        push_json_str(self.out, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_str(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
            return;
        }
        if Self::skip(field) {
            return;
        }
        self.key(field);
        push_json_str(self.out, &format!("{value:?}"));
    }
}

/// Appends `text` as a JSON string literal.
fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The formatting layer that puts `trace_id` on every event, for users who build their own subscriber.
///
/// Its format comes from `OBSERVE_LOG` (`pretty` or `json`); it writes to standard output. Add your own
/// filter (the layer itself filters nothing).
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(observe::layer().with_filter(tracing_subscriber::EnvFilter::new("info")));
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!("outside any scope: no trace_id on this line");
/// });
/// ```
pub fn layer<S>() -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    layer_with(LogFormat::from_env(), std::io::stdout, stdout_is_colour_terminal())
}

/// Colours only for a terminal, and never when `NO_COLOR` is set (<https://no-color.org>).
pub(crate) fn stdout_is_colour_terminal() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

pub(crate) fn layer_with<S, W>(format: LogFormat, writer: W, ansi: bool) -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(EscapedFields)
        .event_format(EventFormat::new(format))
        .with_ansi(ansi && format == LogFormat::Pretty)
        .with_writer(writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        push_json_str(&mut out, "a\"b\\c\nd\r\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\r\\u0001é\"");
    }

    #[test]
    fn pretty_values_cannot_start_a_line() {
        let mut out = String::new();
        write!(Escaped(&mut out), "a\nb\r\nc\u{1b}[31md\u{2028}e\te").unwrap();
        assert_eq!(out, "a\\nb\\r\\nc\\u{1b}[31md\\u{2028}e\\te");
    }

    #[test]
    fn errors_keep_their_causes_escaped() {
        #[derive(Debug)]
        struct Failed(&'static str, Option<Box<Failed>>);
        impl fmt::Display for Failed {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Failed {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let error = Failed("query failed", Some(Box::new(Failed("socket\nclosed", None))));
        let mut out = String::new();
        let mut visitor = EscapingVisitor::new(Writer::new(&mut out));
        let field = tracing::field::FieldSet::new(&["err"], tracing::callsite::Identifier(&CALLSITE));
        visitor.record_error(&field.field("err").unwrap(), &error);
        visitor.result.unwrap();
        assert_eq!(out, "err=query failed err.sources=[socket\\nclosed]");
    }

    struct TestCallsite;
    static CALLSITE: TestCallsite = TestCallsite;
    impl tracing::callsite::Callsite for TestCallsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unreachable!("not asked in this test")
        }
    }

    #[test]
    fn log_format_parse() {
        assert_eq!(LogFormat::parse("JSON"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("pretty"), Some(LogFormat::Pretty));
        assert_eq!(LogFormat::parse("xml"), None);
    }
}
