//! # bench
//!
//! The measuring side of triage: the scenario harness (issue 5, being built) and `triage hw`
//! ([`hw`], feature `llama`): prompt and generation speed of a local model through triage's own
//! engine, continuous-batching concurrency, and the memory-bandwidth roofline.

#[cfg(feature = "llama")]
pub mod hw;
