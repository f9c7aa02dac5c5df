//! Calibration: from one run that recorded both the SLM's and the LLM's answer to every item
//! (plus the SLM's confidence), sweep the cascade threshold offline — nothing is rerun.
//!
//! The cascade answers with the SLM and escalates to the LLM when the SLM's confidence
//! (geometric-mean token probability, `exp(mean logprob)`) is below `min_confidence`. For each
//! candidate threshold we know which items would escalate, hence the quality (the escalated
//! items get the LLM's score, the rest the SLM's), the share of LLM calls and the cost (the SLM
//! is always paid; the LLM only when escalated).
//!
//! Metrics follow RouteLLM (`routellm/evals/evaluate.py`):
//! - PGR at a point = (quality − weak) / (strong − weak);
//! - APGR = (AUC − weak·span) / (strong·span − weak·span), the trapezoid area under quality
//!   vs share of strong calls, normalised between the weak-only and strong-only lines over the
//!   same span;
//! - CPT(x%) = the share of strong calls at which quality first reaches weak + x·(strong −
//!   weak), interpolated linearly between sweep points (RouteLLM's `np.interp` over the curve,
//!   which is the same for a monotone curve).

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result, ThresholdEditError};
use crate::record::RequestRecord;

/// One point of a routing curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CurvePoint {
    /// The threshold producing this point (escalate when confidence < threshold, or for
    /// router scores: strong when score ≥ threshold).
    pub threshold: f64,
    /// Share of requests sent to the strong model (LLM), in [0, 1].
    pub strong_share: f64,
    /// Mean quality in [0, 1].
    pub quality: f64,
    /// Mean cost per request in USD (0 when unknown).
    pub cost_per_request: f64,
}

/// APGR over a curve (points in any order). `None` when strong and weak quality are equal or
/// the curve spans no width.
pub fn apgr(points: &[CurvePoint], weak: f64, strong: f64) -> Option<f64> {
    let mut p = points.to_vec();
    p.sort_by(|a, b| a.strong_share.total_cmp(&b.strong_share));
    let span = p.last()?.strong_share - p.first()?.strong_share;
    if span <= 0.0 || (strong - weak).abs() < 1e-12 {
        return None;
    }
    let auc: f64 = p
        .windows(2)
        .map(|w| (w[1].strong_share - w[0].strong_share) * (w[0].quality + w[1].quality) / 2.0)
        .sum();
    Some((auc - weak * span) / (strong * span - weak * span))
}

/// CPT(`fraction`): the smallest share of strong calls reaching weak + fraction·(strong − weak).
pub fn cpt(points: &[CurvePoint], weak: f64, strong: f64, fraction: f64) -> Option<f64> {
    let target = weak + fraction * (strong - weak);
    let mut p = points.to_vec();
    p.sort_by(|a, b| a.strong_share.total_cmp(&b.strong_share));
    let first = p.first()?;
    if first.quality >= target {
        return Some(first.strong_share);
    }
    for w in p.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.quality < target && b.quality >= target {
            let t = (target - a.quality) / (b.quality - a.quality);
            return Some(a.strong_share + t * (b.strong_share - a.strong_share));
        }
    }
    None
}

/// The (cost, quality) Pareto frontier: points no cheaper point beats on quality.
pub fn frontier(points: &[CurvePoint]) -> Vec<CurvePoint> {
    let mut p = points.to_vec();
    p.sort_by(|a, b| {
        a.cost_per_request
            .total_cmp(&b.cost_per_request)
            .then(b.quality.total_cmp(&a.quality))
    });
    let mut out: Vec<CurvePoint> = Vec::new();
    for point in p {
        if out.last().is_none_or(|last| point.quality > last.quality) {
            out.push(point);
        }
    }
    out
}

/// Both answers to one item.
#[derive(Clone, Debug, PartialEq)]
pub struct PairedItem {
    /// Scenario the item belongs to.
    pub scenario: String,
    /// The item's id within its scenario.
    pub item_id: String,
    /// The SLM answer's confidence, `exp(mean logprob)` in (0, 1]; 0 for a failed SLM request
    /// (always escalated).
    pub confidence: f64,
    /// The SLM's score in [0, 1].
    pub slm_quality: f64,
    /// The LLM's score in [0, 1].
    pub llm_quality: f64,
    /// The SLM request's cost in USD (0 when unpriced).
    pub slm_cost: f64,
    /// The LLM request's cost in USD (0 when unpriced).
    pub llm_cost: f64,
}

/// Both targets' answers to one item, keyed by (scenario, item id).
pub type Answers<'a> =
    BTreeMap<(String, String), (Option<&'a RequestRecord>, Option<&'a RequestRecord>)>;

/// Join the SLM's and the LLM's records by (scenario, item); items answered more than once use
/// their first record. Fails when either target has no records at all. Shared by the global
/// sweep here and the per-task fit (`crate::fit`).
pub fn join<'a>(records: &'a [RequestRecord], slm: &str, llm: &str) -> Result<Answers<'a>> {
    for (name, role) in [(slm, "the SLM"), (llm, "the LLM")] {
        if !records.iter().any(|r| r.target == name) {
            return Err(BenchError::Analysis(format!(
                "the run has no records of target `{name}` ({role})"
            )));
        }
    }
    let mut by_key: Answers = BTreeMap::new();
    for r in records {
        let e = by_key
            .entry((r.scenario.clone(), r.item_id.clone()))
            .or_default();
        if r.target == slm && e.0.is_none() {
            e.0 = Some(r);
        } else if r.target == llm && e.1.is_none() {
            e.1 = Some(r);
        }
    }
    Ok(by_key)
}

/// Join the SLM's and the LLM's records by (scenario, item). Items answered more than once
/// use their first record; items missing on either side are skipped and counted.
pub fn pair(records: &[RequestRecord], slm: &str, llm: &str) -> Result<(Vec<PairedItem>, usize)> {
    let by_key = join(records, slm, llm)?;
    let mut items = Vec::new();
    let mut skipped = 0;
    let mut no_confidence = 0;
    for ((scenario, item_id), pair) in by_key {
        let (Some(s), Some(l)) = pair else {
            skipped += 1;
            continue;
        };
        // A failed SLM request has no confidence: the cascade escalates it (confidence 0).
        let confidence = match (s.confidence, &s.error) {
            (Some(c), _) => c,
            (None, Some(_)) => 0.0,
            (None, None) => {
                no_confidence += 1;
                continue;
            }
        };
        items.push(PairedItem {
            scenario,
            item_id,
            confidence,
            slm_quality: s.quality,
            llm_quality: l.quality,
            slm_cost: s.cost_usd.unwrap_or(0.0),
            llm_cost: l.cost_usd.unwrap_or(0.0),
        });
    }
    if items.is_empty() {
        return Err(BenchError::Analysis(format!(
            "no item has both answers with an SLM confidence ({no_confidence} SLM answers carry no token log-probabilities; \
             the SLM target must report them, as the local engine does)"
        )));
    }
    Ok((items, skipped + no_confidence))
}

/// The cascade curve: one point per distinct confidence (escalate when confidence < it),
/// plus "escalate everything".
pub fn sweep(items: &[PairedItem]) -> Vec<CurvePoint> {
    let mut thresholds: Vec<f64> = items.iter().map(|i| i.confidence).collect();
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    let above = thresholds.last().map(|m| m + 1e-9).unwrap_or(1.0);
    thresholds.push(above);
    let n = items.len().max(1) as f64;
    thresholds
        .into_iter()
        .map(|t| {
            let (mut q, mut cost, mut strong) = (0.0, 0.0, 0usize);
            for i in items {
                cost += i.slm_cost;
                if i.confidence < t {
                    strong += 1;
                    q += i.llm_quality;
                    cost += i.llm_cost;
                } else {
                    q += i.slm_quality;
                }
            }
            CurvePoint {
                threshold: t,
                strong_share: strong as f64 / n,
                quality: q / n,
                cost_per_request: cost / n,
            }
        })
        .collect()
}

/// The result of `bench calibrate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Calibration {
    /// Target name of the small model (the cascade's first answer).
    pub slm: String,
    /// Target name of the large model (escalations).
    pub llm: String,
    /// Items with both answers and an SLM confidence: the sweep's population.
    pub items: usize,
    /// Items left out: answered by only one target, or an SLM answer without confidence.
    pub skipped_items: usize,
    /// Mean quality of "always SLM" on the items, in [0, 1].
    pub slm_quality: f64,
    /// Mean quality of "always LLM" on the items, in [0, 1].
    pub llm_quality: f64,
    /// Mean cost per request of "always SLM", in USD.
    pub slm_cost_per_request: f64,
    /// Mean cost per request of "always LLM", in USD.
    pub llm_cost_per_request: f64,
    /// Average performance gap recovered over the sweep (RouteLLM's APGR); `None` when both models
    /// score the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apgr: Option<f64>,
    /// CPT at 50, 80 and 95% of the performance gap: share of LLM calls needed.
    pub cpt: BTreeMap<String, Option<f64>>,
    /// Target share of LLM quality asked for.
    pub target_share: f64,
    /// The least-cost point reaching `target_share × llm_quality`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<CurvePoint>,
    /// Every threshold of the sweep, one point each, plus "escalate everything".
    pub curve: Vec<CurvePoint>,
    /// The curve's (cost, quality) Pareto frontier.
    pub frontier: Vec<CurvePoint>,
}

/// Calibrate from records.
pub fn calibrate(
    records: &[RequestRecord],
    slm: &str,
    llm: &str,
    target_share: f64,
) -> Result<Calibration> {
    let (items, skipped) = pair(records, slm, llm)?;
    let n = items.len() as f64;
    let slm_quality = items.iter().map(|i| i.slm_quality).sum::<f64>() / n;
    let llm_quality = items.iter().map(|i| i.llm_quality).sum::<f64>() / n;
    let curve = sweep(&items);
    let goal = target_share * llm_quality;
    let chosen = curve
        .iter()
        .filter(|p| p.quality + 1e-12 >= goal)
        .min_by(|a, b| {
            a.cost_per_request
                .total_cmp(&b.cost_per_request)
                .then(a.strong_share.total_cmp(&b.strong_share))
        })
        .copied();
    let cpt = [("50%", 0.5), ("80%", 0.8), ("95%", 0.95)]
        .into_iter()
        .map(|(k, f)| (k.to_string(), cpt(&curve, slm_quality, llm_quality, f)))
        .collect();
    Ok(Calibration {
        slm: slm.into(),
        llm: llm.into(),
        items: items.len(),
        skipped_items: skipped,
        slm_quality,
        llm_quality,
        slm_cost_per_request: items.iter().map(|i| i.slm_cost).sum::<f64>() / n,
        llm_cost_per_request: items.iter().map(|i| i.llm_cost).sum::<f64>() / n,
        apgr: apgr(&curve, slm_quality, llm_quality),
        cpt,
        target_share,
        chosen,
        frontier: frontier(&curve),
        curve,
    })
}

/// Write `min_confidence` of the cascade route into a triage.yaml, editing the text so
/// comments and layout survive. With several routes carrying `min_confidence`, `route` names
/// the one to change. Returns the old value.
pub fn write_min_confidence(config: &Path, route: Option<&str>, value: f64) -> Result<String> {
    let text = std::fs::read_to_string(config).map_err(|e| BenchError::io(config, e))?;
    let (updated, old) = replace_min_confidence(&text, route, value)
        .map_err(|e| BenchError::invalid(config, e.to_string()))?;
    std::fs::write(config, updated).map_err(|e| BenchError::io(config, e))?;
    Ok(old)
}

/// The text edit behind [`write_min_confidence`].
pub fn replace_min_confidence(
    text: &str,
    route: Option<&str>,
    value: f64,
) -> std::result::Result<(String, String), ThresholdEditError> {
    let re = regex::Regex::new(r"min_confidence:\s*([0-9.eE+-]+)")?;
    let hits: Vec<regex::Match> = re.find_iter(text).collect();
    let hit = match (hits.len(), route) {
        (0, _) => return Err(ThresholdEditError::NotFound),
        (1, None) => hits[0],
        (_, None) => return Err(ThresholdEditError::Ambiguous(hits.len())),
        (_, Some(name)) => {
            // The route's `name: X` that precedes the hit most closely must be the one asked for.
            let name_re = regex::Regex::new(r"name:\s*([A-Za-z0-9_.-]+)")?;
            let found = hits.iter().find(|h| {
                name_re
                    .captures_iter(&text[..h.start()])
                    .last()
                    .and_then(|c| c.get(1))
                    .is_some_and(|m| m.as_str() == name)
            });
            *found.ok_or_else(|| ThresholdEditError::NoSuchRoute(name.to_string()))?
        }
    };
    let old = re
        .captures(hit.as_str())
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let value = value.clamp(0.0, 1.0);
    let new = format!("min_confidence: {}", format_threshold(value));
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..hit.start()]);
    out.push_str(&new);
    out.push_str(&text[hit.end()..]);
    Ok((out, old))
}

fn format_threshold(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0');
    let s = s
        .strip_suffix('.')
        .map(|t| format!("{t}.0"))
        .unwrap_or_else(|| s.to_string());
    s
}

/// An SVG plot of quality against share of LLM calls, with the SLM-only and LLM-only lines
/// and the chosen point. Uses plotters' SVG backend with its built-in text output (no font
/// files, no fontconfig).
pub fn plot_svg(cal: &Calibration, path: &Path) -> Result<()> {
    plot_curves(
        path,
        &format!("cascade {} → {}", cal.slm, cal.llm),
        &[("cascade", &cal.curve)],
        cal.slm_quality,
        cal.llm_quality,
        cal.chosen,
    )
}

/// Plot one or more routing curves (quality vs share of strong calls).
pub fn plot_curves(
    path: &Path,
    title: &str,
    curves: &[(&str, &[CurvePoint])],
    weak: f64,
    strong: f64,
    mark: Option<CurvePoint>,
) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: String| BenchError::invalid(path, format!("cannot draw plot: {e}"));
    let (mut lo, mut hi) = (weak.min(strong), weak.max(strong));
    for (_, c) in curves {
        for p in c.iter() {
            lo = lo.min(p.quality);
            hi = hi.max(p.quality);
        }
    }
    let pad = ((hi - lo) * 0.1).max(0.02);
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..100f64, (lo - pad).max(0.0)..(hi + pad).min(1.0))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("strong-model (LLM) calls, %")
        .y_desc("quality")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let palette = [BLUE, MAGENTA, GREEN, CYAN, BLACK];
    for (i, (name, c)) in curves.iter().enumerate() {
        let color = palette[i % palette.len()];
        let mut pts: Vec<(f64, f64)> = c
            .iter()
            .map(|p| (p.strong_share * 100.0, p.quality))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 2, color.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    for (q, color, name) in [
        (weak, RGBColor(120, 120, 120), "weak (SLM) only"),
        (strong, RED, "strong (LLM) only"),
    ] {
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, q), (100.0, q)],
                color.stroke_width(1),
            ))
            .map_err(|e| err(e.to_string()))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    if let Some(m) = mark {
        chart
            .draw_series(std::iter::once(Cross::new(
                (m.strong_share * 100.0, m.quality),
                6,
                BLACK.stroke_width(2),
            )))
            .map_err(|e| err(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(share: f64, quality: f64) -> CurvePoint {
        CurvePoint {
            threshold: 0.0,
            strong_share: share,
            quality,
            cost_per_request: share,
        }
    }

    #[test]
    fn apgr_and_cpt_hand_checked() {
        // Weak 0.5, strong 0.9. A random router is the straight line: APGR 0.5.
        let random = [p(0.0, 0.5), p(0.5, 0.7), p(1.0, 0.9)];
        assert!((apgr(&random, 0.5, 0.9).unwrap() - 0.5).abs() < 1e-12);
        assert!((cpt(&random, 0.5, 0.9, 0.5).unwrap() - 0.5).abs() < 1e-12);
        // A router that recovers the whole gap with 20% of calls.
        let good = [p(0.0, 0.5), p(0.2, 0.9), p(1.0, 0.9)];
        // AUC = 0.2·0.7 + 0.8·0.9 = 0.86; weak 0.5, strong 0.9 → (0.86 − 0.5)/0.4 = 0.9.
        assert!((apgr(&good, 0.5, 0.9).unwrap() - 0.9).abs() < 1e-12);
        assert!((cpt(&good, 0.5, 0.9, 0.5).unwrap() - 0.1).abs() < 1e-12);
        assert!((cpt(&good, 0.5, 0.9, 0.95).unwrap() - 0.19).abs() < 1e-12);
        assert!(apgr(&good, 0.7, 0.7).is_none());
    }

    #[test]
    fn sweep_escalates_low_confidence_first() {
        let item = |c: f64, s: f64, l: f64| PairedItem {
            scenario: "s".into(),
            item_id: format!("{c}"),
            confidence: c,
            slm_quality: s,
            llm_quality: l,
            slm_cost: 0.0,
            llm_cost: 1.0,
        };
        let items = [
            item(0.9, 1.0, 1.0),
            item(0.2, 0.0, 1.0),
            item(0.5, 1.0, 0.0),
        ];
        let curve = sweep(&items);
        assert_eq!(curve.len(), 4);
        assert_eq!((curve[0].strong_share, curve[0].quality), (0.0, 2.0 / 3.0));
        assert!(
            (curve[1].quality - 1.0).abs() < 1e-12,
            "escalating the 0.2 item fixes it"
        );
        assert!((curve[1].cost_per_request - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(curve[3].strong_share, 1.0);
        let f = frontier(&curve);
        assert_eq!(f.len(), 2, "{f:?}");
    }

    #[test]
    fn rewrites_only_the_named_route() {
        let yaml = "routes:\n  # keep me\n  - { name: qa, cascade: { first: slm, escalate_to: llm, min_confidence: 0.62 } }\n  - name: code\n    cascade:\n      min_confidence: 0.5\n";
        let (out, old) = replace_min_confidence(yaml, Some("code"), 0.731).unwrap();
        assert_eq!(old, "0.5");
        assert!(out.contains("min_confidence: 0.62 }"));
        assert!(out.contains("min_confidence: 0.731\n"));
        assert!(out.contains("# keep me"));
        assert!(
            replace_min_confidence(yaml, None, 0.7).is_err(),
            "ambiguous"
        );
        let (one, _) = replace_min_confidence("min_confidence: 0.62", None, 0.8).unwrap();
        assert_eq!(one, "min_confidence: 0.8");
    }
}
