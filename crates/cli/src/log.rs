//! The server's log on standard error (`tracing`): text — the same lines as ever,
//! `portgate serve: <message>` — or JSON, an object per line with the timestamp, level,
//! target, message and the event's fields (job id, scan id, route, error, …).

use crate::Failure;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// A line per event for people: `portgate serve: <message>`.
    Text,
    /// An object per line: timestamp, level, target, message and the event's fields.
    Json,
}

/// Whether the log is JSON: then the process's last word (a failure) is a JSON event too.
static JSON: AtomicBool = AtomicBool::new(false);

/// Starts the log: `format`, with the events `filter` lets through (`info`,
/// `warn,portgate_serve=debug`, …).
pub(crate) fn init(format: LogFormat, filter: &str) -> Result<(), Failure> {
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map_err(|e| Failure::usage(format!("--log-level \"{filter}\": {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.event_format(Plain).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|e| Failure::scan(format!("cannot start the log: {e}")))?;
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    Ok(())
}

/// Whether the log was started as JSON.
pub(crate) fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// The text format: `portgate serve: ` and the message alone (the fields are in it).
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut message = Message(String::new());
        event.record(&mut message);
        writeln!(writer, "portgate serve: {}", message.0)
    }
}

/// The `message` field of an event.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}
