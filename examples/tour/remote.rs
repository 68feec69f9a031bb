//! Chapter 8: two nodes in this process talk over real QUIC on loopback,
//! with mutual TLS from a development CA. The caller holds a
//! `Recipient<Quote>`; it cannot tell that the actor is on another node.

use std::time::Duration;

use plexus::codecs::remote_message;
use plexus::prelude::*;
use plexus::transports::certs::DevCa;
use plexus::transports::quic::{QuicConfig, QuicEndpoint};
use plexus::transports::remote::Remote;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Quote {
    sku: String,
}
remote_message!(Quote, "pricing.Quote", 1, reply = Result<u32, String>);

struct Pricing;
impl Actor for Pricing {}
impl Handler<Quote> for Pricing {
    async fn handle(&mut self, q: Quote, cx: &mut Context<Self>) -> Result<u32, String> {
        println!(
            "   [pricing@b] quote {} for caller {:?}, {} ms of budget left",
            q.sku,
            cx.caller().unwrap_or("local"),
            cx.remaining().map_or(0, |d| d.as_millis())
        );
        match q.sku.as_str() {
            "apple" => Ok(30),
            other => Err(format!("no price for {other}")),
        }
    }
}

/// Runs the chapter.
pub(crate) async fn run() -> Result<(), Box<dyn std::error::Error>> {
    println!("\n8. remote: two nodes over QUIC with mutual TLS");
    let ca = DevCa::generate("tour CA")?;
    let config = |name: &str| -> Result<QuicConfig, Box<dyn std::error::Error>> {
        let c = ca.issue(name)?;
        Ok(QuicConfig::from_pem(&c.cert_pem, &c.key_pem, &ca.cert_pem)?)
    };

    let b = Node::builder().name("b").build();
    b.spawn_with(SpawnOptions::new().name("pricing"), Pricing)?
        .expose::<Quote>()?;
    let rb = Remote::builder(&b).expose::<Quote>()?.build();
    let qb = QuicEndpoint::start(&rb, "b", config("b")?)?;

    let a = Node::builder().name("a").build();
    let ra = Remote::builder(&a).build();
    let qa = QuicEndpoint::start(&ra, "a", config("a")?)?;
    qa.connect("b", qb.local_addr()?);
    tokio::time::timeout(Duration::from_secs(5), ra.connected("b")).await?;
    println!("   a connected to b at {}", qb.local_addr()?);

    let pricing: Recipient<Quote> = ra.recipient("b", "pricing");
    let apple = pricing
        .ask(Quote {
            sku: "apple".into(),
        })
        .timeout(Duration::from_millis(500))
        .await?;
    println!("   apple costs {apple:?}");
    let kiwi = pricing.ask(Quote { sku: "kiwi".into() }).await?;
    println!("   kiwi: {kiwi:?} (the handler's own error type, across the wire)");
    let nobody: Recipient<Quote> = ra.recipient("b", "nobody");
    match nobody
        .ask(Quote {
            sku: "apple".into(),
        })
        .await
    {
        Err(AskError::UnknownTarget { target }) => {
            println!("   no actor {target:?} on b: a typed error")
        }
        other => println!("   unexpected: {other:?}"),
    }
    qa.close();
    qb.close();
    Ok(())
}
