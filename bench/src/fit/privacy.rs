//! The router config's privacy rule, in the fit.
//!
//! Why: a config whose first rule keeps prompts with personal data on a local model (`when:
//! { pii: true }, to: slm`) overrides whatever per-task route the fit writes after it. A fit
//! that ignores the rule predicts the wrong quality and cost for every such item — on the
//! shipped redaction task, whose every prompt holds the data to redact, it predicted the LLM's
//! quality while the gateway answered all of them locally. So the fit runs the config's own
//! detector over each item's recorded prompt (the first small target's record, the chat the
//! gateway would see) and, under every policy, answers a flagged item with the rule's target.
//! The single-target columns of the report stay what each target does alone; the router column
//! and its gap to the best single target include the rule. An item without a recorded prompt
//! (`record_prompts: false`) cannot be checked and is counted.

use std::collections::BTreeMap;

use router::pii::PiiDetector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::policy::TaskItem;
use crate::record::RequestRecord;

/// The privacy rule as the fit applies it.
pub struct Privacy<'a> {
    /// The config's detector (its kinds and custom patterns).
    pub detector: &'a PiiDetector,
    /// The rule's name.
    pub rule: String,
    /// The local backend it sends flagged prompts to: a small target of the run.
    pub to: String,
}

/// What the privacy rule did to the fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PrivacyReport {
    /// The rule's name.
    pub rule: String,
    /// The small target flagged items are answered by.
    pub to: String,
    /// Flagged items per task (tasks without any are left out).
    pub private_items: BTreeMap<String, usize>,
    /// Items whose prompt was not recorded, so could not be checked.
    pub unchecked_items: usize,
}

/// Mark the items whose recorded prompt holds PII as answered by the rule's target.
pub(super) fn mark(
    tasks: &mut BTreeMap<String, Vec<TaskItem>>,
    records: &[RequestRecord],
    privacy: &Privacy<'_>,
    first_small: &str,
) -> PrivacyReport {
    // (scenario, item) → the prompt the first small target was sent.
    let mut prompts: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for r in records.iter().filter(|r| r.target == first_small) {
        if let Some(p) = r.prompt.as_deref() {
            prompts
                .entry((r.scenario.as_str(), r.item_id.as_str()))
                .or_insert(p);
        }
    }
    let mut report = PrivacyReport {
        rule: privacy.rule.clone(),
        to: privacy.to.clone(),
        private_items: BTreeMap::new(),
        unchecked_items: 0,
    };
    for (task, items) in tasks.iter_mut() {
        for item in items.iter_mut() {
            let Some(prompt) = prompts.get(&(item.scenario.as_str(), item.item_id.as_str())) else {
                report.unchecked_items += 1;
                continue;
            };
            if item.small.contains_key(&privacy.to) && privacy.detector.contains_pii(prompt) {
                item.forced = Some(privacy.to.clone());
                *report.private_items.entry(task.clone()).or_default() += 1;
            }
        }
    }
    report
}
