//! Consumers that push records to any [`Recipient<Delivery>`](crate::Recipient)
//! with a bounded number of deliveries in flight: [`Subscription`] (chosen
//! partitions, no group) and [`GroupConsumer`] (a member of a consumer
//! group, committing offsets).

mod feeder;
mod group_consumer;
mod subscription;

pub use feeder::{ConsumerConfig, Delivery};
pub use group_consumer::{GroupConsumer, Positions};
pub use subscription::Subscription;
