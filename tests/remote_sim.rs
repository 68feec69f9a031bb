//! The remote scenarios on the simulated link.

mod remote_support;

use remote_support::{Road, scenarios};

macro_rules! on_road {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            scenarios::$name(Road::Sim).await;
        }
    )*};
}

on_road!(
    ask_and_tell_by_name,
    typed_errors,
    deadline_chain,
    expired_while_queued,
    link_loss_fails_pending_fast,
    cancel_on_drop,
    backpressure,
    server_stream,
    stream_link_loss,
    duplex_stream,
);
