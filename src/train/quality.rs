//! The quality report (`pipeline train --quality-report`): the held-out alert scorer trained
//! once per feature set on the same dates, split and parameters.

use super::{collect_rows, evaluate, subset, DateMatrix, Hyper, Rows, TrainOptions};
use crate::labels::Labels;
use crate::model::{train_lightgbm, ModelKind};
use anyhow::Result;

/// Feature sets compared by the quality report: name and the features it keeps.
pub fn feature_sets() -> Vec<(&'static str, Vec<String>)> {
    let all = crate::features::alert_feature_names();
    let derived = crate::features::DERIVED_FEATURES;
    let raw: Vec<String> = all
        .iter()
        .filter(|f| f.starts_with("af_") || derived[..7].contains(&f.as_str()))
        .cloned()
        .collect();
    let with = |prefixes: &[&str]| -> Vec<String> {
        all.iter()
            .filter(|f| raw.contains(f) || prefixes.iter().any(|p| f.starts_with(p)))
            .cloned()
            .collect()
    };
    let flow_history = crate::features::FLOW_HISTORY_FEATURES;
    let graph: Vec<String> = all
        .iter()
        .filter(|f| {
            f.starts_with("net_") || f.starts_with("graph_") || flow_history.contains(&f.as_str())
        })
        .cloned()
        .collect();
    vec![
        ("raw alert + address features", raw.clone()),
        ("graph only: network, graph, flow history", graph),
        ("raw + network (money flows)", with(&["net_"])),
        ("raw + network + graph", with(&["net_", "graph_"])),
        ("raw + flow history", with(flow_history)),
        ("raw + clusters", with(&["in_cluster", "cluster_"])),
        (
            "raw + alert history",
            with(crate::features::ALERT_HISTORY_FEATURES),
        ),
        (
            "raw + within-day + calendar",
            with(&[
                "volume_zscore",
                "volume_percentile",
                "confidence_zscore",
                "addr_",
                "day_",
                "month",
                "is_weekend",
                "is_month_end",
            ]),
        ),
        (
            "all but graph and flow history (what a daily run computes cheaply)",
            all.iter()
                .filter(|f| !crate::features::is_graph_feature(f))
                .cloned()
                .collect(),
        ),
        ("all features", all),
    ]
}

/// Held-out quality of the alert scorer trained on each feature set (same dates, split and
/// parameters), as a Markdown table.
pub fn quality_report(ms: &[DateMatrix], labels: &Labels, opts: &TrainOptions) -> Result<String> {
    let all_names = ModelKind::AlertScorer.feature_names();
    let rows = collect_rows(ModelKind::AlertScorer, &all_names, ms, labels)?;
    let first_holdout = ms.len()
        - if ms.len() >= 2 {
            ms.len().div_ceil(5)
        } else {
            0
        };
    let mut out =
        "| feature set | features | held-out AUC-ROC | PR-AUC | best F1 | precision | recall | recall at precision ≥ 50% |\n|---|---|---|---|---|---|---|---|\n"
            .to_string();
    for (name, keep) in feature_sets() {
        let cols: Vec<usize> = keep
            .iter()
            .map(|f| {
                all_names
                    .iter()
                    .position(|n| n == f)
                    .expect("known feature")
            })
            .collect();
        let project = |r: &Rows| -> Rows {
            let w = all_names.len();
            let mut x = Vec::with_capacity(r.label.len() * cols.len());
            for i in 0..r.label.len() {
                x.extend(cols.iter().map(|&c| r.x[i * w + c]));
            }
            Rows {
                x,
                label: r.label.clone(),
                weight: r.weight.clone(),
                date: r.date.clone(),
            }
        };
        let tr = project(&subset(&rows, all_names.len(), |d| d < first_holdout));
        let te = project(&subset(&rows, all_names.len(), |d| d >= first_holdout));
        let set = tr.train_set(&keep, None);
        let text = train_lightgbm(
            &set,
            &Hyper::default_for(ModelKind::AlertScorer).params(ModelKind::AlertScorer, opts.seed),
            opts.iterations,
            None,
        )?
        .text;
        let booster = lightgbm3::Booster::from_string(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let m = evaluate(ModelKind::AlertScorer, &booster, &te, keep.len())?;
        let f = |k: &str| {
            m[k].as_f64()
                .map_or_else(|| "–".to_string(), |v| format!("{v:.4}"))
        };
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
            keep.len(),
            f("auc_roc"),
            f("pr_auc"),
            f("best_f1"),
            f("precision_at_best_f1"),
            f("recall_at_best_f1"),
            f("recall_at_precision_50")
        ));
    }
    let te = subset(&rows, all_names.len(), |d| d >= first_holdout);
    let positive = te.label.iter().filter(|&&l| l > 0.0).count();
    out.push_str(&format!(
        "\nTrained on {} dates ({} to {}), held out the {} latest ({} to {}: {} labelled alerts, {:.1}% positive).\n",
        first_holdout,
        ms[0].date,
        ms[first_holdout.max(1) - 1].date,
        ms.len() - first_holdout,
        ms[first_holdout.min(ms.len() - 1)].date,
        ms[ms.len() - 1].date,
        te.label.len(),
        100.0 * positive as f64 / te.label.len().max(1) as f64
    ));
    Ok(out)
}
