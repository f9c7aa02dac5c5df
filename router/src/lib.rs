//! Routing: config, policy, classifier, PII detector, pricing, ledger and the gateway server.
pub mod classifier;
pub mod pii;
pub mod pricing;
