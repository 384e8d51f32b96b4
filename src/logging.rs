//! Log output: human-readable lines on stderr, filtered by `RUST_LOG`
//! (default `info`), each line naming the node (`[node] id`) first, so the
//! logs of several nodes gathered in one place say which node said what.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub fn init(node: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sled=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .event_format(OnNode::new(node))
        .try_init();
}

/// The usual line, after `node=<id>`.
struct OnNode {
    node: String,
    line: Format,
}

impl OnNode {
    fn new(node: &str) -> OnNode {
        OnNode {
            node: node.to_string(),
            line: Format::default(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for OnNode
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "node={} ", self.node)?;
        self.line.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Lines written into a shared buffer.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_names_the_node_first() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .event_format(OnNode::new("mx-2"))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(queue = 3, "first");
            tracing::info!("second");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got.len(), 2, "{text}");
        assert!(got[0].starts_with("node=mx-2 "), "{text}");
        assert!(
            got[0].contains("WARN") && got[0].contains("first queue=3"),
            "{text}"
        );
        assert!(
            got[1].starts_with("node=mx-2 ") && got[1].ends_with("second"),
            "{text}"
        );
    }
}
