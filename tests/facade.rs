//! A cross-crate story through the `plexus` facade: everything a service
//! needs is reachable from `plexus::prelude` and the re-exported modules.

use std::time::Duration;

use plexus::clock::ManualClock;
use plexus::prelude::*;
use plexus::supervision::{Backoff, SupervisionStrategy};

struct Account {
    balance: i64,
}
impl Actor for Account {}

enum Op {
    Deposit(i64),
    Withdraw(i64),
}
impl Message for Op {
    type Reply = Result<i64, String>;
}

impl Handler<Op> for Account {
    async fn handle(&mut self, op: Op, _: &mut Context<Self>) -> Result<i64, String> {
        match op {
            Op::Deposit(n) => self.balance += n,
            Op::Withdraw(n) if n > self.balance => {
                return Err(format!("insufficient funds: {}", self.balance));
            }
            Op::Withdraw(n) => self.balance -= n,
        }
        Ok(self.balance)
    }
}

#[tokio::test]
async fn a_service_behind_a_recipient_through_the_facade() {
    let node = Node::builder()
        .name("bank")
        .seed(1)
        .clock(ManualClock::new())
        .supervision(SupervisionStrategy::one_for_one().backoff(Backoff::none()))
        .build();
    let account = node
        .spawn_factory(SpawnOptions::new().name("acct-1").capacity(8), || Account {
            balance: 0,
        })
        .expect("spawn");
    account.expose::<Op>().expect("expose");

    let ops: Recipient<Op> = node.lookup_recipient("acct-1").expect("lookup");
    assert_eq!(ops.ask(Op::Deposit(100)).await.expect("ask"), Ok(100));
    assert_eq!(ops.ask(Op::Withdraw(30)).await.expect("ask"), Ok(70));
    assert_eq!(
        ops.ask(Op::Withdraw(500)).await.expect("ask"),
        Err("insufficient funds: 70".to_string())
    );

    let report = node.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.stopped, 1);
    assert!(matches!(
        ops.tell(Op::Deposit(1)).await,
        Err(SendError::Closed { .. })
    ));
}

/// A remote service needs nothing beyond `plexus::prelude` for its message
/// and its endpoint; here two nodes talk over the simulated network.
#[derive(serde::Serialize, serde::Deserialize)]
struct Greet(String);
remote_message!(Greet, "facade.Greet", 1, reply = String);

struct Greeter;
impl Actor for Greeter {}
impl Handler<Greet> for Greeter {
    async fn handle(&mut self, Greet(who): Greet, _: &mut Context<Self>) -> String {
        format!("hello, {who}")
    }
}

#[tokio::test]
async fn the_prelude_is_enough_for_a_remote_service() {
    let server = Node::builder().name("server").build();
    let client = Node::builder().name("client").build();
    let greeter = server
        .spawn_with(SpawnOptions::new().name("greeter"), Greeter)
        .unwrap();
    greeter.expose::<Greet>().unwrap();
    let rs = Remote::builder(&server).expose::<Greet>().unwrap().build();
    let rc = Remote::builder(&client).build();
    let net = plexus::transports::sim::SimNetwork::with_clock(client.clock().clone(), 1);
    let (c, s) = net.link("client", "server");
    let (a, b) = tokio::join!(rc.attach(c), rs.attach(s));
    a.unwrap();
    b.unwrap();
    let greet: Recipient<Greet> = rc.recipient("server", "greeter");
    assert_eq!(
        greet.ask(Greet("plexus".into())).await.unwrap(),
        "hello, plexus"
    );
}
