//! Routing: config, policy, classifier, PII detector, pricing, ledger and the gateway server.

pub mod events;
pub mod gateway;
pub mod metrics;
