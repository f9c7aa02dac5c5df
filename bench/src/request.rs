//! One request: send a scenario item to a target, watch the stream, and turn what happened
//! into a [`RequestRecord`] — timings measured from the **intended** send time (the
//! coordinated-omission correction), tokens, log-probability confidence, cost, and the scores
//! of every scorer except `judge`, whose calls [`judge`] makes after the load phase.
//!
//! Times come from tokio's clock (`tokio::time::Instant`), which is the system clock except in
//! tests that pause it, so the schedule can be checked without waiting for it.

use std::sync::Arc;
use std::time::Duration;

use backends::{BackendError, ChatEvent, FinishReason, Usage};
use futures::StreamExt;
use tokio::time::Instant;

use crate::record::{GapSummary, RecordError, RequestRecord};
use crate::scenario::{Scenario, ScenarioItem};
use crate::score::{Judges, ScoreInput, Scorer};
use crate::target::{Routing, Target};

/// A unit of work: which scenario, which of its items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Job {
    pub scenario: usize,
    pub item: usize,
}

/// What every request of one target's measured phase shares.
pub(crate) struct RequestContext {
    pub target: Arc<dyn Target>,
    pub scenarios: Arc<Vec<Scenario>>,
    /// The start of the measured phase; records' `intended_ms`/`sent_ms` are offsets from it.
    pub phase_start: Instant,
    /// A request still streaming after this long fails with a timeout.
    pub timeout: Duration,
    /// Write each request's messages into its record (off for private data).
    pub record_prompts: bool,
}

/// One request as the schedule planned it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planned {
    pub job: Job,
    /// Position in the send schedule.
    pub seq: u64,
    /// When the schedule meant it to leave.
    pub intended: Instant,
}

impl RequestContext {
    fn parts(&self, job: Job) -> (&Scenario, &ScenarioItem) {
        let scenario = &self.scenarios[job.scenario];
        (scenario, &scenario.items[job.item])
    }

    /// Send one item now and record what happened (scored, except by judges).
    pub async fn execute(&self, planned: Planned) -> RequestRecord {
        let (scenario, item) = self.parts(planned.job);
        let target = self.target.as_ref();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let intended = planned.intended;
        let mut record = RequestRecord {
            target: target.name().to_string(),
            scenario: scenario.name.clone(),
            task: scenario.task.clone(),
            item_id: item.id.clone(),
            seq: planned.seq,
            expected: item.expected.clone(),
            retrieval: scenario.retrievals.get(&item.id).cloned(),
            ..RequestRecord::default()
        };
        let sent = Instant::now();
        record.intended_ms = ms(intended.saturating_duration_since(self.phase_start));
        record.sent_ms = ms(sent.saturating_duration_since(self.phase_start));
        record.send_delay_ms = ms(sent.saturating_duration_since(intended));
        let seen = match scenario.request(item) {
            Ok(request) => {
                if self.record_prompts {
                    record.prompt = Some(render_messages(&request.messages));
                }
                observe(target, request, self.timeout).await
            }
            Err(e) => Observed {
                error: Some(BackendError::InvalidRequest(e.to_string())),
                ..Observed::default()
            },
        };
        let end = Instant::now();
        // Stream events carry std instants; tokio's clock converts to the same time line.
        let intended_std = intended.into_std();
        record.e2e_ms = ms(end.saturating_duration_since(intended));
        record.e2e_from_send_ms = ms(end.saturating_duration_since(sent));
        record.ttft_ms = seen
            .first_token
            .map(|t| ms(t.saturating_duration_since(intended_std)));
        record.itl = GapSummary::from_ns(&seen.gaps_ns);
        record.tokens_in = seen.usage.as_ref().map(|u| u.prompt_tokens as u64);
        let tokens_out = match &seen.usage {
            Some(u) => Some(u.completion_tokens as u64),
            None if !seen.logprobs.is_empty() => Some(seen.logprobs.len() as u64),
            None if seen.token_events > 0 => Some(seen.token_events),
            None => None,
        };
        record.tokens_out = tokens_out;
        if let (Some(first), Some(last), Some(n)) = (seen.first_token, seen.last_token, tokens_out)
        {
            if n > 1 {
                record.tpot_ms = Some(ms(last.saturating_duration_since(first)) / (n - 1) as f64);
            }
        }
        if !seen.logprobs.is_empty() {
            let mean =
                seen.logprobs.iter().map(|l| *l as f64).sum::<f64>() / seen.logprobs.len() as f64;
            record.mean_logprob = Some(mean);
            record.confidence = Some(mean.exp());
        }
        // The same evidence the gateway's cascade judges (router::policy::Evidence), so a
        // threshold fitted on these records acts the same in the gateway.
        let evidence =
            router::policy::Evidence::from_answer(&seen.logprobs, seen.signals.as_ref(), None);
        // `confidence` (exp of the mean over all tokens) is kept in its own field; as a signal
        // it would only repeat mean_logprob to the fit.
        for (name, v) in evidence.named() {
            if v.is_finite() && name != "confidence" {
                record.signals.insert(name.to_string(), v);
            }
        }
        // A price given for the target (`--price`) is what the user pays for it — another
        // triage standing in for a paid API reports its own (local) cost, which is not; without
        // one, a gateway's own accounting (a router's decisions and escalations) is recorded.
        // A machine price is charged by the engine's busy seconds for this request when an
        // in-process engine reported them, else by the seconds from send to the end.
        record.engine_busy_secs = seen.busy_secs;
        let busy = seen.busy_secs.unwrap_or(record.e2e_from_send_ms / 1e3);
        record.cost_usd = target
            .info()
            .price
            .map(|p| {
                p.cost(
                    record.tokens_in.unwrap_or(0),
                    record.tokens_out.unwrap_or(0),
                    busy,
                )
            })
            .or(seen.routing.cost_usd);
        record.routing = seen.routing;
        record.finish_reason = seen.finish.as_ref().map(|f| f.as_str().to_string());
        record.output = seen.text;
        record.gaps_ns = seen.gaps_ns;
        if let Some(e) = seen.error {
            record.error = Some(RecordError {
                code: e.code().to_string(),
                message: e.to_string(),
            });
        } else {
            let prompt = scenario.prompt.render(&item.fields).unwrap_or_default();
            let input = ScoreInput {
                output: &record.output,
                expected: item.expected.as_deref(),
                item: &item.fields,
                prompt: &prompt,
            };
            for scorer in scenario
                .scorers
                .iter()
                .filter(|s| !matches!(s, Scorer::Judge(_)))
            {
                record.scores.push(scorer.score(&input, None).await);
            }
        }
        finish_scores(&mut record);
        let tpot = record.tpot_ms;
        record.slo_met =
            record.error.is_none() && scenario.slo.met(record.ttft_ms, tpot, record.e2e_ms);
        record
    }

    /// Add the `judge` scorers' scores to a record of `job` (after the load phase, so judge
    /// calls don't disturb the measured load). Failed requests are not judged.
    pub async fn judge(&self, job: Job, record: &mut RequestRecord, judges: &Judges) {
        let (scenario, item) = self.parts(job);
        if record.error.is_some() {
            return;
        }
        let mut any = false;
        for scorer in &scenario.scorers {
            if let Some(name) = scorer.judge_target() {
                let prompt = scenario.prompt.render(&item.fields).unwrap_or_default();
                let input = ScoreInput {
                    output: &record.output,
                    expected: item.expected.as_deref(),
                    item: &item.fields,
                    prompt: &prompt,
                };
                record
                    .scores
                    .push(scorer.score(&input, judges.get(name)).await);
                any = true;
            }
        }
        if any {
            finish_scores(record);
        }
    }
}

/// Quality is the mean score (0 without scores); a record passes when it has no error and
/// every scorer passed.
fn finish_scores(record: &mut RequestRecord) {
    record.quality = if record.scores.is_empty() {
        0.0
    } else {
        record.scores.iter().map(|s| s.score).sum::<f64>() / record.scores.len() as f64
    };
    record.passed = record.error.is_none() && record.scores.iter().all(|s| s.passed);
}

/// What came back on the stream.
#[derive(Default)]
struct Observed {
    text: String,
    first_token: Option<std::time::Instant>,
    last_token: Option<std::time::Instant>,
    gaps_ns: Vec<u64>,
    logprobs: Vec<f32>,
    token_events: u64,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    routing: Routing,
    signals: Option<backends::Signals>,
    /// Engine busy seconds (`ChatEvent::LocalCompute`), summed over the request's events.
    busy_secs: Option<f64>,
    error: Option<BackendError>,
}

/// A request's messages as the request browser shows them: `role: content`, one block each.
fn render_messages(messages: &[backends::ChatMessage]) -> String {
    messages
        .iter()
        .map(|m| format!("{}: {}", m.role.as_str(), m.text()))
        .collect::<Vec<_>>()
        .join("\n\n")
}

async fn observe(
    target: &dyn Target,
    request: backends::ChatRequest,
    timeout: Duration,
) -> Observed {
    let mut seen = Observed::default();
    let work = async {
        let reply = match target.send(request).await {
            Ok(r) => r,
            Err(e) => {
                seen.error = Some(e);
                return;
            }
        };
        seen.routing = reply.routing;
        let mut events = reply.events;
        while let Some(event) = events.next().await {
            match event {
                Err(e) => {
                    seen.error = Some(e);
                    return;
                }
                Ok(ChatEvent::Token {
                    choice: 0,
                    text,
                    logprobs,
                    at,
                }) => {
                    if let Some(prev) = seen.last_token {
                        seen.gaps_ns
                            .push(at.saturating_duration_since(prev).as_nanos() as u64);
                    }
                    seen.first_token.get_or_insert(at);
                    seen.last_token = Some(at);
                    seen.text.push_str(&text);
                    seen.logprobs.extend(logprobs.iter().map(|t| t.logprob));
                    seen.token_events += 1;
                }
                Ok(ChatEvent::Usage { usage, .. }) => {
                    // A triage gateway's settled routing and cost ride on the usage chunk.
                    if let Some(triage) = usage.extra.get(backends::openai::TRIAGE_USAGE_KEY) {
                        seen.routing.settle(triage);
                    }
                    seen.usage = Some(usage);
                }
                Ok(ChatEvent::Signals { signals, .. }) => seen.signals = Some(signals),
                Ok(ChatEvent::LocalCompute { busy_secs, .. }) => {
                    *seen.busy_secs.get_or_insert(0.0) += busy_secs;
                }
                Ok(ChatEvent::Done {
                    choice: 0,
                    finish_reason,
                    ..
                }) => seen.finish = Some(finish_reason),
                Ok(_) => {}
            }
        }
    };
    if tokio::time::timeout(timeout, work).await.is_err() {
        seen.error = Some(BackendError::Timeout {
            phase: backends::TimeoutPhase::Total,
            after: timeout,
        });
    }
    seen
}
