//! The traceparent travels: the caller's `rpc.call` span and the serving
//! node's `rpc.serve` span carry the same trace id (captured spans).

mod remote_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_runtime::prelude::*;
use remote_support::{Echo, Road, cluster};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

type Seen = Arc<Mutex<Vec<(String, String)>>>;

struct Capture(Seen);

struct TraceId(Option<String>);
impl Visit for TraceId {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "trace_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "trace_id" {
            self.0 = Some(value.to_owned());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: LayerContext<'_, S>,
    ) {
        let mut v = TraceId(None);
        attrs.record(&mut v);
        if let Some(id) = v.0 {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((attrs.metadata().name().to_owned(), id));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_on_both_nodes_share_the_trace_id() {
    let seen: Seen = Arc::default();
    let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&seen)));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    for road in [Road::Sim, Road::Quic] {
        seen.lock().unwrap().clear();
        let (ms, _net) = cluster(road, 16, Duration::ZERO).await;
        let echo: Recipient<Echo> = ms[0].remote.recipient("b", "svc");
        // Both spans open before the reply exists: the caller's before it
        // sends, the server's before it runs the handler.
        assert_eq!(echo.ask(Echo("t".into())).await.unwrap(), "t");
        let spans = seen.lock().unwrap().clone();
        let call: Vec<_> = spans.iter().filter(|(n, _)| n == "rpc.call").collect();
        let serve: Vec<_> = spans.iter().filter(|(n, _)| n == "rpc.serve").collect();
        assert_eq!(call.len(), 1, "{road:?}: {spans:?}");
        assert_eq!(serve.len(), 1, "{road:?}: {spans:?}");
        assert_eq!(
            call[0].1, serve[0].1,
            "{road:?}: one trace id on both nodes"
        );
        assert_eq!(call[0].1.len(), 32);
    }
}
