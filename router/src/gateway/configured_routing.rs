//! The routing core configured by `triage.yaml` ([`PolicyCore`]): its policy, classifier, PII detector and prices, and a
//! [`Store`] for budgets and the ledger.
//!
//! Ledger rows are written by one background thread ([`LedgerWriter`]) that collects them in
//! batches, so a request never waits for SQLite nor wakes its writer; budgets are admitted against an in-memory reservation ledger
//! (`admission.rs`, [`crate::reserve`]) seeded from the SQLite spend counters once per window. [`PolicyCore::flush`] waits until every row sent so far is written
//! (tests, shutdown).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::admission;
use super::error::ApiError;
use super::routing::{AdmitInput, RouteInfo, RouteInput, Routed, RoutingCore};
use crate::config::Config;
use crate::events::RequestSummary;
use backends::ChatRequest;

use super::backend::BackendSlot;
use crate::classifier::Classification;
use crate::explain::{classify_request, gather_facts, TaskSource};
use crate::ledger::{now_unix_ms, LedgerRow};
use crate::policy::{decide, decide_pinned, RuleAction, StateSnapshot};
use crate::pricing::{CostBreakdown, Usage};
use crate::reserve::{HoldSlot, LocalLedger, RedisLedger, ReservationLedger};
use crate::store::{LedgerWriter, Store};

/// Policy, pricing, budgets and ledger from one configuration.
pub struct PolicyCore {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    writer: LedgerWriter,
    policy_models: Vec<RouteInfo>,
    /// Whether a rule has a `prompt_tokens` condition (then prompts are tokenized locally).
    token_rules: bool,
    /// Settled and reserved spend per budget window (the budgets' authority in this process).
    reservations: Arc<dyn ReservationLedger>,
}

impl std::fmt::Debug for PolicyCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCore")
            .field("config", &self.config.file)
            .finish_non_exhaustive()
    }
}

impl PolicyCore {
    /// Start the ledger writer thread and build the core.
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>) -> Self {
        let tx = LedgerWriter::start(store.clone());
        let reservations = ledger_for(&config);
        Self::with_parts(config, store, tx, reservations)
    }

    /// The core of a reloaded configuration: `config`'s policy, prices and budgets over this
    /// core's store, ledger writer and budget reservations (money reserved by requests in
    /// flight stays reserved; spend counted so far still counts against the new limits).
    pub fn reconfigured(&self, config: Arc<Config>) -> Self {
        Self::with_parts(
            config,
            self.store.clone(),
            self.writer.clone(),
            self.reservations.clone(),
        )
    }

    fn with_parts(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        writer: LedgerWriter,
        reservations: Arc<dyn ReservationLedger>,
    ) -> Self {
        let mut policy_models = vec![RouteInfo {
            name: "auto".into(),
            description: "routed by the policy".into(),
        }];
        for rule in config.policy.rules() {
            for model in rule.when.model.iter().flat_map(|m| m.as_slice()) {
                if config.backends.contains_key(model)
                    || policy_models.iter().any(|m| &m.name == model)
                {
                    continue;
                }
                policy_models.push(RouteInfo {
                    name: model.clone(),
                    description: format!("routed by the policy (rule {:?} matches it)", rule.name),
                });
            }
        }
        let token_rules = config
            .policy
            .rules()
            .iter()
            .any(|r| r.when.prompt_tokens.is_some());
        Self {
            store,
            writer,
            policy_models,
            token_rules,
            reservations,
            config,
        }
    }

    /// The reservation ledger budgets are admitted against.
    pub fn reservations(&self) -> &Arc<dyn ReservationLedger> {
        &self.reservations
    }

    /// The configuration routing runs on.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where spend counters and ledger rows are kept.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Block until every ledger row recorded so far is written (and, for a buffered store such
    /// as Postgres, committed).
    pub fn flush(&self) {
        self.writer.flush();
    }
}

/// The reservation ledger `config` asks for: Redis with `store: redis://…`, else in process.
fn ledger_for(config: &Config) -> Arc<dyn ReservationLedger> {
    let Some(url) = &config.shared.store else {
        return Arc::new(LocalLedger::new());
    };
    match RedisLedger::new(url) {
        Ok(ledger) => {
            tracing::info!(store = %url, failure = ?config.shared.on_failure, "budgets and rate limits are shared through Redis");
            Arc::new(ledger)
        }
        Err(e) => {
            // Validation opened the same URL, so this is not expected; budgets then hold for
            // this process only, which the log says.
            tracing::error!(error = %e, "shared store unusable; budgets and rate limits are kept in this process only");
            Arc::new(LocalLedger::new())
        }
    }
}

/// The ledger row of a finished request.
pub fn ledger_row(s: &RequestSummary) -> LedgerRow {
    LedgerRow {
        time_unix_ms: i64::try_from(s.unix_ms).unwrap_or(i64::MAX),
        key: s.key.clone().unwrap_or_else(|| "-".into()),
        task: s.task.clone().unwrap_or_else(|| "-".into()),
        route: s.route.clone().unwrap_or_else(|| "-".into()),
        backends: s.tried.clone(),
        answered_by: s.backend.clone().filter(|b| s.tried.last() != Some(b)),
        escalated: s.escalated,
        tokens_in: u64::from(s.prompt_tokens),
        tokens_out: u64::from(s.completion_tokens),
        cost_usd: s.cost_usd,
        saved_usd: s.saved_usd,
        ttft_ms: s.ttft_ms,
        e2e_ms: s.e2e_ms,
        status: s.status,
        // A cascade that kept its first answer because the escalation failed is a success
        // (status 200) with a code saying so.
        error_code: s.error.clone().or_else(|| {
            s.escalation_failed
                .as_ref()
                .map(|code| format!("escalation_failed:{code}"))
        }),
    }
}

impl RoutingCore for PolicyCore {
    fn policy_models(&self) -> Vec<RouteInfo> {
        self.policy_models.clone()
    }

    fn routes(&self) -> Vec<RouteInfo> {
        self.config
            .policy
            .rules()
            .iter()
            .map(|r| RouteInfo {
                name: r.name.clone(),
                description: match &r.action {
                    RuleAction::To(b) => format!("to {b}"),
                    RuleAction::Cascade(c) => format!("cascade: {}", c.describe()),
                },
            })
            .collect()
    }

    fn decide(&self, input: &RouteInput<'_>) -> Routed {
        let budgets = self.config.policy.budgets().is_some();
        let exact_tokens = if self.token_rules || budgets {
            input
                .count_tokens
                .and_then(|count| (count.0)(input.request))
        } else {
            None
        };
        let gathered = gather_facts(
            &self.config,
            input.request,
            input.task_header,
            input.tenant,
            exact_tokens,
            input.classified,
        );
        let now_ms = now_unix_ms();
        let spend = if budgets {
            admission::spend(&*self.reservations, &*self.store, input.tenant, now_ms)
        } else {
            Default::default()
        };
        let state = StateSnapshot {
            local: input.local.clone(),
            spend,
        };
        let decision = match input.pinned {
            Some(backend) => decide_pinned(&self.config.policy, &gathered.facts, &state, backend),
            None => decide(&self.config.policy, &gathered.facts, &state),
        };
        let prompt_tokens = gathered.facts.prompt_tokens;
        Routed {
            prompt_tokens: u32::try_from(prompt_tokens).unwrap_or(u32::MAX),
            hold: HoldSlot::default(),
            decision,
            task: gathered.facts.task,
            classifier: match &gathered.task_source {
                TaskSource::Classifier(c) => {
                    Some(format!("{} p={:.2}", c.decided_by.as_str(), c.confidence))
                }
                _ => None,
            },
            task_source: match gathered.task_source {
                TaskSource::Header => "header",
                TaskSource::Metadata => "metadata",
                TaskSource::Classifier(_) => "classifier",
            }
            .into(),
        }
    }

    fn classify<'a>(
        &'a self,
        request: &'a ChatRequest,
        task_header: Option<&'a str>,
        encoder: Option<&'a Arc<BackendSlot>>,
    ) -> BoxFuture<'a, Option<Classification>> {
        Box::pin(async move {
            let vector = |text: String| async move {
                let Some(slot) = encoder else {
                    return Err("no encoder is loaded".to_string());
                };
                let handle = slot
                    .handle()
                    .map_err(|e| format!("encoder {}: {e}", slot.name))?;
                handle
                    .sentence_vector(text)
                    .await
                    .map_err(|e| format!("encoder {}: {e}", slot.name))
            };
            classify_request(&self.config, request, task_header, vector).await
        })
    }

    fn admit<'a>(
        &'a self,
        routed: Routed,
        input: AdmitInput<'a>,
    ) -> BoxFuture<'a, Result<Routed, ApiError>> {
        Box::pin(async move {
            let ask = admission::Ask {
                tenant: input.tenant,
                prompt_tokens: u64::from(routed.prompt_tokens),
                max_output_tokens: input.request.max_output_tokens(),
                expires: input.expires,
                now_unix_ms: now_unix_ms(),
            };
            let (decision, hold) =
                admission::admit(&self.config, &self.reservations, routed.decision, &ask).await?;
            Ok(Routed {
                decision,
                hold: hold.map(HoldSlot::new).unwrap_or_default(),
                ..routed
            })
        })
    }

    fn store_health(&self) -> Option<&crate::reserve::StoreHealth> {
        self.reservations.health()
    }

    fn cost(&self, calls: &[(&str, Usage)]) -> CostBreakdown {
        self.config.costs.breakdown(calls)
    }

    fn ledger_writer(&self) -> Option<crate::store::WriterStats> {
        self.store.writer_stats()
    }

    fn record(&self, summary: &RequestSummary) {
        self.writer.record(ledger_row(summary));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use backends::ChatRequest;

    use super::*;
    use crate::gateway::routing::TokenCounter;
    use crate::store::SqliteStore;

    fn core(routes: &str) -> PolicyCore {
        let text = format!(
            "backends:\n  slm: {{ kind: llama, model: m.gguf }}\n  llm: {{ kind: openai, base_url: \"http://127.0.0.1:9/v1\", model: gpt-4o-mini }}\nroutes:\n{routes}"
        );
        let config = Config::parse(&text, "t.yaml", std::path::Path::new(".")).unwrap();
        PolicyCore::new(
            Arc::new(config),
            Arc::new(SqliteStore::in_memory().unwrap()),
        )
    }

    /// Rules on prompt tokens see the local tokenizer's count (not bytes/4), and prompts are
    /// tokenized only when some rule asks.
    #[test]
    fn token_rules_use_the_local_tokenizer_only_when_a_rule_asks() {
        let calls = AtomicUsize::new(0);
        // TEST DOUBLE: a tokenizer that says every prompt is 100 tokens.
        let count = |_: &ChatRequest| {
            calls.fetch_add(1, Ordering::SeqCst);
            Some(100)
        };
        // 12 bytes: the estimate would be 3 tokens.
        let request = ChatRequest::user("auto", "short prompt");
        let local = BTreeMap::new();
        let input = RouteInput {
            request: &request,
            tenant: None,
            task_header: None,
            pinned: None,
            local: &local,
            count_tokens: Some(TokenCounter(&count)),
            classified: None,
        };
        let c = core(
            "  - { name: long, when: { prompt_tokens: { min: 50 } }, to: llm }\n  - { name: d, to: slm }\n",
        );
        assert_eq!(c.decide(&input).decision.route, "long");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let c = core("  - { name: d, to: slm }\n");
        assert_eq!(c.decide(&input).decision.route, "d");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "no token rule, no tokenizing"
        );
    }
}
