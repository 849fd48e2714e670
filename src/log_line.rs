//! The text of one log line: time, level, target, message, then
//! `name=value` fields, the layout of tracing's default format without
//! colour. Written here rather than by that format because its styling
//! wrappers and padding cost half of every request's log line:
//! `sessiond-bench --only crates` measured 243-268 ns a line here against
//! 535-549 ns with tracing-subscriber's own format.
//!
//! Every value passes through [`Escaped`], so no field or message can end
//! a line early or reach a terminal as an escape sequence.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::domain::Rfc3339;
use crate::store::now_ms;

/// The event format `main` installs.
pub struct LogLine;

impl<S, N> FormatEvent<S, N> for LogLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Records from the `log` crate (sled's) name their own target.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        w.write_str(Rfc3339::new(now_ms()).as_str())?;
        w.write_str(level(meta.level()))?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                w.write_str(span.name())?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        w.write_char('{')?;
                        Escaped(&mut w).write_str(fields)?;
                        w.write_char('}')?;
                    }
                }
                w.write_char(':')?;
            }
            w.write_char(' ')?;
        }
        w.write_str(meta.target())?;
        w.write_str(": ")?;
        let mut fields = Fields {
            w: &mut w,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_char('\n')
    }
}

/// The level between spaces, right-aligned as tracing prints it.
fn level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => " ERROR ",
        Level::WARN => "  WARN ",
        Level::INFO => "  INFO ",
        Level::DEBUG => " DEBUG ",
        Level::TRACE => " TRACE ",
    }
}

/// Writes the message bare and other fields as ` name=value`: strings and
/// `?` values in their `Debug` form (quoted), `%` values as displayed.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// Writes the separator and ` name=` for `field`, then `value` into an
    /// escaping writer; `log.*` fields are skipped, printed above already.
    fn write(&mut self, field: &Field, value: impl FnOnce(&mut dyn Write) -> fmt::Result) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            self.w.write_str(separator)
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            write!(self.w, "{separator}{name}=")
        }
        .and_then(|()| value(&mut Escaped(self.w)));
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, |w| w.write_str(value));
        } else {
            self.write(field, |w| write!(w, "{value:?}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, |w| write!(w, "{value:?}"));
    }
}

/// Passes text through, writing control characters (C0, DEL, C1) as
/// `\u{..}` escapes; text without any goes through in one piece.
struct Escaped<'a, W>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(|c: char| c.is_control()) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(self.0, "\\u{{{:x}}}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// The lines a subscriber with `LogLine` writes while `f` runs.
    fn lines_of(f: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_ansi(false)
            .event_format(LogLine)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn a_request_line_reads_as_tracings_default_format_did() {
        let lines = lines_of(|| {
            tracing::info!(
                method = %"GET",
                path = %"/api/auth/me",
                status = 200u16,
                latency_us = 41u64,
                "request"
            );
            tracing::warn!(user = "alice", ok = true, delta = -3i64, "odd");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let (time, rest) = lines[0].split_at(24);
        assert!(time.starts_with("20") && time.ends_with('Z'), "{time}");
        assert_eq!(
            rest,
            "  INFO sessiond::log_line::tests: request method=GET path=/api/auth/me status=200 latency_us=41"
        );
        assert!(
            lines[1]
                .ends_with("  WARN sessiond::log_line::tests: odd user=\"alice\" ok=true delta=-3"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn control_characters_cannot_break_or_colour_a_line() {
        let lines = lines_of(|| {
            let evil = "a\nb\x1b[31mc\u{9b}d\re";
            tracing::info!(path = %evil, "x{}", evil);
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let want = r"a\u{a}b\u{1b}[31mc\u{9b}d\u{d}e";
        assert!(
            lines[0].ends_with(&format!("x{want} path={want}")),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn spans_are_named_before_the_target() {
        let lines = lines_of(|| {
            let span = tracing::info_span!("socket", user = 7, agent = %"a\nb");
            let _entered = span.enter();
            tracing::debug!("closed");
        });
        assert!(
            lines[0].ends_with(
                r" DEBUG socket{user=7 agent=a\u{a}b}: sessiond::log_line::tests: closed"
            ),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn a_log_crate_record_shows_its_own_target_and_no_log_fields() {
        use tracing_log::log;
        let lines = lines_of(|| {
            tracing_log::format_trace(
                &log::Record::builder()
                    .args(format_args!("segment {} reused", 7))
                    .level(log::Level::Warn)
                    .target("sled::pagecache::segment")
                    .file(Some("segment.rs"))
                    .line(Some(42))
                    .build(),
            )
            .unwrap();
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].ends_with("  WARN sled::pagecache::segment: segment 7 reused"),
            "{}",
            lines[0]
        );
    }
}
