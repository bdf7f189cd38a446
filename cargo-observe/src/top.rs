//! `cargo observe top`: a live per-scope table of what observed apps send, from a local StatsD receiver.
//!
//! Any observed app on the machine sends to `127.0.0.1:8125` by default; `top` listens there (or on `--addr`)
//! and redraws the table every `--interval` seconds, like the demo's final table but live.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The options of `cargo observe top`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopOptions {
    /// Where to listen.
    pub addr: String,
    /// How often to redraw.
    pub interval: Duration,
    /// Stop after this long and print the table once (`--for`); `None`: run until killed.
    pub duration: Option<Duration>,
}

fn seconds(flag: &str, value: Option<&str>) -> Result<Duration, String> {
    let value = value.ok_or_else(|| format!("`{flag}` needs a number of seconds"))?;
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e7)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{flag}` takes a number of seconds, not `{value}`"))
}

/// Reads the options after `top`.
pub fn parse<'a>(mut args: impl Iterator<Item = &'a str>) -> Result<TopOptions, String> {
    let mut options = TopOptions {
        addr: "127.0.0.1:8125".to_owned(),
        interval: Duration::from_secs(2),
        duration: None,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg, None),
        };
        let mut value = || inline.or_else(|| args.next());
        match flag {
            "--addr" => options.addr = value().ok_or("`--addr` needs host:port")?.to_owned(),
            "--interval" => options.interval = seconds(flag, value())?,
            "--for" => options.duration = Some(seconds(flag, value())?),
            other => return Err(format!("unknown option `{other}` for `cargo observe top`")),
        }
    }
    Ok(options)
}

/// Runs `top`; returns the exit status.
pub fn run(options: &TopOptions, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let terminal = std::io::stdout().is_terminal();
    run_tables(options, terminal, stdout, stderr, None)
}

/// [`run`], with whether `stdout` is a terminal (redrawn in place) said by the caller, and stopping after
/// `rounds_at_most` intervals when given (for tests: without `--for`, `top` runs until killed or its output closes).
fn run_tables(
    options: &TopOptions,
    terminal: bool,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    rounds_at_most: Option<usize>,
) -> i32 {
    let receiver = match observe_view::Receiver::bind(&options.addr) {
        Ok(receiver) => receiver,
        Err(err) => {
            let _ = writeln!(
                stderr,
                "error: cannot listen on {}: {err} (is an agent already there? try --addr 127.0.0.1:9125)",
                options.addr
            );
            return 2;
        }
    };
    let live = options.duration.is_none() && terminal;
    let started = Instant::now();
    let mut rounds = 0;
    loop {
        let wait = match options.duration {
            Some(total) => total.saturating_sub(started.elapsed()).min(options.interval),
            None => options.interval,
        };
        std::thread::sleep(wait);
        let view = receiver.view();
        let done = options.duration.is_some_and(|total| started.elapsed() >= total);
        // On a terminal: clear the screen and go home, then draw. Into a pipe or a file, without `--for`: each
        // table after the last.
        let clear = if live { "\x1b[2J\x1b[H" } else { "" };
        if options.duration.is_none() || done {
            let written = write!(
                stdout,
                "{clear}observe top: listening on {} ({} metric lines, {} ignored), {:.0} s\n{}",
                receiver.addr(),
                view.lines,
                view.ignored,
                started.elapsed().as_secs_f64(),
                view.render()
            )
            .and_then(|()| stdout.flush());
            match written {
                Ok(()) => {}
                // The reader went away (`top | head`): done.
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return 0,
                Err(err) => {
                    let _ = writeln!(stderr, "error: cannot write the table: {err}");
                    return 1;
                }
            }
        }
        rounds += 1;
        if done || rounds_at_most.is_some_and(|most| rounds >= most) {
            return 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let parsed = parse(["--addr", "127.0.0.1:9", "--interval=0.5", "--for", "3"].into_iter()).unwrap();
        assert_eq!(parsed.addr, "127.0.0.1:9");
        assert_eq!(parsed.interval, Duration::from_millis(500));
        assert_eq!(parsed.duration, Some(Duration::from_secs(3)));
        assert!(parse(["--interval", "soon"].into_iter()).is_err());
        assert!(parse(["--interval", "-1"].into_iter()).is_err());
        assert!(parse(["--bogus"].into_iter()).is_err());
    }

    /// Into a pipe (a test's output is not a terminal) and without `--for`, every interval prints a table.
    #[test]
    fn tables_follow_each_other_into_a_pipe() {
        let options = TopOptions {
            addr: "127.0.0.1:0".to_owned(),
            interval: Duration::from_millis(20),
            duration: None,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run_tables(&options, false, &mut out, &mut err, Some(2)), 0);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.matches("observe top: listening on").count(), 2, "{out}");
        assert!(!out.contains('\x1b'), "no screen clearing into a pipe: {out:?}");
    }

    /// A reader that goes away (`top | head`) ends `top`, which would otherwise write into nothing forever.
    #[test]
    fn a_closed_pipe_ends_top() {
        /// Counts the writes tried.
        struct Closed(usize);
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                self.0 += 1;
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let options = TopOptions {
            addr: "127.0.0.1:0".to_owned(),
            interval: Duration::from_millis(10),
            duration: None,
        };
        let (mut closed, mut err) = (Closed(0), Vec::new());
        // Bounded in the test (50 rounds), so that without the fix it fails instead of hanging.
        assert_eq!(run_tables(&options, false, &mut closed, &mut err, Some(50)), 0);
        assert_eq!(closed.0, 1, "top went on writing after its reader went away");
        assert!(err.is_empty());
    }
}
