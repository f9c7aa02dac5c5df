//! # bench
//!
//! The benchmark harness: it answers "for my tasks, how much quality do I lose, and how much
//! latency and money do I save, if this goes to the small model?" with numbers that hold up.
//!
//! - [`scenario`]: scenario and suite files (YAML, validated, with a published JSON schema);
//! - [`dataset`]: inline items or JSONL/CSV/TSV/JSON files, field mapping, seeded sampling;
//! - [`template`]: `{{field}}` prompt and expected-answer templates;
//! - [`fewshot`]: few-shot examples drawn from a scenario's own items (calibration half only);
//! - [`score`]: scorers, each giving a score in [0, 1] and keeping its raw value;
//! - [`spec`]: `--target NAME=SPEC` strings (openai, anthropic, llama, replay, router) into
//!   targets;
//! - [`target`]: what a request is sent to (any [`backends::Backend`], or an OpenAI-compatible
//!   gateway whose routing headers and settled cost are captured); [`router_target`]: the
//!   triage gateway of a `triage.yaml` built in-process;
//! - [`runner`]: the load generator (sequential, closed loop, open loop with
//!   coordinated-omission correction); the private `request` module sends one item and turns
//!   its stream events into a [`record::RequestRecord`]; [`progress`] reports progress (a
//!   terminal bar, or silent);
//! - [`record`]: what a run records (one record per request, one [`record::TargetRun`] per
//!   target);
//! - [`suite`]: a whole run — every target in turn, then the run directory with its metadata;
//! - [`stats`] and [`results`]: HDR histograms, confidence intervals, the run directory
//!   (`requests.jsonl`, `summary.json`, `histograms.json`, `metadata.json`);
//! - [`compare`] and [`calibrate`]: reading runs back — tables across runs, and the offline
//!   cascade-threshold sweep (cost–quality frontier, APGR, CPT) with an SVG plot;
//! - [`fit`]: per-task routing calibration (always SLM, always LLM or a cascade on a signal),
//!   chosen on a calibration half and reported on an evaluation half, with signal AUROCs;
//! - [`classifier_data`] and [`classifier_train`]: `triage route train` — the router's task
//!   classifier trained on the scenarios' items and the shared datasets' explicitly mapped
//!   texts, measured on a seeded, stratified held-out part;
//! - [`head_train`]: `triage route train --head embedding` — encoder classifier heads trained
//!   on the calibration half of `choices` scenarios (and [`head_data`]'s labelled shared
//!   datasets), measured on the evaluation half and the datasets' held-out parts;
//! - [`rag`]: retrieval-augmented QA scenarios — the corpus chunked and embedded once per run,
//!   the same passages given to every target, recall@k, faithfulness and abstentions;
//! - [`replay`]: a backend answering from recorded responses, and RouteLLM's recorded
//!   Mixtral-vs-GPT-4 benchmark for evaluating routers offline.
//!
//! - [`soak`]: `triage bench soak` — a real `triage serve` driven at a fixed rate against a
//!   fault-injecting upstream (a TEST DOUBLE), checking one response and one ledger row per
//!   request and a flat resident memory.
//!
//! - [`hw`] (feature `llama`): `triage hw` — prompt and generation speed of a local model
//!   through triage's own engine, continuous-batching concurrency, the memory-bandwidth roofline.
//!
//! The library never prints (the terminal progress bar aside, which the binary chooses); the
//! binary's `bench`/`hw` subcommands do.

#![warn(missing_docs)]

pub mod calibrate;
pub mod classifier_data;
pub mod classifier_train;
pub mod classifier_train_embedding;
pub mod compare;
pub mod dataset;
pub mod error;
pub mod fewshot;
pub mod fit;
pub mod half;
pub mod head_data;
pub mod head_train;
#[cfg(feature = "llama")]
pub mod hw;
mod load_spec;
pub mod probe;
pub mod progress;
pub mod rag;
pub mod record;
pub mod replay;
mod request;
pub mod results;
pub mod router_target;
pub mod runner;
pub mod scenario;
pub mod score;
pub mod soak;
pub mod spec;
pub mod stats;
pub mod suite;
mod suite_file;
pub mod target;
pub mod template;

pub use error::{BenchError, Result};
