//! How outputs are judged by the miner template's quality tiers (integrity, behaviour, ground
//! truth, determinism, plagiarism), each a pure function of an output and its batch, with the
//! template's thresholds. The subnet validator's tiers and reward are in [`crate::validator`].

use crate::metrics::{auc_roc, average_precision, best_f1, variance};
use arrow::array::{Array, StringArray};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::{Deserialize, Serialize};

/// One named check and its outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    /// Check name, e.g. `row_count`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

/// One alert score as written: id, score (None if null), model version, latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredAlert<'a> {
    /// alert_id ("" if null or missing)
    pub alert_id: &'a str,
    /// score
    pub score: Option<f64>,
    /// model_version ("" if null or missing)
    pub model_version: &'a str,
    /// latency_ms
    pub latency_ms: Option<f64>,
}

/// An output's alert scores, as the columns were read (no string copied), plus which of the
/// required columns it lacks.
#[derive(Debug, Clone)]
pub struct ScoreTable {
    ids: StringArray,
    scores: Vec<Option<f64>>,
    versions: StringArray,
    latency: Vec<Option<f64>>,
    /// Required columns the file lacks.
    pub missing_columns: Vec<String>,
}

impl ScoreTable {
    /// The table of `ids`, `scores`, `versions` and `latency` (each one value per row; a
    /// missing string column as nulls), lacking `missing_columns`.
    pub fn new(
        ids: StringArray,
        scores: Vec<Option<f64>>,
        versions: StringArray,
        latency: Vec<Option<f64>>,
        missing_columns: Vec<String>,
    ) -> Self {
        let n = ids.len();
        assert!(
            scores.len() == n && versions.len() == n && latency.len() == n,
            "a score table's columns have one value per row"
        );
        Self {
            ids,
            scores,
            versions,
            latency,
            missing_columns,
        }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the table has no row.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The rows, in file order.
    pub fn rows(&self) -> impl Iterator<Item = ScoredAlert<'_>> + Clone {
        (0..self.len()).map(|i| ScoredAlert {
            alert_id: text(&self.ids, i),
            score: self.scores[i],
            model_version: text(&self.versions, i),
            latency_ms: self.latency[i],
        })
    }
}

/// Value `i` of `a`, "" if null.
fn text(a: &StringArray, i: usize) -> &str {
    if a.is_null(i) {
        ""
    } else {
        a.value(i)
    }
}

/// Result of a tier: passed, score and the checks or penalties behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tier {
    /// Whether the tier passed.
    pub passed: bool,
    /// Its score.
    pub score: f64,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

/// Integrity tier (0.2 if all pass, else 0), fail-fast in the template's order: row count,
/// required columns, scores in [0, 1], mean latency ≤ `max_latency_ms`, equal alert_id sets.
pub fn integrity(out: &ScoreTable, alert_ids: &StringArray, max_latency_ms: f64) -> Tier {
    let mut checks = Vec::new();
    let mut run = |name: &str, passed, detail: String| {
        checks.push(Check {
            name: name.to_string(),
            passed,
            detail,
        });
        passed
    };
    let rows = out.rows();
    let _ = run(
        "row_count",
        out.len() == alert_ids.len(),
        format!("{} output rows for {} alerts", out.len(), alert_ids.len()),
    ) && run(
        "required_columns",
        out.missing_columns.is_empty(),
        format!("missing: {:?}", out.missing_columns),
    ) && {
        let bad = rows
            .clone()
            .filter(|r| !r.score.is_some_and(|s| (0.0..=1.0).contains(&s)))
            .count();
        run(
            "score_range",
            bad == 0,
            format!("{bad} scores outside [0, 1] or null"),
        )
    } && {
        let lat: Vec<f64> = rows.clone().filter_map(|r| r.latency_ms).collect();
        let mean = if lat.is_empty() {
            0.0
        } else {
            lat.iter().sum::<f64>() / lat.len() as f64
        };
        run(
            "mean_latency",
            mean <= max_latency_ms,
            format!("mean latency_ms {mean:.4} (limit {max_latency_ms})"),
        )
    } && {
        // Scores written in batch order (the pipeline's own) are the same set without a hash
        // set of either side: two sets of 500K ids outgrow the caches on a 10x day.
        let got_ids = rows.clone().map(|r| r.alert_id);
        let want_ids = alert_ids.iter().map(Option::unwrap_or_default);
        let (missing, unknown) = if got_ids.clone().eq(want_ids.clone()) {
            (0, 0)
        } else {
            let got: HashSet<&str> = got_ids.collect();
            let want: HashSet<&str> = want_ids.collect();
            (want.difference(&got).count(), got.difference(&want).count())
        };
        run(
            "alert_id_sets",
            missing == 0 && unknown == 0,
            format!("{missing} ids missing from output, {unknown} unknown ids"),
        )
    };
    let passed = checks.iter().all(|c| c.passed) && checks.len() == 5;
    Tier {
        passed,
        score: if passed { 0.2 } else { 0.0 },
        checks,
    }
}

/// Determinism: two outputs for the same date differ by at most 1e-6 on every shared alert
/// (and cover the same alerts).
pub fn determinism(a: &[(&str, f64)], b: &[(&str, f64)]) -> Check {
    let bm: HashMap<&str, f64> = b.iter().copied().collect();
    let mut max = 0.0f64;
    let mut missing = 0;
    for (k, v) in a {
        match bm.get(k) {
            Some(w) => max = max.max((v - w).abs()),
            None => missing += 1,
        }
    }
    Check {
        name: "determinism".to_string(),
        passed: missing == 0 && a.len() == b.len() && max <= 1e-6,
        detail: format!("max |Δscore| {max:e}, {missing} alerts missing from the second output"),
    }
}

/// A pattern trap: an alert whose score must not be (within 0.01) the given value.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
pub struct Trap {
    /// The alert.
    pub alert_id: String,
    /// The score a gamed model would give it.
    pub expected_score: f64,
}

/// Median (mean of the middle two for an even count); NaN when empty.
pub fn median(x: &[f64]) -> f64 {
    let mut v = x.to_vec();
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    // The middle value in sorted order, and for an even count the largest value below it:
    // a selection, not a sort of all 500K scores of a 10x day.
    let (below, &mut middle, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    match below.iter().copied().max_by(f64::total_cmp) {
        Some(lower) if n.is_multiple_of(2) => (lower + middle) / 2.0,
        _ => middle,
    }
}

/// Behaviour tier: from 0, −0.1 if var(score) < 0.001 (`constant_scores`), −0.05 per trap hit
/// (|actual − expected| < 0.01), −0.05 if the median is < 0.1 or > 0.9; score =
/// clamp(0.3 + penalties, 0, 0.3). It always passes, as in the template.
pub fn behaviour(scores: &[(&str, f64)], traps: &[Trap]) -> Tier {
    let values: Vec<f64> = scores.iter().map(|s| s.1).collect();
    let mut penalty = 0.0;
    let mut checks = Vec::new();
    let var = variance(&values);
    let constant = var < 0.001;
    if constant {
        penalty -= 0.1;
    }
    checks.push(Check {
        name: "constant_scores".to_string(),
        passed: !constant,
        detail: format!("variance {var:.6} (minimum 0.001)"),
    });
    let by_id: HashMap<&str, f64> = if traps.is_empty() {
        HashMap::default()
    } else {
        scores.iter().copied().collect()
    };
    let hits = traps
        .iter()
        .filter(|t| {
            by_id
                .get(t.alert_id.as_str())
                .is_some_and(|s| (s - t.expected_score).abs() < 0.01)
        })
        .count();
    penalty -= 0.05 * hits as f64;
    checks.push(Check {
        name: "pattern_traps".to_string(),
        passed: hits == 0,
        detail: format!("{hits} of {} traps hit", traps.len()),
    });
    let med = median(&values);
    let skewed = !(0.1..=0.9).contains(&med);
    if skewed {
        penalty -= 0.05;
    }
    checks.push(Check {
        name: "median_range".to_string(),
        passed: !skewed,
        detail: format!("median {med:.4} (expected in [0.1, 0.9])"),
    });
    Tier {
        passed: true,
        score: (0.3 + penalty).clamp(0.0, 0.3),
        checks,
    }
}

/// Pearson correlation; None when either side is constant or there are fewer than 2 values.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    if x.len() < 2 || x.len() != y.len() {
        return None;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Plagiarism: Pearson correlation > 0.95 over at least 10 shared alerts.
pub fn plagiarism(a: &[(&str, f64)], b: &[(&str, f64)]) -> Check {
    let bm: HashMap<&str, f64> = b.iter().copied().collect();
    let (x, y): (Vec<f64>, Vec<f64>) = a
        .iter()
        .filter_map(|(k, v)| bm.get(k).map(|w| (*v, *w)))
        .unzip();
    let r = pearson(&x, &y);
    let flagged = x.len() >= 10 && r.is_some_and(|r| r > 0.95);
    Check {
        name: "plagiarism".to_string(),
        passed: !flagged,
        detail: format!("pearson {r:?} over {} shared alerts", x.len()),
    }
}

/// The ground-truth tier's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Whether there were ≥ 10 labelled alerts with both classes.
    pub passed: bool,
    /// 0.3·AUC-ROC + 0.2·average precision (0 when not passed).
    pub score: f64,
    /// AUC-ROC.
    pub auc_roc: Option<f64>,
    /// Average precision.
    pub average_precision: Option<f64>,
    /// Best F1 over thresholds.
    pub best_f1: Option<f64>,
    /// Its threshold.
    pub best_threshold: Option<f64>,
    /// Labelled alerts.
    pub n_samples: usize,
    /// Positive labelled alerts.
    pub n_positive: usize,
    /// n_positive / n_samples.
    pub positive_rate: f64,
    /// Brier score: mean squared difference of score and label (lower reads better as a
    /// probability; not part of any tier's score).
    pub brier: Option<f64>,
}

/// Ground-truth tier over the alerts with a label.
pub fn ground_truth(scores: &[(&str, f64)], labels: &crate::labels::LabelMap<bool>) -> GroundTruth {
    let found = labels.get_many(scores.iter().map(|(k, _)| *k));
    let (s, y): (Vec<f64>, Vec<bool>) = scores
        .iter()
        .zip(found)
        .filter_map(|((_, v), l)| l.map(|l| (*v, *l)))
        .unzip();
    let n_pos = y.iter().filter(|&&l| l).count();
    let enough = y.len() >= 10 && n_pos > 0 && n_pos < y.len();
    let auc = auc_roc(&s, &y);
    let ap = average_precision(&s, &y);
    let f1 = best_f1(&s, &y);
    GroundTruth {
        passed: enough,
        score: if enough {
            0.3 * auc.unwrap_or(0.0) + 0.2 * ap.unwrap_or(0.0)
        } else {
            0.0
        },
        auc_roc: auc,
        average_precision: ap,
        best_f1: f1.map(|f| f.0),
        best_threshold: f1.map(|f| f.1),
        n_samples: y.len(),
        n_positive: n_pos,
        positive_rate: if y.is_empty() {
            0.0
        } else {
            n_pos as f64 / y.len() as f64
        },
        brier: (!y.is_empty()).then(|| {
            s.iter()
                .zip(&y)
                .map(|(p, &l)| (p - f64::from(u8::from(l))).powi(2))
                .sum::<f64>()
                / y.len() as f64
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[(String, f64)]) -> Vec<(&str, f64)> {
        v.iter().map(|(k, x)| (k.as_str(), *x)).collect()
    }

    fn table(v: &[(&str, f64)], lat: f64) -> ScoreTable {
        ScoreTable::new(
            v.iter().map(|(k, _)| Some(*k)).collect(),
            v.iter().map(|(_, x)| Some(*x)).collect(),
            v.iter().map(|_| Some("v1")).collect(),
            vec![Some(lat); v.len()],
            vec![],
        )
    }

    fn ids(v: &[&str]) -> StringArray {
        StringArray::from(v.to_vec())
    }

    #[test]
    fn integrity_fails_fast_in_order() {
        let t = integrity(
            &table(&[("a", 0.1), ("b", 0.9)], 1.0),
            &ids(&["a", "b"]),
            100.0,
        );
        assert!(t.passed && t.score == 0.2 && t.checks.len() == 5);
        let t = integrity(&table(&[("a", 0.1)], 1.0), &ids(&["a", "b"]), 100.0);
        assert_eq!((t.passed, t.score, t.checks.len()), (false, 0.0, 1));
        let mut m = table(&[("a", 0.1), ("b", 0.9)], 1.0);
        m.missing_columns = vec!["latency_ms".into()];
        assert_eq!(
            integrity(&m, &ids(&["a", "b"]), 100.0)
                .checks
                .last()
                .unwrap()
                .name,
            "required_columns"
        );
        let t = integrity(
            &table(&[("a", 0.1), ("b", 1.5)], 1.0),
            &ids(&["a", "b"]),
            100.0,
        );
        assert_eq!(t.checks.last().unwrap().name, "score_range");
        let t = integrity(
            &table(&[("a", 0.1), ("b", 0.5)], 150.0),
            &ids(&["a", "b"]),
            100.0,
        );
        assert_eq!(t.checks.last().unwrap().name, "mean_latency");
        let t = integrity(
            &table(&[("a", 0.1), ("c", 0.5)], 1.0),
            &ids(&["a", "b"]),
            100.0,
        );
        assert_eq!(
            (t.checks.last().unwrap().name.as_str(), t.passed),
            ("alert_id_sets", false)
        );
        assert_eq!(
            t.checks.last().unwrap().detail,
            "1 ids missing from output, 1 unknown ids"
        );
        // The same ids in another order, or one id twice over a batch holding it twice, are
        // the same set; a repeated id in place of another is not.
        let sets = |scored: &[(&str, f64)], batch: &[&str]| {
            let t = integrity(&table(scored, 1.0), &ids(batch), 100.0);
            (t.passed, t.checks.last().unwrap().detail.clone())
        };
        assert!(sets(&[("b", 0.1), ("a", 0.5)], &["a", "b"]).0);
        assert!(sets(&[("a", 0.1), ("a", 0.5), ("b", 0.2)], &["a", "b", "b"]).0);
        assert_eq!(
            sets(&[("a", 0.1), ("a", 0.5)], &["a", "b"]),
            (
                false,
                "1 ids missing from output, 0 unknown ids".to_string()
            )
        );
    }

    #[test]
    fn determinism_tolerates_1e6() {
        assert!(determinism(&[("a", 0.5)], &[("a", 0.5 + 1e-7)]).passed);
        assert!(!determinism(&[("a", 0.5)], &[("a", 0.5 + 1e-5)]).passed);
        assert!(!determinism(&[("a", 0.5)], &[("b", 0.5)]).passed);
    }

    #[test]
    fn behaviour_penalties() {
        // Constant scores at 0.5: −0.1 → 0.2.
        let c: Vec<(String, f64)> = (0..20).map(|i| (format!("a{i}"), 0.5)).collect();
        assert!((behaviour(&s(&c), &[]).score - 0.2).abs() < 1e-12);
        // Spread scores, one trap hit (−0.05) and a median of 0.95 (−0.05): 0.2.
        let v: Vec<(String, f64)> = (0..20)
            .map(|i| (format!("a{i}"), if i < 3 { 0.2 * i as f64 } else { 0.95 }))
            .collect();
        let traps = [
            Trap {
                alert_id: "a1".into(),
                expected_score: 0.205,
            },
            Trap {
                alert_id: "a2".into(),
                expected_score: 0.1,
            },
        ];
        let b = behaviour(&s(&v), &traps);
        assert!((b.score - 0.2).abs() < 1e-12, "{b:?}");
        // Everything wrong at once is clamped at 0.
        let traps: Vec<Trap> = (0..20)
            .map(|i| Trap {
                alert_id: format!("a{i}"),
                expected_score: 0.95,
            })
            .collect();
        let all: Vec<(String, f64)> = (0..20).map(|i| (format!("a{i}"), 0.95)).collect();
        assert_eq!(behaviour(&s(&all), &traps).score, 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[0.75, 0.25, 0.25, 1.0, 0.25, 0.75]), 0.5);
        assert_eq!(median(&[5.0]), 5.0);
        assert!(median(&[]).is_nan());
        assert!((variance(&[1.0, 2.0, 3.0, 4.0]) - 5.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn plagiarism_needs_ten_shared_alerts() {
        let a: Vec<(String, f64)> = (0..10)
            .map(|i| (format!("a{i}"), i as f64 / 10.0))
            .collect();
        let copy: Vec<(String, f64)> = a.iter().map(|(k, v)| (k.clone(), v * 0.9 + 0.01)).collect();
        assert!(!plagiarism(&s(&a), &s(&copy)).passed);
        assert!(plagiarism(&s(&a)[..9], &s(&copy)[..9]).passed);
        let other: Vec<(String, f64)> = a.iter().map(|(k, v)| (k.clone(), 1.0 - v)).collect();
        assert!(plagiarism(&s(&a), &s(&other)).passed);
    }

    #[test]
    fn ground_truth_score() {
        // AUC 0.75 and AP 0.8333… (see metrics tests), replicated to 12 alerts with ties.
        let sc = [("a", 0.1), ("b", 0.4), ("c", 0.35), ("d", 0.8)];
        let mut scores = Vec::new();
        let mut labels = crate::labels::LabelMap::default();
        for r in 0..3 {
            for (k, v) in &sc {
                let id = format!("{k}{r}");
                scores.push((id.clone(), *v));
                labels.insert(id, matches!(*k, "c" | "d"));
            }
        }
        let scores = s(&scores);
        let g = ground_truth(&scores, &labels);
        assert!(g.passed);
        assert_eq!((g.n_samples, g.n_positive), (12, 6));
        assert!((g.auc_roc.unwrap() - 0.75).abs() < 1e-12);
        let expected = 0.3 * 0.75 + 0.2 * g.average_precision.unwrap();
        assert!((g.score - expected).abs() < 1e-12);
        // (0.1² + 0.4² + 0.65² + 0.2²) / 4 per replica.
        let brier = (0.01 + 0.16 + 0.4225 + 0.04) / 4.0;
        assert!((g.brier.unwrap() - brier).abs() < 1e-12);
        // Fewer than 10 labelled alerts, or one class: not passed, score 0.
        assert!(!ground_truth(&scores[..8], &labels).passed);
        let neg: crate::labels::LabelMap<bool> = labels.keys().map(|k| (k, false)).collect();
        assert_eq!(ground_truth(&scores, &neg).score, 0.0);
    }
}
