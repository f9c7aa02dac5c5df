//! The encoder classifier backend (`kind: classifier`, harness target `classifier:`): answers a
//! chat request that carries `choices` from a sentence embedding and a trained [`Head`], without
//! generating text — milliseconds where a generative model scores every choice token by token.
//!
//! The request's [`classifier_text`] (its last user message) is embedded by the shared
//! [`EmbeddingEngine`] (the loader and thread `/v1/embeddings` uses), the head gives every label
//! a probability, and the answer is the most probable of the request's `choices` (probabilities
//! renormalised over them), written exactly as listed. It carries what a scored `choices`
//! answer from the local engine carries, so cascades and the harness read it the same way:
//! `Signals{choice_probs, chosen}` (`p_chosen`, `margin`), the answer's log-probability as its
//! one token's `logprobs` entry, usage (the encoder's tokens in, nothing generated) and the
//! engine's busy seconds (`LocalCompute`, billed at the machine's $/hour).
//!
//! Which head: the one whose task is the request's `metadata.task` when there is one, else the
//! one head whose labels include every choice (the smallest such label set). A request without
//! `choices`, with labels no head knows, or asking for what a classifier cannot give (tools, a
//! JSON schema, several answers) is [`BackendError::Unsupported`]: a 400, or the route's
//! fallback. Temperature is ignored: the answer is always the arg-max.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use crate::embed::EmbeddingEngine;
use crate::head::{classifier_text, EncoderId, Head, HeadError};
use crate::{
    collect_stream, Backend, BackendError, ChatEvent, ChatRequest, ChatResponse, EventStream,
    FinishReason, Result, Signals, TokenLogprob, Usage,
};

/// An embedding engine and the heads that read its vectors. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ClassifierBackend {
    engine: EmbeddingEngine,
    heads: Arc<Vec<Head>>,
}

/// One classified request: the label, every choice's probability and the engine's share.
#[derive(Clone, Debug, PartialEq)]
pub struct Classified {
    /// The answer (one of the request's choices, as listed).
    pub label: String,
    /// The signals (`choice_probs` over the request's choices, `chosen`).
    pub signals: Signals,
    /// Encoder tokens read.
    pub prompt_tokens: u64,
    /// Engine-busy seconds attributed to the request.
    pub busy_secs: f64,
}

impl ClassifierBackend {
    /// A classifier over `engine` with `heads`, each checked against the engine's model (file
    /// hash and width) and none answering the same task twice.
    pub fn new(engine: EmbeddingEngine, heads: Vec<Head>) -> Result<ClassifierBackend> {
        if heads.is_empty() {
            return Err(BackendError::Config(
                "a classifier needs at least one head".into(),
            ));
        }
        let actual = EncoderId::of_file(&engine.config().model_path, engine.dimensions())
            .map_err(head_error)?;
        for (i, head) in heads.iter().enumerate() {
            head.check_encoder(&actual).map_err(head_error)?;
            if heads.iter().skip(i + 1).any(|h| h.task == head.task) {
                return Err(BackendError::Config(format!(
                    "two heads answer the task `{}`",
                    head.task
                )));
            }
        }
        Ok(ClassifierBackend {
            engine,
            heads: Arc::new(heads),
        })
    }

    /// The embedding engine the heads read.
    pub fn engine(&self) -> &EmbeddingEngine {
        &self.engine
    }

    /// The heads, in the order given.
    pub fn heads(&self) -> &[Head] {
        &self.heads
    }

    /// The head for `request`: its task's, else the one with the fewest labels that include
    /// every choice.
    fn head_for(&self, request: &ChatRequest, choices: &[String]) -> Result<&Head> {
        let task = request
            .metadata
            .as_ref()
            .and_then(|m| m.get("task"))
            .and_then(|t| t.as_str());
        if let Some(head) = task.and_then(|t| self.heads.iter().find(|h| h.task == t)) {
            return Ok(head);
        }
        self.heads
            .iter()
            .filter(|h| h.knows(choices))
            .min_by_key(|h| h.labels.len())
            .ok_or_else(|| {
                let known: Vec<String> = self
                    .heads
                    .iter()
                    .map(|h| format!("{}: {}", h.task, h.labels.join(", ")))
                    .collect();
                BackendError::Unsupported(format!(
                    "no classifier head knows the choices [{}] (heads: {})",
                    choices.join(", "),
                    known.join("; ")
                ))
            })
    }

    /// Classify `request`: the checks, the embedding, the head.
    pub async fn classify(&self, request: &ChatRequest) -> Result<Classified> {
        let unsupported = |why: &str| Err(BackendError::Unsupported(why.to_string()));
        let Some(choices) = request.choices.as_deref().filter(|c| !c.is_empty()) else {
            return unsupported(
                "a classifier answers only requests with `choices` (the allowed answers)",
            );
        };
        if request.has_tools() {
            return unsupported("a classifier cannot call tools");
        }
        if request.response_format.is_some() {
            return unsupported("a classifier answers `choices`, not a `response_format`");
        }
        if request.n.is_some_and(|n| n > 1) {
            return unsupported("a classifier gives one answer (`n` must be 1)");
        }
        let head = self.head_for(request, choices)?;
        let text = classifier_text(request).ok_or_else(|| {
            BackendError::InvalidRequest("the request has no user message to classify".into())
        })?;
        let embedded = self.engine.embed(&[text.as_str()]).await?;
        let vector = embedded
            .vectors
            .first()
            .ok_or_else(|| BackendError::Engine("the encoder returned no vector".into()))?;
        let probs = head
            .choice_probabilities(vector, choices)
            .map_err(BackendError::Unsupported)?;
        let chosen = probs
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |best, (i, &p)| {
                if p > best.1 {
                    (i, p)
                } else {
                    best
                }
            })
            .0;
        Ok(Classified {
            label: choices.get(chosen).cloned().unwrap_or_default(),
            signals: Signals {
                choice_probs: Some(choices.iter().cloned().zip(probs).collect()),
                chosen: Some(chosen),
                ..Signals::default()
            },
            prompt_tokens: embedded.prompt_tokens,
            busy_secs: embedded.busy_secs,
        })
    }
}

fn head_error(e: HeadError) -> BackendError {
    BackendError::Config(e.to_string())
}

/// The events of a classified answer, in the order the local engine sends a scored answer's.
fn events(c: Classified, started: Instant) -> Vec<Result<ChatEvent>> {
    let at = Instant::now();
    let p = c.signals.p_chosen().unwrap_or(0.0);
    let logprob = TokenLogprob {
        token: c.label.clone(),
        logprob: p.ln().max(-1e4) as f32,
        bytes: Some(c.label.as_bytes().to_vec()),
        top_logprobs: Vec::new(),
    };
    let usage = Usage::new(u32::try_from(c.prompt_tokens).unwrap_or(u32::MAX), 0);
    vec![
        Ok(ChatEvent::FirstByte { at: started }),
        Ok(ChatEvent::Token {
            choice: 0,
            text: c.label,
            logprobs: vec![logprob],
            at,
        }),
        Ok(ChatEvent::Usage { usage, at }),
        Ok(ChatEvent::LocalCompute {
            busy_secs: c.busy_secs,
            at,
        }),
        Ok(ChatEvent::Signals {
            signals: c.signals,
            at,
        }),
        Ok(ChatEvent::Done {
            choice: 0,
            finish_reason: FinishReason::Stop,
            stop_sequence: None,
            at,
        }),
    ]
}

impl Backend for ClassifierBackend {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        let model = request.model.clone();
        let stream = self.chat_stream(request).await?;
        collect_stream(stream, &model).await
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream> {
        let started = Instant::now();
        let classified = self.classify(&request).await?;
        Ok(futures::stream::iter(events(classified, started)).boxed())
    }
}
