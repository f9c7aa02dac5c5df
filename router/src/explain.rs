//! `triage route explain`: what the router would do with one request, and why, without calling
//! any backend. It also holds [`gather_facts`], the one place that turns a chat request into
//! the [`RequestFacts`] the policy decides on (task from header / `metadata.task` /
//! classifier, PII scan, token count), so the gateway and `explain` cannot disagree.

use std::fmt;

use backends::ChatRequest;
use serde::Serialize;

use crate::classifier::Classification;
use crate::config::Config;
use crate::pii::{Finding, NonTextPart};
use crate::policy::{decide, Action, Decision, NonTextParts, RequestFacts, StateSnapshot};

/// Why a request could not be explained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// The JSON is not a chat completion request.
    #[error("the request is not a chat completion request: {0}")]
    BadRequest(String),
}

/// Where the task came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskSource {
    /// The `x-triage-task` header.
    Header,
    /// `metadata.task` in the body.
    Metadata,
    /// The task classifier, with its decision and explanation.
    Classifier(Classification),
}

/// How the prompt's tokens were counted.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCount {
    /// The local model's tokenizer counted them.
    Exact(usize),
    /// An estimate: ceil(UTF-8 bytes / 4), the usual rule of thumb for English BPE tokenizers.
    Estimate(usize),
}

impl TokenCount {
    /// The count, exact or estimated.
    pub fn value(&self) -> usize {
        match self {
            TokenCount::Exact(n) | TokenCount::Estimate(n) => *n,
        }
    }
}

/// ceil(bytes / 4): a tokenizer-free estimate of a prompt's tokens, named as such wherever shown.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4)
}

/// Everything known about a request before routing, with provenance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatheredFacts {
    /// The facts the policy decides on.
    pub facts: RequestFacts,
    /// Where the task came from.
    pub task_source: TaskSource,
    /// What the PII detector found, by field (empty: nothing).
    pub pii: Vec<Finding>,
    /// Parts the detector could not read (images, audio, files, data URLs).
    pub non_text: Vec<NonTextPart>,
    /// The prompt's token count and whether it is exact.
    pub tokens: TokenCount,
}

/// Turn a request into routing facts. `task_header` is `x-triage-task`; `exact_tokens` is the
/// local tokenizer's count when the caller has one (otherwise an estimate is used and marked).
/// `classified` is the classifier's answer when the caller awaited it (the embedding
/// classifier, [`classify_request`]); otherwise the classifier runs here, synchronously.
pub fn gather_facts(
    config: &Config,
    request: &ChatRequest,
    task_header: Option<&str>,
    tenant: Option<&str>,
    exact_tokens: Option<usize>,
    classified: Option<&Classification>,
) -> GatheredFacts {
    let text = request.all_text();
    let (task, task_source) = match stated_task(request, task_header) {
        Some(stated) => stated,
        None => {
            let c = match classified {
                Some(c) => c.clone(),
                None => config.classifier.classify(&text),
            };
            (c.task.clone(), TaskSource::Classifier(c))
        }
    };
    let scan = config.pii.scan_request(request);
    // Under a privacy rule, what the detector cannot read counts as PII unless the policy
    // refuses it (`pii.non_text`; the refusal is `decide`'s).
    let pii = scan.has_pii()
        || (scan.has_non_text()
            && config.policy.privacy_rule().is_some()
            && config.policy.non_text() == NonTextParts::Local);
    let tokens = match exact_tokens {
        Some(n) => TokenCount::Exact(n),
        None => TokenCount::Estimate(estimate_tokens(&text)),
    };
    let requested_model = if request.model.trim().is_empty() {
        "auto".to_string()
    } else {
        request.model.clone()
    };
    GatheredFacts {
        facts: RequestFacts {
            task,
            pii,
            non_text: scan.has_non_text(),
            prompt_tokens: tokens.value(),
            text,
            requested_model,
            tenant: tenant.map(str::to_string),
            has_tools: request.has_tools(),
            stream: request.is_stream(),
        },
        task_source,
        pii: scan.findings,
        non_text: scan.non_text,
        tokens,
    }
}

/// The task the client stated: the `x-triage-task` header, else `metadata.task` (normalised);
/// `None` when neither is given (then the classifier decides).
pub fn stated_task(
    request: &ChatRequest,
    task_header: Option<&str>,
) -> Option<(String, TaskSource)> {
    if let Some(h) = task_header.filter(|t| !t.trim().is_empty()) {
        return Some((crate::task_name::normalize(h), TaskSource::Header));
    }
    request
        .metadata
        .as_ref()
        .and_then(|m| m.get("task"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.trim().is_empty())
        .map(|m| (crate::task_name::normalize(m), TaskSource::Metadata))
}

/// Whether some route's `when.task` names a task: only then is a request's task worth an
/// encoder pass.
pub fn routes_name_tasks(config: &Config) -> bool {
    config.policy.rules().iter().any(|r| r.when.task.is_some())
}

/// The embedding classifier's answer for a request that needs it — no stated task, a route
/// that names tasks, `classifier.kind: embedding` — with `vector` giving the sentence vector
/// of a text (awaited only when no rule matches); `None` when the request does not need it.
pub async fn classify_request<F, Fut>(
    config: &Config,
    request: &ChatRequest,
    task_header: Option<&str>,
    vector: F,
) -> Option<Classification>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<f32>, String>>,
{
    config.classifier.embedding()?;
    if stated_task(request, task_header).is_some() || !routes_name_tasks(config) {
        return None;
    }
    let text = request.all_text();
    Some(
        config
            .classifier
            .classify_with(&text, vector(text.clone()))
            .await,
    )
}

/// The decision for one request and everything that led to it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    /// The request's facts and where they came from.
    pub gathered: GatheredFacts,
    /// The state the decision assumed (engine loads, spend).
    pub state: StateSnapshot,
    /// What the policy decided.
    pub decision: Decision,
}

/// Explain a request given as JSON text, with an idle engine and nothing spent.
pub fn explain(config: &Config, request_json: &str) -> Result<Explanation, ExplainError> {
    explain_with(config, request_json, None, &StateSnapshot::default())
}

/// Explain with a tenant and a given state (queue depth, spend).
pub fn explain_with(
    config: &Config,
    request_json: &str,
    tenant: Option<&str>,
    state: &StateSnapshot,
) -> Result<Explanation, ExplainError> {
    let request = parse_request(request_json)?;
    explain_request(config, &request, tenant, state, None)
}

/// Parse a chat completion request body.
pub fn parse_request(request_json: &str) -> Result<ChatRequest, ExplainError> {
    serde_json::from_str(request_json).map_err(|e| ExplainError::BadRequest(e.to_string()))
}

/// Explain a parsed request; `classified` as for [`gather_facts`] (`triage route explain`
/// awaits the embedding classifier first, as the gateway does).
pub fn explain_request(
    config: &Config,
    request: &ChatRequest,
    tenant: Option<&str>,
    state: &StateSnapshot,
    classified: Option<&Classification>,
) -> Result<Explanation, ExplainError> {
    let gathered = gather_facts(config, request, None, tenant, None, classified);
    let decision = decide(&config.policy, &gathered.facts, state);
    Ok(Explanation {
        gathered,
        state: state.clone(),
        decision,
    })
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.gathered;
        let facts = &g.facts;
        let task = crate::terminal::safe(&facts.task);
        match &g.task_source {
            TaskSource::Header => writeln!(f, "task:     {task} (from x-triage-task)")?,
            TaskSource::Metadata => writeln!(f, "task:     {task} (from metadata.task)")?,
            TaskSource::Classifier(c) => writeln!(
                f,
                "task:     {} (classifier: {}, confidence {:.2}: {})",
                facts.task,
                c.decided_by.as_str(),
                c.confidence,
                c.explanation
            )?,
        }
        if g.pii.is_empty() {
            writeln!(f, "pii:      none detected")?;
        } else {
            let spans: Vec<String> = g
                .pii
                .iter()
                .map(|s| {
                    // Field names come from the client (unmodelled keys): no control characters.
                    let field = crate::terminal::safe(&s.field);
                    match s.span {
                        Some((start, end)) => {
                            format!("{} in {field} at bytes {start}..{end}", s.kind)
                        }
                        None => format!("{} in {field}", s.kind),
                    }
                })
                .collect();
            writeln!(f, "pii:      {}", spans.join(", "))?;
        }
        if !g.non_text.is_empty() {
            let parts: Vec<String> = g
                .non_text
                .iter()
                .map(|p| format!("{} in {}", p.kind, crate::terminal::safe(&p.field)))
                .collect();
            writeln!(f, "unread:   {} (not scanned for PII)", parts.join(", "))?;
        }
        match &g.tokens {
            TokenCount::Exact(n) => writeln!(f, "prompt:   {n} tokens")?,
            TokenCount::Estimate(n) => writeln!(
                f,
                "prompt:   ~{n} tokens (estimate: UTF-8 bytes / 4; the gateway counts with the local tokenizer)"
            )?,
        }
        writeln!(
            f,
            "request:  model {}, tenant {}, tools {}, stream {}",
            facts.requested_model,
            facts.tenant.as_deref().unwrap_or("-"),
            facts.has_tools,
            facts.stream
        )?;
        let d = &self.decision;
        let action = match &d.action {
            Action::Backend(b) => format!("→ {b}"),
            Action::Cascade(c) => format!("→ cascade: {}", c.describe()),
            Action::Refuse { status, message } => format!("→ refuse {status}: {message}"),
        };
        writeln!(f, "decision: route {:?} {action}", d.route)?;
        if !d.fallback.is_empty() {
            writeln!(f, "fallback: {}", d.fallback.join(", "))?;
        }
        writeln!(f, "reason:   {}", d.reason)?;
        writeln!(f, "trace:")?;
        for t in &d.trace {
            writeln!(f, "  - {t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONFIG: &str = "
backends:
  slm: { kind: llama, model: m.gguf }
  llm: { kind: openai, model: gpt-4o-mini }
routes:
  - { name: private, when: { pii: true }, to: slm }
  - { name: small, when: { task: [sentiment] }, to: slm }
  - { name: default, to: llm, fallback: [slm] }
classifier:
  rules:
    - { task: sentiment, keywords: [sentiment] }
";

    fn config() -> Config {
        Config::parse(CONFIG, "t.yaml", Path::new(".")).unwrap()
    }

    #[test]
    fn explains_classifier_pii_and_decision() {
        let c = config();
        let e = explain(
            &c,
            r#"{"model":"auto","messages":[{"role":"user","content":"What is the sentiment of: great!"}]}"#,
        )
        .unwrap();
        assert_eq!(e.gathered.facts.task, "sentiment");
        assert_eq!(e.decision.route, "small");
        let text = e.to_string();
        assert!(text.contains("classifier: rule, confidence 1.00"), "{text}");
        assert!(text.contains("estimate"), "{text}");
        assert!(text.contains("route \"small\" → slm"), "{text}");

        let e = explain(
            &c,
            r#"{"model":"auto","metadata":{"task":"qa"},"messages":[{"role":"user","content":"mail me at a@b.io"}]}"#,
        )
        .unwrap();
        assert_eq!(e.gathered.task_source, TaskSource::Metadata);
        assert_eq!(e.decision.route, "private");
        assert!(
            e.to_string()
                .contains("email in messages[0].content at bytes 11..17"),
            "{e}"
        );
        assert!(
            !e.to_string().contains("a@b.io"),
            "PII text must not be echoed"
        );
    }

    #[test]
    fn header_wins_and_bad_json_is_an_error() {
        let c = config();
        let req = ChatRequest::user("", "What is the sentiment of: meh");
        let g = gather_facts(&c, &req, Some("qa"), Some("alice"), Some(9), None);
        assert_eq!(
            (g.facts.task.as_str(), &g.task_source, &g.tokens),
            ("qa", &TaskSource::Header, &TokenCount::Exact(9))
        );
        assert_eq!(g.facts.requested_model, "auto");
        assert_eq!(g.facts.tenant.as_deref(), Some("alice"));
        assert!(matches!(
            explain(&c, "{\"messages\": 3}"),
            Err(ExplainError::BadRequest(_))
        ));
    }
}
