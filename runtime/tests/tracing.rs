//! Tracing: a span per handled message. Its own test binary, so no other
//! test's threads touch the callsites before the subscriber is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use plexus_runtime::prelude::*;

/// A minimal subscriber layer that records each `handle` span's fields.
mod capture {
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id};
    use tracing_subscriber::layer::{Context, Layer};

    pub(crate) type FieldList = Vec<(String, String)>;

    #[derive(Default, Clone)]
    pub(crate) struct Spans(pub(crate) Arc<Mutex<Vec<FieldList>>>);

    struct Fields(Vec<(String, String)>);
    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0
                .push((field.name().to_string(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_string(), value.to_string()));
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Spans {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            if attrs.metadata().name() == "handle" {
                let mut f = Fields(Vec::new());
                attrs.record(&mut f);
                self.0.lock().unwrap().push(f.0);
            }
        }
    }
}

#[test]
fn every_handled_message_gets_a_span_with_actor_message_and_correlation() {
    use tracing_subscriber::layer::SubscriberExt;
    let spans = capture::Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let node = Node::builder().build();
        let a = node
            .spawn_with(SpawnOptions::new().name("traced"), Idle)
            .unwrap();
        a.ask(Ping).await.unwrap();
        a.id()
    });
    let got = spans.0.lock().unwrap().clone();
    let span = got
        .iter()
        .find(|f| f.iter().any(|(k, v)| k == "message" && v.contains("Ping")))
        .unwrap_or_else(|| panic!("no handle span for Ping: {got:?}"));
    let get = |k: &str| span.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("actor"), Some(id.to_string()));
    assert_eq!(get("name"), Some("traced".into()));
    assert!(get("correlation").is_some());
}
