//! `triage bench calibrate --write CONFIG`: the fitted policies as per-task routes in a
//! `triage.yaml`, each with its evidence in a comment, written by editing the text so the
//! file's own comments and layout survive (a YAML round trip through serde would drop them).
//!
//! The routes live in one marked block. A second `--write` replaces that block; the first one
//! inserts it just before the last route (the catch-all default), so rules the user placed
//! earlier — the privacy rule above all — keep precedence.

use super::{Fit, Policy, TaskFit};

const BEGIN: &str = "# >>> triage bench calibrate";
const END: &str = "# <<< triage bench calibrate";

/// Why a config could not be edited.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum WriteError {
    /// The config has no block-style `routes:` list to insert the calibrated routes into.
    #[error(
        "no block-style `routes:` list found (the calibrated routes go before its last route)"
    )]
    NoRoutes,
    /// The config has the block's begin marker but no end marker, so the block cannot be replaced
    /// safely.
    #[error("`{BEGIN}` without a matching `{END}` line")]
    UnclosedBlock,
}

/// A route name for a task: the task's characters outside `[A-Za-z0-9_.-]` become `-`.
pub fn route_name(task: &str) -> String {
    let safe: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("task-{safe}")
}

fn quoted(s: &str) -> String {
    // A JSON string is a valid YAML flow scalar, whatever it holds.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn evidence(t: &TaskFit) -> String {
    let e = &t.evaluation;
    let c = &t.calibration;
    let singles: Vec<String> = e
        .small
        .iter()
        .map(|(name, o)| format!("{name} {:.3}", o.quality.value))
        .chain([format!("LLM {:.3}", e.llm.quality.value)])
        .collect();
    format!(
        "{}: n={} (calibration {} / evaluation {}); {}. Evaluation half: quality {:.3} [{:.3}–{:.3}] \
         vs {}; ${:.6}/request vs LLM ${:.6}; LLM share {:.0}%",
        t.task,
        c.n + e.n,
        c.n,
        e.n,
        t.why,
        e.chosen.quality.value,
        e.chosen.quality.ci95_low,
        e.chosen.quality.ci95_high,
        singles.join(", "),
        e.chosen.cost_per_request,
        e.llm.cost_per_request,
        e.chosen.llm_share * 100.0
    )
}

/// The local target a task's LLM route falls back to: the small target of best quality on the
/// calibration half (it answered every item there), else the first one configured.
fn best_small<'a>(t: &'a TaskFit, small: &'a [String]) -> Option<&'a str> {
    t.calibration
        .small
        .iter()
        .max_by(|a, b| a.1.quality.value.total_cmp(&b.1.quality.value))
        .map(|(name, _)| name.as_str())
        .or_else(|| small.first().map(String::as_str))
}

/// The route of one task, in flow style.
pub fn route_line(t: &TaskFit, small: &[String], llm: &str) -> String {
    let when = format!("when: {{ task: [{}] }}", quoted(&t.task));
    let name = route_name(&t.task);
    match &t.chosen {
        Policy::Small { target } => {
            format!("- {{ name: {name}, {when}, to: {target}, fallback: [{llm}] }}")
        }
        Policy::Llm => match best_small(t, small) {
            Some(local) => format!("- {{ name: {name}, {when}, to: {llm}, fallback: [{local}] }}"),
            None => format!("- {{ name: {name}, {when}, to: {llm} }}"),
        },
        Policy::Cascade {
            first,
            signal,
            threshold,
        } => format!(
            "- {{ name: {name}, {when}, cascade: {{ first: {first}, escalate_to: {llm}, signal: {signal}, threshold: {threshold} }} }}"
        ),
    }
}

/// The marked block for `fit`, each line prefixed by `indent`.
pub fn block(fit: &Fit, source: &str, indent: &str) -> String {
    let o = &fit.options;
    let mut out = format!(
        "{indent}{BEGIN}: from {source} (seed {}, {}{}); rewritten by the next --write\n",
        o.seed,
        match o.max_cost {
            Some(c) => format!("best quality at ≤ ${c}/request"),
            None => format!("target {:.0}% of the better model", o.target_share * 100.0),
        },
        o.budget_share
            .map(|s| format!(", at most {s}× the all-LLM cost over all tasks"))
            .unwrap_or_default()
    );
    for t in &fit.tasks {
        out.push_str(&format!("{indent}# {}\n", evidence(t)));
        out.push_str(&format!("{indent}{}\n", route_line(t, &o.small, &o.llm)));
    }
    out.push_str(&format!("{indent}{END}\n"));
    out
}

/// Put the block into a config's text: replace an existing block, or insert it before the last
/// route of the block-style `routes:` list.
pub fn insert(text: &str, fit: &Fit, source: &str) -> Result<String, WriteError> {
    let lines: Vec<&str> = text.lines().collect();
    let begin = lines.iter().position(|l| l.trim_start().starts_with(BEGIN));
    if let Some(b) = begin {
        let e = lines[b..]
            .iter()
            .position(|l| l.trim_start().starts_with(END))
            .map(|i| b + i)
            .ok_or(WriteError::UnclosedBlock)?;
        let indent = &lines[b][..lines[b].len() - lines[b].trim_start().len()];
        return Ok(join(
            &lines[..b],
            &block(fit, source, indent),
            &lines[e + 1..],
        ));
    }
    let routes = lines
        .iter()
        .position(|l| {
            l.strip_prefix("routes:")
                .is_some_and(|rest| rest.trim().is_empty() || rest.trim().starts_with('#'))
        })
        .ok_or(WriteError::NoRoutes)?;
    // The list's items: lines starting with `- ` at the first item's indentation, until a
    // line that is less indented and not blank or a comment.
    let mut indent: Option<&str> = None;
    let mut last_item = None;
    for (i, line) in lines.iter().enumerate().skip(routes + 1) {
        let trimmed = line.trim_start();
        let pad = &line[..line.len() - trimmed.len()];
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match indent {
            None if trimmed.starts_with("- ") || trimmed == "-" => {
                indent = Some(pad);
                last_item = Some(i);
            }
            None => break,
            Some(ind) if pad == ind && (trimmed.starts_with("- ") || trimmed == "-") => {
                last_item = Some(i)
            }
            Some(ind) if pad.len() > ind.len() => {}
            Some(_) => break,
        }
    }
    let (Some(indent), Some(last)) = (indent, last_item) else {
        return Err(WriteError::NoRoutes);
    };
    // Comments directly above the last route belong to it: insert above them.
    let mut at = last;
    while at > routes + 1 && lines[at - 1].trim_start().starts_with('#') {
        at -= 1;
    }
    Ok(join(
        &lines[..at],
        &block(fit, source, indent),
        &lines[at..],
    ))
}

fn join(before: &[&str], block: &str, after: &[&str]) -> String {
    let mut out = String::new();
    for l in before {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(block);
    for l in after {
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{fit, FitOptions};
    use super::*;
    use crate::record::RequestRecord;
    use std::collections::BTreeMap;

    fn sample_fit() -> Fit {
        let mut records = Vec::new();
        let rec = |target: &str, task: &str, id: usize, q: f64, m: Option<f64>| RequestRecord {
            target: target.into(),
            scenario: task.into(),
            task: task.into(),
            item_id: id.to_string(),
            quality: q,
            passed: q >= 0.5,
            cost_usd: Some(if target == "slm" { 0.0 } else { 0.01 }),
            signals: m
                .map(|m| BTreeMap::from([("p_chosen".to_string(), m)]))
                .unwrap_or_default(),
            ..RequestRecord::default()
        };
        for i in 0..40 {
            let m = (i as f64 + 0.5) / 40.0;
            records.push(rec("slm", "easy", i, 1.0, Some(0.9)));
            records.push(rec("llm", "easy", i, 0.0, None));
            records.push(rec("slm", "hard", i, 0.0, Some(0.1)));
            records.push(rec("llm", "hard", i, 1.0, None));
            records.push(rec(
                "slm",
                "mixed qa",
                i,
                if m >= 0.5 { 1.0 } else { 0.0 },
                Some(m),
            ));
            records.push(rec("llm", "mixed qa", i, 1.0, None));
        }
        fit(&records, &FitOptions::default()).unwrap()
    }

    const CONFIG: &str = "\
# my gateway
server: { listen: 127.0.0.1:0 }
backends:
  slm: { kind: llama, model: m.gguf }
  llm: { kind: openai, base_url: http://127.0.0.1:9/v1, model: gpt-4o-mini }
routes:
  # privacy first
  - { name: private, when: { pii: true }, to: slm }
  # everything else
  - name: default
    to: llm
budgets: { daily_usd: 1.0 }
";

    #[test]
    fn inserts_before_the_last_route_and_replaces_on_the_next_write() {
        let f = sample_fit();
        let once = insert(CONFIG, &f, "runs/x").unwrap();
        assert!(once.starts_with("# my gateway\n"), "{once}");
        let private = once.find("name: private").unwrap();
        let block_at = once.find(BEGIN).unwrap();
        let default = once.find("# everything else").unwrap();
        assert!(private < block_at && block_at < default, "{once}");
        assert!(once.contains(
            "- { name: task-easy, when: { task: [\"easy\"] }, to: slm, fallback: [llm] }"
        ));
        assert!(once.contains(
            "- { name: task-hard, when: { task: [\"hard\"] }, to: llm, fallback: [slm] }"
        ));
        assert!(once.contains("name: task-mixed-qa, when: { task: [\"mixed qa\"] }, cascade: { first: slm, escalate_to: llm, signal: p_chosen, threshold: "), "{once}");
        assert!(once.contains("budgets: { daily_usd: 1.0 }"));
        let twice = insert(&once, &f, "runs/y").unwrap();
        assert_eq!(twice.matches(BEGIN).count(), 1);
        assert!(twice.contains("from runs/y"));
        assert_eq!(twice.replace("runs/y", "runs/x"), once);
    }

    /// What `--write` produces loads as a gateway config, and each task's route decides as
    /// the fit chose: the same backend, or a cascade judging the fitted signal at the fitted
    /// threshold (an item the fit would escalate, the gateway escalates).
    #[test]
    fn written_routes_load_and_act_as_fitted() {
        use router::policy::{
            decide, Action, CascadeSignal, Evidence, RequestFacts, StateSnapshot,
        };
        let f = sample_fit();
        let text = insert(CONFIG, &f, "runs/x").unwrap();
        let config = router::config::Config::parse(&text, "triage.yaml", std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        for t in &f.tasks {
            let facts = RequestFacts {
                task: t.task.clone(),
                text: "hello".into(),
                requested_model: "auto".into(),
                ..RequestFacts::default()
            };
            let d = decide(&config.policy, &facts, &StateSnapshot::default());
            assert_eq!(d.route, route_name(&t.task), "{d:?}");
            match (&t.chosen, &d.action) {
                (Policy::Small { target }, Action::Backend(b)) => assert_eq!(b, target),
                (Policy::Llm, Action::Backend(b)) => assert_eq!(b, "llm"),
                (
                    Policy::Cascade {
                        first,
                        signal,
                        threshold,
                    },
                    Action::Cascade(spec),
                ) => {
                    assert_eq!(first, "slm");
                    assert_eq!(spec.signal.name(), signal);
                    assert_eq!(spec.threshold, *threshold);
                    for (v, escalates) in [(*threshold, false), (threshold - 1e-9, true)] {
                        let item = super::super::TaskItem {
                            small: BTreeMap::from([(
                                "slm".to_string(),
                                super::super::Answer {
                                    signals: BTreeMap::from([(signal.clone(), v)]),
                                    ..super::super::Answer::default()
                                },
                            )]),
                            ..super::super::TaskItem::default()
                        };
                        assert_eq!(t.chosen.uses_llm(&item), escalates);
                        let mut evidence = Evidence::default();
                        *match spec.signal {
                            CascadeSignal::Confidence => &mut evidence.confidence,
                            CascadeSignal::PChosen => &mut evidence.p_chosen,
                            CascadeSignal::Margin => &mut evidence.margin,
                            CascadeSignal::MeanLogprob => &mut evidence.mean_logprob,
                            CascadeSignal::MinLogprob => &mut evidence.min_logprob,
                        } = Some(v);
                        assert_eq!(!spec.judge(&evidence).accept, escalates);
                    }
                }
                (chosen, action) => {
                    panic!("{}: fit chose {chosen:?}, gateway did {action:?}", t.task)
                }
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_edit() {
        let f = sample_fit();
        assert_eq!(
            insert("routes: [{ name: d, to: llm }]\n", &f, "r"),
            Err(WriteError::NoRoutes)
        );
        assert_eq!(
            insert(
                &format!("routes:\n  {BEGIN}\n  - {{ name: d, to: llm }}\n"),
                &f,
                "r"
            ),
            Err(WriteError::UnclosedBlock)
        );
        assert_eq!(route_name("a b/c"), "task-a-b-c");
    }
}
