//! Chapter 8: two nodes in this process talk over real QUIC on loopback,
//! with mutual TLS from a development CA. The caller holds a
//! `Recipient<Quote>`; it cannot tell that the actor is on another node.
//! Then a server stream (price ticks, read at the caller's pace) and a
//! bidirectional stream (a basket: skus in, running totals out).

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

/// Server streaming: the next `count` prices of a sku.
#[derive(Serialize, Deserialize)]
struct Ticks {
    sku: String,
    count: u32,
}
remote_message!(Ticks, "pricing.Ticks", 1, stream = u32);

/// Bidirectional: skus in, the basket's running total out.
#[derive(Serialize, Deserialize)]
struct Basket;
remote_message!(Basket, "pricing.Basket", 1, input = String, output = u32);

fn price(sku: &str) -> Option<u32> {
    match sku {
        "apple" => Some(30),
        "pear" => Some(45),
        _ => None,
    }
}

struct Pricing;
impl Actor for Pricing {}

impl Handler<Ticks> for Pricing {
    async fn handle(&mut self, t: Ticks, _: &mut Context<Self>) -> ReplyStream<u32> {
        let (tx, ticks) = ReplyStream::channel(2);
        let base = price(&t.sku).unwrap_or(0);
        tokio::spawn(async move {
            for i in 0..t.count {
                // Waits for the caller to read (channel of 2 + credit).
                if tx.send(base + i % 3).await.is_err() {
                    return;
                }
            }
        });
        ticks
    }
}

impl Handler<Duplex<Basket>> for Pricing {
    async fn handle(&mut self, call: Duplex<Basket>, _: &mut Context<Self>) -> ReplyStream<u32> {
        let mut skus = call.input;
        let (tx, totals) = ReplyStream::channel(2);
        tokio::spawn(async move {
            let mut total = 0;
            while let Some(Ok(sku)) = skus.next().await {
                total += price(&sku).unwrap_or(0);
                if tx.send(total).await.is_err() {
                    return;
                }
            }
        });
        totals
    }
}
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
    let pricing = b.spawn_with(SpawnOptions::new().name("pricing"), Pricing)?;
    pricing.expose::<Quote>()?;
    pricing.expose::<Ticks>()?;
    pricing.expose::<Duplex<Basket>>()?;
    let rb = Remote::builder(&b)
        .expose::<Quote>()?
        .expose_stream::<Ticks>()?
        .expose_duplex::<Basket>()?
        .build();
    let qb = QuicEndpoint::start(&rb, config("b")?)?;

    let a = Node::builder().name("a").build();
    let ra = Remote::builder(&a).build();
    let qa = QuicEndpoint::start(&ra, config("a")?)?;
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

    let ticks: Recipient<Ticks> = ra.stream_recipient("b", "pricing");
    let mut stream = ticks
        .ask(Ticks {
            sku: "pear".into(),
            count: 1_000_000,
        })
        .await?;
    let mut first = Vec::new();
    while let Some(tick) = stream.next().await {
        first.push(tick?);
        if first.len() == 5 {
            break;
        }
    }
    drop(stream); // cancels the producer on b: it had only run a window ahead
    println!("   pear ticks, read at our pace: {first:?}, then dropped the stream");

    let basket: Recipient<Duplex<Basket>> = ra.duplex_recipient("b", "pricing");
    let (skus, input) = ReplyStream::channel(2);
    let mut totals = basket.ask(Duplex::new(Basket, input)).await?;
    for sku in ["apple", "pear", "apple"] {
        skus.send(sku.to_owned()).await?;
        if let Some(total) = totals.next().await {
            println!("   basket + {sku:<5} = {}", total?);
        }
    }
    drop(skus); // end of input ends the output
    println!("   basket closed: {:?}", totals.next().await.transpose()?);
    qa.close();
    qb.close();
    Ok(())
}
