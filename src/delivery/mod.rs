//! Delivery: rendering an outbox entry for its target and sending it.

pub mod signature;
