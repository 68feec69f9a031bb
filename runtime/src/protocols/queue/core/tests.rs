//! Unit tests of the core, and a proptest model: random enqueue, deliver,
//! ack, nack, extend, refusal, lease expiry, consumer death, redrive,
//! compaction and restart (replay through the codec), checked against a
//! simple model after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::protocols::queue::codec::{self, TimeMap};

const WALL0: u64 = 1_767_225_600_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config() -> QueueConfig {
    QueueConfig {
        lease: ms(50),
        max_lease: ms(500),
        max_attempts: 3,
        backoff_initial: ms(10),
        backoff_max: ms(80),
        dedup_window: ms(100),
        ..QueueConfig::default()
    }
}

/// A core plus its "disk" (encoded event records) and a virtual clock.
struct Rig {
    core: QueueCore,
    base: Instant,
    now: Instant,
    disk: Vec<Vec<u8>>,
    grants: Vec<Grant>,
    dead_seen: Vec<(MessageId, Arc<str>)>,
}

impl Rig {
    fn new() -> Self {
        let base = Instant::now();
        Self {
            core: QueueCore::new(config()),
            base,
            now: base,
            disk: Vec::new(),
            grants: Vec::new(),
            dead_seen: Vec::new(),
        }
    }

    fn map(&self) -> TimeMap {
        TimeMap {
            now: self.now,
            wall_ms: WALL0 + (self.now - self.base).as_millis() as u64,
        }
    }

    /// Drain actions: persist events to disk, collect grants.
    fn drain(&mut self) -> Vec<Grant> {
        let map = self.map();
        let mut rec = Vec::new();
        let mut out = Vec::new();
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Persist(e) => {
                    if let Event::DeadLettered { id, reason } = &e {
                        self.dead_seen.push((*id, Arc::clone(reason)));
                    }
                    codec::encode(&e, &map, &mut rec);
                }
                Action::Deliver(g) => out.push(g),
            }
        }
        if !rec.is_empty() {
            self.disk.push(rec);
        }
        self.grants.extend(out.iter().cloned());
        out
    }

    fn advance(&mut self, d: Duration) -> Vec<Grant> {
        self.now += d;
        self.core.tick(self.now);
        self.drain()
    }

    fn enqueue(&mut self, m: NewMessage) -> Enqueued {
        let r = self.core.enqueue(m, self.now).unwrap();
        self.drain();
        r
    }

    fn restart(&mut self) {
        let map = self.map();
        let mut core = QueueCore::new(config());
        for rec in &self.disk {
            for e in codec::decode_all(rec, &map).unwrap() {
                core.replay(e, self.now);
            }
        }
        core.finish_replay(self.now);
        self.core = core;
        self.drain();
    }

    fn compact(&mut self) {
        let map = self.map();
        let mut rec = Vec::new();
        for e in self.core.snapshot() {
            codec::encode(&e, &map, &mut rec);
        }
        self.disk = vec![rec];
    }
}

fn msg(p: &str) -> NewMessage {
    NewMessage::new(p.as_bytes().to_vec())
}

#[test]
fn prefetch_bounds_deliveries_and_consumers_share_round_robin() {
    let mut r = Rig::new();
    for i in 0..10 {
        r.enqueue(msg(&format!("m{i}")));
    }
    let a = r.core.subscribe(2, r.now);
    let ga = r.drain();
    assert_eq!(ga.len(), 2);
    let b = r.core.subscribe(3, r.now);
    let gb = r.drain();
    assert_eq!(gb.len(), 3);
    assert!(gb.iter().all(|g| g.consumer == b));
    let m = r.core.metrics(r.now);
    assert_eq!((m.in_flight, m.depth, m.ready), (5, 5, 5));
    // An ack frees one slot of `a` only.
    r.core.ack(ga[0].id, ga[0].lease, r.now).unwrap();
    let next = r.drain();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].consumer, a);
    assert_eq!(
        next[0].id,
        MessageId(5),
        "ready messages go out in enqueue order"
    );
}

#[test]
fn expired_lease_is_redelivered_and_the_old_ack_is_refused() {
    let mut r = Rig::new();
    let id = r.enqueue(msg("x")).id;
    let a = r.core.subscribe(1, r.now);
    let g1 = r.drain().remove(0);
    assert_eq!((g1.consumer, g1.attempt), (a, 1));
    r.core.unsubscribe(a, "gone", r.now); // a leaves: redelivered to b
    let b = r.core.subscribe(1, r.now);
    let g2 = r.drain().remove(0);
    assert_eq!((g2.consumer, g2.attempt), (b, 2));
    assert_eq!(
        r.core.ack(id, g1.lease, r.now),
        Err(AckError::LeaseEnded(id))
    );
    // Lease runs out: delivered again to b with a new lease.
    let g3 = r.advance(ms(50)).remove(0);
    assert_eq!((g3.consumer, g3.attempt), (b, 3));
    assert_eq!(r.core.metrics(r.now).expired_leases, 1);
    r.core.ack(id, g3.lease, r.now).unwrap();
    assert_eq!(
        r.core.ack(id, g3.lease, r.now),
        Err(AckError::UnknownMessage(id))
    );
}

#[test]
fn extend_keeps_the_lease() {
    let mut r = Rig::new();
    let id = r.enqueue(msg("x")).id;
    r.core.subscribe(1, r.now);
    let g = r.drain().remove(0);
    r.advance(ms(40));
    let until = r.core.extend(id, g.lease, ms(100), r.now).unwrap();
    assert_eq!(until, r.now + ms(100));
    assert!(r.advance(ms(90)).is_empty());
    assert_eq!(r.core.metrics(r.now).expired_leases, 0);
    // capped at max_lease
    let until = r.core.extend(id, g.lease, ms(10_000), r.now).unwrap();
    assert_eq!(until, r.now + ms(500));
}

#[test]
fn nack_backs_off_then_dead_letters_after_max_attempts_and_redrive_restores() {
    let mut r = Rig::new();
    let id = r.enqueue(msg("poison")).id;
    r.core.subscribe(1, r.now);
    let mut g = r.drain().remove(0);
    for attempt in 1..=3 {
        assert_eq!(g.attempt, attempt);
        r.core.nack(id, g.lease, Nack::new("boom"), r.now).unwrap();
        r.drain();
        if attempt == 3 {
            break;
        }
        let backoff = config().backoff(attempt);
        assert_eq!(
            r.core.state_of(id),
            Some(MessageState::Scheduled(r.now + backoff))
        );
        assert!(r.advance(backoff - ms(1)).is_empty());
        g = r.advance(ms(1)).remove(0);
    }
    assert_eq!(r.core.state_of(id), Some(MessageState::Dead));
    let dl = r.core.dead_letters(10);
    assert_eq!(dl.len(), 1);
    assert_eq!((dl[0].attempts, &*dl[0].reason), (3, "nacked: boom"));
    assert_eq!(r.core.metrics(r.now).dead_letters, 1);
    assert_eq!(r.core.redrive(None, 10, r.now), 1);
    let g = r.drain().remove(0);
    assert_eq!((g.id, g.attempt), (id, 1));
    // An explicit dead-letter nack skips the retries.
    r.core
        .nack(id, g.lease, Nack::new("bad").dead_letter(), r.now)
        .unwrap();
    assert_eq!(r.core.state_of(id), Some(MessageState::Dead));
}

#[test]
fn fifo_group_has_one_in_flight_in_order() {
    let mut r = Rig::new();
    let ids: Vec<_> = (0..3)
        .map(|i| r.enqueue(msg(&format!("g{i}")).group("g")).id)
        .collect();
    let other = r.enqueue(msg("free")).id;
    r.core.subscribe(10, r.now);
    let gs = r.drain();
    assert_eq!(
        gs.iter().map(|g| g.id).collect::<Vec<_>>(),
        vec![ids[0], other]
    );
    assert_eq!(r.core.state_of(ids[1]), Some(MessageState::Held));
    // A nack keeps the group blocked until the head is redelivered and acked.
    r.core
        .nack(ids[0], gs[0].lease, Nack::new("later"), r.now)
        .unwrap();
    assert!(r.drain().is_empty());
    let g = r.advance(ms(10)).remove(0);
    assert_eq!(g.id, ids[0]);
    r.core.ack(g.id, g.lease, r.now).unwrap();
    let g = r.drain().remove(0);
    assert_eq!(g.id, ids[1]);
    r.core.ack(g.id, g.lease, r.now).unwrap();
    assert_eq!(r.drain()[0].id, ids[2]);
}

#[test]
fn dedup_within_window_and_delay() {
    let mut r = Rig::new();
    let a = r.enqueue(msg("a").dedup_id("k"));
    let b = r.enqueue(msg("a again").dedup_id("k"));
    assert_eq!((b.id, b.duplicate), (a.id, true));
    r.advance(ms(100));
    let c = r.enqueue(msg("a later").dedup_id("k"));
    assert!(!c.duplicate);
    let d = r.enqueue(msg("delayed").delay(ms(30)));
    r.core.subscribe(10, r.now);
    let got: Vec<_> = r.drain().iter().map(|g| g.id).collect();
    assert_eq!(got, vec![a.id, c.id]);
    assert!(r.advance(ms(29)).is_empty());
    assert_eq!(r.advance(ms(1))[0].id, d.id);
}

/// `Duration::MAX` as a delay means "not in this lifetime": no overflow,
/// and a restart reads it back as still far ahead, not as due now.
#[test]
fn a_delay_of_duration_max_saturates_and_survives_restart() {
    let mut r = Rig::new();
    let parked = r.enqueue(msg("never").delay(Duration::MAX));
    let now = r.enqueue(msg("now"));
    r.core.subscribe(10, r.now);
    let got: Vec<_> = r.drain().iter().map(|g| g.id).collect();
    assert_eq!(got, vec![now.id]);
    // (The unacked "now" comes back when its lease runs out; "never" not.)
    let later = r.advance(Duration::from_secs(10 * 365 * 86_400));
    assert!(
        later.iter().all(|g| g.id != parked.id),
        "the parked message was delivered"
    );
    r.restart();
    r.core.subscribe(10, r.now);
    let got: Vec<_> = r.drain().iter().map(|g| g.id).collect();
    assert!(
        !got.contains(&parked.id),
        "the parked message was delivered"
    );
}

#[test]
fn refused_delivery_does_not_count_and_pauses_the_consumer() {
    let mut r = Rig::new();
    let id = r.enqueue(msg("x")).id;
    let a = r.core.subscribe(5, r.now);
    let g = r.drain().remove(0);
    r.core.refused(a, id, g.lease, r.now);
    assert!(r.drain().is_empty());
    assert!(r.core.is_paused(a));
    assert_eq!(r.core.attempts(id), Some(0));
    r.core.resume(a, r.now);
    let g = r.drain().remove(0);
    assert_eq!(g.attempt, 1);
}

#[test]
fn restart_replays_state_and_leased_messages_come_back_ready() {
    let mut r = Rig::new();
    let acked = r.enqueue(msg("acked")).id;
    let leased = r.enqueue(msg("leased")).id;
    let dead = r.enqueue(msg("dead")).id;
    let delayed = r.enqueue(msg("delayed").delay(ms(200)).dedup_id("d")).id;
    let a = r.core.subscribe(3, r.now);
    let gs = r.drain();
    r.core.ack(acked, gs[0].lease, r.now).unwrap();
    r.core
        .nack(dead, gs[2].lease, Nack::new("no").dead_letter(), r.now)
        .unwrap();
    r.drain();
    let _ = a;
    for round in 0..2 {
        if round == 1 {
            r.compact();
        }
        r.restart();
        assert_eq!(r.core.state_of(acked), None);
        assert_eq!(r.core.state_of(leased), Some(MessageState::Ready));
        assert_eq!(r.core.attempts(leased), Some(1 + round));
        assert_eq!(r.core.state_of(dead), Some(MessageState::Dead));
        assert!(matches!(
            r.core.state_of(delayed),
            Some(MessageState::Scheduled(_))
        ));
        let dup = r.enqueue(msg("again").dedup_id("d"));
        assert!(dup.duplicate);
        let fresh = r.enqueue(msg("fresh"));
        assert!(fresh.id.0 > delayed.0, "ids are never reused");
        r.core.subscribe(1, r.now);
        let g = r.drain().remove(0);
        assert_eq!((g.id, g.attempt), (leased, 2 + round));
    }
}

#[test]
fn used_up_message_is_dead_lettered_after_restart() {
    let mut r = Rig::new();
    let id = r.enqueue(msg("crashes the worker")).id;
    for _ in 0..3 {
        r.core.subscribe(1, r.now);
        r.drain();
        r.restart(); // the process dies while handling it
    }
    r.core.subscribe(1, r.now);
    assert!(r.drain().is_empty());
    assert_eq!(r.core.state_of(id), Some(MessageState::Dead));
    assert!(r.dead_seen[0].1.contains("restart"));
}

#[test]
fn oversized_and_overlong_inputs_are_refused() {
    let mut r = Rig::new();
    let big = NewMessage::new(vec![0; (1 << 20) + 1]);
    assert!(matches!(
        r.core.enqueue(big, r.now),
        Err(EnqueueError::TooLarge { .. })
    ));
    let long = msg("x").group("g".repeat(70_000));
    assert_eq!(r.core.enqueue(long, r.now), Err(EnqueueError::KeyTooLong));
    assert_eq!(r.core.metrics(r.now).enqueued, 0);
}

// ------------------------------------------------------------- the model

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        group: Option<u8>,
        delay: Option<u8>,
        dedup: Option<u8>,
    },
    Subscribe(u8),
    Die(u8),
    Ack(u8),
    Nack(u8, bool),
    Extend(u8),
    Refuse(u8),
    Advance(u8),
    Redrive,
    Compact,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            proptest::option::weighted(0.4, 0u8..3),
            proptest::option::weighted(0.2, 1u8..120),
            proptest::option::weighted(0.3, 0u8..4),
        )
            .prop_map(|(group, delay, dedup)| Op::Enqueue { group, delay, dedup }),
        2 => (1u8..4).prop_map(Op::Subscribe),
        1 => any::<u8>().prop_map(Op::Die),
        6 => any::<u8>().prop_map(Op::Ack),
        3 => (any::<u8>(), proptest::bool::weighted(0.2)).prop_map(|(i, d)| Op::Nack(i, d)),
        1 => any::<u8>().prop_map(Op::Extend),
        1 => any::<u8>().prop_map(Op::Refuse),
        4 => (1u8..80).prop_map(Op::Advance),
        1 => Just(Op::Redrive),
        1 => Just(Op::Compact),
        1 => Just(Op::Restart),
    ]
}

/// What the model knows.
#[derive(Default)]
struct Model {
    all: BTreeSet<MessageId>,
    acked: BTreeSet<MessageId>,
    dead: BTreeSet<MessageId>,
    group_of: BTreeMap<MessageId, u8>,
    redriven: BTreeSet<MessageId>,
    dedup: BTreeMap<u8, (MessageId, Instant)>,
    /// Valid leases: message → (consumer, lease, until).
    held: BTreeMap<MessageId, (ConsumerId, LeaseId, Instant)>,
    consumers: Vec<ConsumerId>,
}

impl Model {
    fn check_grants(&mut self, grants: &[Grant], now: Instant) -> Result<(), TestCaseError> {
        for g in grants {
            prop_assert!(
                !self.held.contains_key(&g.id),
                "{:?} delivered while leased to another",
                g.id
            );
            prop_assert!(!self.acked.contains(&g.id) && !self.dead.contains(&g.id));
            if let Some(&grp) = self.group_of.get(&g.id) {
                for other in self.held.keys() {
                    prop_assert!(
                        self.group_of.get(other) != Some(&grp),
                        "two of group {} in flight",
                        grp
                    );
                }
                if !self.redriven.contains(&g.id) {
                    let first = self.all.iter().find(|m| {
                        self.group_of.get(m) == Some(&grp)
                            && !self.acked.contains(m)
                            && !self.dead.contains(m)
                            && !self.redriven.contains(m)
                    });
                    prop_assert_eq!(first, Some(&g.id), "group {} out of order", grp);
                }
            }
            prop_assert!(g.lease_until > now);
            self.held.insert(g.id, (g.consumer, g.lease, g.lease_until));
        }
        Ok(())
    }

    fn expire(&mut self, now: Instant) {
        self.held.retain(|_, &mut (_, _, until)| until > now);
    }

    fn pick(&self, i: u8) -> Option<(MessageId, ConsumerId, LeaseId)> {
        let n = self.held.len();
        (n > 0).then(|| {
            let (&id, &(c, l, _)) = self
                .held
                .iter()
                .nth(usize::from(i) % n)
                .unwrap_or_else(|| unreachable!());
            (id, c, l)
        })
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut r = Rig::new();
    let mut m = Model::default();
    let mut n = 0u32;
    for op in ops {
        match op {
            Op::Enqueue {
                group,
                delay,
                dedup,
            } => {
                let mut nm = msg(&format!("p{n}"));
                n += 1;
                if let Some(g) = group {
                    nm = nm.group(format!("g{g}"));
                }
                if let Some(d) = delay {
                    nm = nm.delay(ms(u64::from(d)));
                }
                if let Some(k) = dedup {
                    nm = nm.dedup_id(format!("k{k}"));
                }
                let res = r.core.enqueue(nm, r.now).unwrap();
                let known = dedup
                    .and_then(|k| m.dedup.get(&k))
                    .filter(|(_, exp)| *exp > r.now);
                match known {
                    Some(&(id, _)) => prop_assert_eq!((res.id, res.duplicate), (id, true)),
                    None => {
                        prop_assert!(!res.duplicate);
                        prop_assert!(m.all.insert(res.id));
                        if let Some(g) = group {
                            m.group_of.insert(res.id, g);
                        }
                        if let Some(k) = dedup {
                            m.dedup.insert(k, (res.id, r.now + config().dedup_window));
                        }
                    }
                }
            }
            Op::Subscribe(p) => m.consumers.push(r.core.subscribe(u32::from(p), r.now)),
            Op::Die(i) => {
                if !m.consumers.is_empty() {
                    let c = m.consumers.remove(usize::from(i) % m.consumers.len());
                    prop_assert!(r.core.unsubscribe(c, "died", r.now));
                    m.held.retain(|_, (hc, _, _)| *hc != c);
                }
            }
            Op::Ack(i) => {
                if let Some((id, _, lease)) = m.pick(i) {
                    prop_assert_eq!(r.core.ack(id, lease, r.now), Ok(()));
                    m.held.remove(&id);
                    m.acked.insert(id);
                }
            }
            Op::Nack(i, dead) => {
                if let Some((id, _, lease)) = m.pick(i) {
                    let mut nack = Nack::new("model");
                    if dead {
                        nack = nack.dead_letter();
                    }
                    prop_assert_eq!(r.core.nack(id, lease, nack, r.now), Ok(()));
                    m.held.remove(&id);
                }
            }
            Op::Extend(i) => {
                if let Some((id, _, lease)) = m.pick(i) {
                    let until = r.core.extend(id, lease, ms(60), r.now);
                    prop_assert_eq!(until, Ok(r.now + ms(60)));
                    if let Some(h) = m.held.get_mut(&id) {
                        h.2 = r.now + ms(60);
                    }
                }
            }
            Op::Refuse(i) => {
                if let Some((id, c, lease)) = m.pick(i) {
                    r.core.refused(c, id, lease, r.now);
                    m.held.remove(&id);
                }
            }
            Op::Advance(d) => {
                r.now += ms(u64::from(d));
                m.expire(r.now);
                r.core.tick(r.now);
            }
            Op::Redrive => {
                let dead: Vec<MessageId> = m.dead.iter().copied().collect();
                let moved = r.core.redrive(None, 2, r.now);
                prop_assert_eq!(moved, dead.len().min(2));
                for id in dead.into_iter().take(2) {
                    m.dead.remove(&id);
                    m.redriven.insert(id);
                }
            }
            Op::Compact => r.compact(),
            Op::Restart => {
                r.restart();
                m.held.clear();
                m.consumers.clear();
            }
        }
        r.grants.clear();
        let grants = r.drain();
        for (id, _) in r.dead_seen.drain(..) {
            prop_assert!(m.dead.insert(id));
            m.held.remove(&id);
        }
        m.check_grants(&grants, r.now)?;
        // Nothing lost, nothing resurrected.
        for id in &m.all {
            let st = r.core.state_of(*id);
            if m.acked.contains(id) {
                prop_assert_eq!(st, None, "acked {:?} came back", id);
            } else if m.dead.contains(id) {
                prop_assert_eq!(st, Some(MessageState::Dead));
            } else {
                prop_assert!(st.is_some(), "{:?} lost", id);
                if let Some(MessageState::Leased { lease, .. }) = st {
                    prop_assert_eq!(m.held.get(id).map(|h| h.1), Some(lease));
                }
            }
        }
        let metrics = r.core.metrics(r.now);
        prop_assert_eq!(metrics.in_flight, m.held.len() as u64);
        prop_assert_eq!(metrics.dead_letters, m.dead.len() as u64);
    }
    // Drain: one consumer acks everything; time moves past every delay.
    r.restart();
    m.held.clear();
    r.core.subscribe(1000, r.now);
    for _ in 0..100 {
        let mut grants = r.drain();
        while !grants.is_empty() {
            for g in grants {
                r.core.ack(g.id, g.lease, r.now).unwrap();
                m.acked.insert(g.id);
            }
            grants = r.drain();
        }
        for (id, _) in r.dead_seen.drain(..) {
            m.dead.insert(id);
        }
        if m.acked.len() + m.dead.len() == m.all.len() {
            break;
        }
        r.now += ms(200);
        r.core.tick(r.now);
    }
    prop_assert_eq!(m.acked.len() + m.dead.len(), m.all.len(), "not all settled");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn queue_core_matches_model(ops in proptest::collection::vec(op(), 0..200)) {
        run(ops)?;
    }
}
