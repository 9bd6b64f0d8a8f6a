//! The log filter both binaries use: `TWK_LOG` (or a default), minus the events known to
//! carry secrets whatever the level asked for.
//!
//! tungstenite traces the raw websocket upgrade request, `Authorization: Bearer <token>`
//! included (`tungstenite::handshake::client`, TRACE). The tunnel token must never reach a
//! log at any level, so those events are dropped here rather than trusted to a level.

use tracing::Metadata;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::Filter;

/// True for events that may carry the tunnel token (never logged).
pub fn may_carry_secrets(meta: &Metadata<'_>) -> bool {
    let t = meta.target();
    // Only tungstenite's handshake is known to log whole requests; its debug lines carry none,
    // but nothing in it is worth a leaked token, so the whole module is dropped below INFO.
    t.starts_with("tungstenite::handshake") && *meta.level() > tracing::Level::INFO
}

/// `TWK_LOG` (e.g. `debug`, `twk_relay=trace`), else `default`, never passing events that
/// [`may_carry_secrets`].
pub fn filter<S>(default: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let env = EnvFilter::try_from_env("TWK_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // A filter without a level hint makes the combination hint-less, and then tracing cannot
    // turn off the disabled levels statically: every `trace!` in h2 and hyper would be
    // checked against the filter at run time, on every frame.
    let safe = tracing_subscriber::filter::filter_fn(|meta| !may_carry_secrets(meta))
        .with_max_level_hint(tracing::level_filters::LevelFilter::TRACE);
    env.and(safe)
}

/// Lowers the `log` crate's level gate to what the installed subscriber passes.
///
/// `init()` bridges `log` records into tracing with the gate wide open (TRACE), so every
/// `log::trace!` in tungstenite (several per websocket frame) went through
/// the subscriber's filter only to be dropped: a measurable share of per-request CPU. Call after
/// installing the global subscriber.
pub fn narrow_log_gate() {
    use tracing::level_filters::LevelFilter;
    let level = match LevelFilter::current() {
        LevelFilter::OFF => log::LevelFilter::Off,
        LevelFilter::ERROR => log::LevelFilter::Error,
        LevelFilter::WARN => log::LevelFilter::Warn,
        LevelFilter::INFO => log::LevelFilter::Info,
        LevelFilter::DEBUG => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn the_filter_keeps_the_level_hint_so_disabled_levels_cost_nothing() {
        use tracing_subscriber::registry::Registry;
        let f = filter::<Registry>("warn");
        assert_eq!(
            Filter::<Registry>::max_level_hint(&f),
            Some(tracing::level_filters::LevelFilter::WARN)
        );
    }

    #[test]
    fn the_handshake_trace_is_dropped_even_at_trace_level() {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let w = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || Writer(w.clone()))
            .with_filter(filter("trace"));
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, || {
            tracing::trace!(target: "tungstenite::handshake::client", "Request: Bearer s3cret");
            tracing::trace!(target: "twk_agent::session", "visible");
        });
        let out = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(out.contains("visible"), "{out}");
        assert!(!out.contains("s3cret"), "{out}");
    }

    struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Writer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
