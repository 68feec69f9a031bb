//! Property tests: exactly-once, per-sender FIFO, and no loss across
//! panics and restarts, under random interleavings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_runtime::prelude::*;
use plexus_runtime::supervision::{Backoff, SupervisionStrategy};
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Records (sender, seq) in arrival order.
struct Recorder(Vec<(usize, usize)>);
impl Actor for Recorder {}

struct Rec(usize, usize);
impl Message for Rec {
    type Reply = ();
}
impl Handler<Rec> for Recorder {
    async fn handle(&mut self, Rec(s, n): Rec, _: &mut Context<Self>) {
        self.0.push((s, n));
    }
}
struct Dump;
impl Message for Dump {
    type Reply = Vec<(usize, usize)>;
}
impl Handler<Dump> for Recorder {
    async fn handle(&mut self, _: Dump, _: &mut Context<Self>) -> Vec<(usize, usize)> {
        std::mem::take(&mut self.0)
    }
}

/// How one sender sends each message: tell, try_tell (retrying on Full),
/// or ask; and whether it yields first.
#[derive(Debug, Clone, Copy)]
enum How {
    Tell,
    TryTell,
    Ask,
}

fn how() -> impl Strategy<Value = (How, bool)> {
    (
        prop_oneof![Just(How::Tell), Just(How::TryTell), Just(How::Ask)],
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_message_is_handled_once_in_per_sender_order(
        capacity in 1usize..8,
        plans in prop::collection::vec(prop::collection::vec(how(), 0..40), 1..5),
    ) {
        let rt = runtime();
        let got = rt.block_on(async {
            let node = Node::builder().build();
            let rec = node.spawn_with(SpawnOptions::new().capacity(capacity), Recorder(Vec::new())).unwrap();
            let mut tasks = Vec::new();
            for (s, plan) in plans.iter().cloned().enumerate() {
                let rec = rec.clone();
                tasks.push(tokio::spawn(async move {
                    for (n, (how, yield_first)) in plan.into_iter().enumerate() {
                        if yield_first {
                            tokio::task::yield_now().await;
                        }
                        match how {
                            How::Tell => rec.tell(Rec(s, n)).await.unwrap(),
                            How::Ask => rec.ask(Rec(s, n)).timeout(Duration::from_secs(30)).await.unwrap(),
                            How::TryTell => {
                                let mut msg = Rec(s, n);
                                loop {
                                    match rec.try_tell(msg) {
                                        Ok(()) => break,
                                        Err(TrySendError::Full { msg: back, .. }) => {
                                            msg = back;
                                            tokio::task::yield_now().await;
                                        }
                                        Err(e) => panic!("{e}"),
                                    }
                                }
                            }
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            rec.ask(Dump).await.unwrap()
        });
        // Exactly once, and each sender's messages in the order sent.
        for (s, plan) in plans.iter().enumerate() {
            let mine: Vec<usize> = got.iter().filter(|(x, _)| *x == s).map(|(_, n)| *n).collect();
            prop_assert_eq!(mine, (0..plan.len()).collect::<Vec<_>>());
        }
        prop_assert_eq!(got.len(), plans.iter().map(Vec::len).sum::<usize>());
    }

    #[test]
    fn random_panics_lose_and_duplicate_nothing(
        capacity in 1usize..6,
        plans in prop::collection::vec(prop::collection::vec(any::<bool>(), 0..30), 1..4),
    ) {
        // The log lives outside the actor: each restart makes a fresh value.
        let log: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
        struct Flaky(Arc<Mutex<Vec<(usize, usize)>>>);
        impl Actor for Flaky {}
        struct Step { s: usize, n: usize, panic: bool }
        impl Message for Step { type Reply = (usize, usize); }
        impl Handler<Step> for Flaky {
            async fn handle(&mut self, m: Step, _: &mut Context<Self>) -> (usize, usize) {
                if m.panic {
                    panic!("planned failure {} {}", m.s, m.n);
                }
                self.0.lock().unwrap().push((m.s, m.n));
                (m.s, m.n)
            }
        }
        struct Settle;
        impl Message for Settle { type Reply = (); }
        impl Handler<Settle> for Flaky {
            async fn handle(&mut self, _: Settle, _: &mut Context<Self>) {}
        }
        let rt = runtime();
        let results = rt.block_on(async {
            let node = Node::builder()
                .supervision(SupervisionStrategy::one_for_one().intensity(u32::MAX, Duration::from_secs(1)).backoff(Backoff::none()))
                .build();
            let l2 = log.clone();
            let a = node
                .spawn_factory(SpawnOptions::new().capacity(capacity), move || Flaky(l2.clone()))
                .unwrap();
            let mut tasks = Vec::new();
            for (s, plan) in plans.iter().cloned().enumerate() {
                let a = a.clone();
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    for (n, panic) in plan.into_iter().enumerate() {
                        out.push((n, panic, a.ask(Step { s, n, panic }).timeout(Duration::from_secs(30)).await));
                    }
                    out
                }));
            }
            let mut all = Vec::new();
            for (s, t) in tasks.into_iter().enumerate() {
                for (n, panic, r) in t.await.unwrap() {
                    all.push((s, n, panic, r));
                }
            }
            // Handled after the last restart, whatever the interleaving.
            a.ask(Settle).await.unwrap();
            prop_assert_eq!(a.metrics().restarts as usize, all.iter().filter(|x| x.2).count());
            Ok(all)
        })?;
        let log = log.lock().unwrap().clone();
        for (s, n, panic, r) in &results {
            if *panic {
                prop_assert!(matches!(r, Err(AskError::HandlerPanicked { .. })), "{:?}", r);
                prop_assert!(!log.contains(&(*s, *n)));
            } else {
                prop_assert_eq!(r.as_ref().ok(), Some(&(*s, *n)));
                prop_assert_eq!(log.iter().filter(|x| **x == (*s, *n)).count(), 1);
            }
        }
        prop_assert_eq!(log.len(), results.iter().filter(|x| !x.2).count());
    }
}
