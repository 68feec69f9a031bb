use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

#[test]
fn a_lost_link_fails_waiters_in_the_order_they_asked() {
    let mut pending = Pending::new();
    let ids: Vec<u64> = (0..100).map(|i| pending.insert(i)).collect();
    for id in ids.iter().step_by(3) {
        pending.take(*id);
    }
    let left: Vec<u64> = pending.drain().collect();
    let expected: Vec<u64> = (0..100).filter(|i| i % 3 != 0).collect();
    assert_eq!(left, expected);
    assert!(pending.is_empty());
}

proptest! {
    /// However sender and receiver interleave, the items in flight never
    /// exceed the window, and every item is eventually granted back.
    #[test]
    fn credits_bound_what_is_in_flight(window in 1u64..32, steps in proptest::collection::vec(any::<bool>(), 0..512)) {
        let mut send = SendWindow::new(window);
        let mut recv = RecvWindow::new(window);
        let mut in_flight: VecDeque<()> = VecDeque::new();
        for send_step in steps {
            if send_step {
                if send.try_take() { in_flight.push_back(()); }
            } else if in_flight.pop_front().is_some()
                && let Some(n) = recv.accepted(in_flight.is_empty()) {
                send.grant(n);
            }
            prop_assert!(in_flight.len() as u64 + send.available() <= window);
        }
        while in_flight.pop_front().is_some() {
            if let Some(n) = recv.accepted(in_flight.is_empty()) { send.grant(n); }
        }
        prop_assert_eq!(send.available(), window);
    }
}

#[test]
fn pending_drains_everything_on_link_loss() {
    let mut p = Pending::new();
    let ids: Vec<u64> = (0..5).map(|i| p.insert(i)).collect();
    assert_eq!(p.take(ids[1]), Some(1));
    let mut rest: Vec<i32> = p.drain().collect();
    rest.sort_unstable();
    assert_eq!(rest, vec![0, 2, 3, 4]);
    assert!(p.is_empty());
}

#[test]
fn budget_round_trips_through_the_wire_form() {
    let now = std::time::Instant::now();
    let d = now + std::time::Duration::from_millis(250);
    assert_eq!(deadline_from_budget(budget(d, now), now), d);
    assert_eq!(budget(now, d), std::time::Duration::ZERO);
}
