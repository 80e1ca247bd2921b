//! The subnet validator's judgement of a submission, as its code computes it (chainswarm
//! `risk-assesment`, `packages/validation`, Nov 2025): the Tier-1 gate, Tier 2 (behaviour),
//! Tier 3A (AUC against address labels, times coverage) and the final score with its flat
//! period, so a miner sees the expected reward before submitting. `docs/validation.md` gives
//! every formula and where upstream's code is ambiguous or broken, and what is done here then.

use crate::features::keys::KeyRows;
use crate::labels::LabelMap;
use crate::metrics::{auc_roc, average_ranks};
use crate::validation::pearson;
use arrow::array::{Array, StringArray};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Days of flat reward at the start of a miner's life (`days < 29` is flat).
pub const FLAT_PERIOD_DAYS: i64 = 29;

/// The reward of a day in the flat period.
pub const FLAT_REWARD: f64 = 0.1;

/// Days from the first submission after which Tier 3B is attempted.
pub const TIER3B_DAYS: i64 = 30;

/// One submitted row, as the validator stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    /// alert_id
    pub alert_id: &'a str,
    /// score
    pub score: f64,
    /// model_version
    pub model_version: &'a str,
    /// model_github_url
    pub model_github_url: &'a str,
}

/// Tier 1, the gate: four fractions, each worth 0.25; it passes only when all are 1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tier1 {
    /// All four parts are exactly 1.
    pub passed: bool,
    /// 0.25 × (completeness + score_range + no_duplicates + metadata).
    pub score: f64,
    /// Distinct submitted alert ids / distinct alert ids of the batch, at most 1.
    pub completeness: f64,
    /// Rows with a score in [0, 1] / rows.
    pub score_range: f64,
    /// Distinct alert ids / rows.
    pub no_duplicates: f64,
    /// Rows with a non-empty model_version and model_github_url / rows.
    pub metadata: f64,
}

/// Tier 1 over the submitted rows, the number of distinct alert ids among them
/// ([`distinct`]) and the number of distinct alert ids of the batch. Upstream raises on a batch
/// without alerts; here an empty batch with nothing submitted is complete.
pub fn tier1(rows: &[Row], distinct_ids: usize, batch_ids: usize) -> Tier1 {
    let n = rows.len() as f64;
    let u = distinct_ids as f64;
    let frac = |bad: usize| if n == 0.0 { 0.0 } else { 1.0 - bad as f64 / n };
    let completeness = if batch_ids == 0 {
        if rows.is_empty() {
            1.0
        } else {
            0.0
        }
    } else {
        (u / batch_ids as f64).min(1.0)
    };
    let score_range = frac(
        rows.iter()
            .filter(|r| !(0.0..=1.0).contains(&r.score))
            .count(),
    );
    let no_duplicates = if n == 0.0 { 0.0 } else { u / n };
    let metadata = frac(
        rows.iter()
            .filter(|r| r.model_version.is_empty() || r.model_github_url.is_empty())
            .count(),
    );
    let parts = [completeness, score_range, no_duplicates, metadata];
    Tier1 {
        passed: parts.iter().all(|&p| p == 1.0),
        score: 0.25 * parts.iter().sum::<f64>(),
        completeness,
        score_range,
        no_duplicates,
        metadata,
    }
}

/// The number of distinct ids.
pub fn distinct<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> usize {
    let mut set = FxHashSet::with_capacity_and_hasher(ids.len(), Default::default());
    set.extend(ids);
    set.len()
}

/// numpy's `histogram(x, bins=10, range=(0, 1))` bin of `x` (edges `i · 0.1` as doubles, so
/// 0.3, 0.6 and 0.7 fall in the bin below their decimal value); `None` outside [0, 1].
fn numpy_bin(x: f64) -> Option<usize> {
    if !(0.0..=1.0).contains(&x) {
        return None;
    }
    let edge = |i: usize| i as f64 * 0.1;
    let mut k = ((x * 10.0) as usize).min(9);
    if x < edge(k) {
        k -= 1;
    } else if k < 9 && x >= edge(k + 1) {
        k += 1;
    }
    Some(k)
}

/// numpy's pairwise sum of a short array (8 partial sums, then the rest in order).
fn numpy_sum(v: &[f64]) -> f64 {
    if v.len() < 8 {
        return v.iter().fold(0.0, |a, b| a + b);
    }
    let r = &v[..8];
    let head = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    v[8..].iter().fold(head, |a, b| a + b)
}

/// Tier 2's entropy part: the 10-bin histogram of the scores as fractions of all of them,
/// each plus 1e-10, normalised, Shannon entropy in nats over ln 10 (scipy's `entropy`).
pub fn entropy(scores: &[f64]) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let mut counts = [0usize; 10];
    for &s in scores {
        if let Some(k) = numpy_bin(s) {
            counts[k] += 1;
        }
    }
    let n = scores.len() as f64;
    let q: Vec<f64> = counts.iter().map(|&c| c as f64 / n + 1e-10).collect();
    let total = numpy_sum(&q);
    let terms: Vec<f64> = q
        .iter()
        .map(|&x| {
            let p = x / total;
            -p * p.ln()
        })
        .collect();
    numpy_sum(&terms) / 10f64.ln()
}

/// Pearson correlation of tie-averaged ranks; `None` when either side is constant or there
/// are fewer than 2 pairs.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Tier 2, four parts × 0.25. The rank correlation needs the consensus (the median of every
/// miner's score per alert); without one it is unknown, and so is the total, whose bounds
/// (the part at 0 and at 1) are given instead.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tier2 {
    /// 0.25 × (entropy + rank_correlation + consistency + address_consistency), if known.
    pub score: Option<f64>,
    /// The lowest and highest score the unknown parts allow (equal when all are known).
    pub bounds: [f64; 2],
    /// Histogram entropy over ln 10.
    pub entropy: f64,
    /// (Spearman vs the consensus + 1) / 2; 0 with fewer than 2 shared alerts.
    pub rank_correlation: Option<f64>,
    /// 1 − mean |Δscore| vs the miner's previous submitted date on shared alerts (≥ 2), else 0.7.
    pub consistency: f64,
    /// 1 + mean penalty by the population std of each address's scores (see [`tier2`]).
    pub address_consistency: f64,
}

/// Tier 2's consistency part when there is no previous date or fewer than 2 shared alerts.
pub const NO_HISTORY: f64 = 0.7;

/// The addresses of the scored alerts, numbered in the order of each address's first scored
/// alert: Tier 2 groups the scores by address and Tier 3A reads each address's labels once.
#[derive(Debug, Default)]
pub struct AddressGroups<'a> {
    /// Per score, the number of its address (`None`: no address known).
    of: Vec<Option<u32>>,
    /// Each number's address.
    address: Vec<&'a str>,
}

impl<'a> AddressGroups<'a> {
    /// The addresses of `scores` by alert id (the validator joins the scores with the batch's
    /// alerts on `alert_id`).
    pub fn new(scores: &[(&str, f64)], address_of: impl Fn(&str) -> Option<&'a str>) -> Self {
        let mut number: FxHashMap<&str, u32> = FxHashMap::default();
        let mut address = Vec::new();
        let of = scores
            .iter()
            .map(|(k, _)| {
                let a = address_of(k)?;
                Some(*number.entry(a).or_insert_with(|| {
                    address.push(a);
                    address.len() as u32 - 1
                }))
            })
            .collect();
        Self { of, address }
    }

    /// The addresses of scores that are the batch's alerts in batch order (distinct ids, as
    /// the pipeline writes them): the `i`-th score's address is the `i`-th alert's (a null as
    /// the empty string). One prefetched table of the addresses: on a 10x day a general map of
    /// 500K addresses cost ~100 ms of validate.
    pub fn in_batch_order(addresses: &'a StringArray) -> Self {
        let keys = KeyRows::new(addresses);
        let address = keys
            .groups()
            .map(|rows| match rows[0] {
                r if addresses.is_null(r) => "",
                r => addresses.value(r),
            })
            .collect();
        let of = (0..addresses.len())
            .map(|i| Some(keys.number(i) as u32))
            .collect();
        Self { of, address }
    }

    /// The address of score `i`, if known.
    pub fn address(&self, i: usize) -> Option<&'a str> {
        self.of[i].map(|g| self.address[g as usize])
    }

    /// The number of distinct addresses.
    pub fn len(&self) -> usize {
        self.address.len()
    }

    /// Whether no score has an address.
    pub fn is_empty(&self) -> bool {
        self.address.is_empty()
    }
}

/// Tier 2 of `scores` (alert_id, score). `consensus`: alert → consensus score, when known;
/// `previous`: the scores of the miner's previous submitted date; `addresses`: the scored
/// alerts' addresses. Address consistency: for each address with ≥ 2 scores, population std < 0.10 → 0,
/// < 0.15 → −0.05, < 0.25 → −0.10, else −0.15; 1 + the mean penalty (1 when no address has
/// two scores, 0 when no alert has an address, as upstream's empty join gives).
pub fn tier2(
    scores: &[(&str, f64)],
    consensus: Option<&HashMap<String, f64>>,
    previous: Option<&HashMap<String, f64>>,
    addresses: &AddressGroups,
) -> Tier2 {
    let values: Vec<f64> = scores.iter().map(|s| s.1).collect();
    let entropy = entropy(&values);
    let rank_correlation = consensus.and_then(|c| {
        let (x, y): (Vec<f64>, Vec<f64>) = scores
            .iter()
            .filter_map(|(k, v)| c.get(*k).map(|w| (*v, *w)))
            .unzip();
        if x.len() < 2 {
            return Some(0.0);
        }
        spearman(&x, &y).map(|rho| (rho + 1.0) / 2.0)
    });
    let consistency = previous
        .map(|p| {
            let d: Vec<f64> = scores
                .iter()
                .filter_map(|(k, v)| p.get(*k).map(|w| (v - w).abs()))
                .collect();
            if d.len() < 2 {
                NO_HISTORY
            } else {
                1.0 - (d.iter().sum::<f64>() / d.len() as f64).min(1.0)
            }
        })
        .unwrap_or(NO_HISTORY);
    // Each address's scores, the addresses in the order of their first scored alert (the
    // penalties are summed in that order, so the total does not depend on a hash order).
    debug_assert_eq!(addresses.of.len(), scores.len());
    let mut by_addr: Vec<Vec<f64>> = vec![Vec::new(); addresses.len()];
    for ((_, v), g) in scores.iter().zip(&addresses.of) {
        if let Some(g) = g {
            by_addr[*g as usize].push(*v);
        }
    }
    let penalties: Vec<f64> = by_addr
        .iter()
        .filter(|v| v.len() >= 2)
        .map(|v| match population_std(v) {
            s if s < 0.10 => 0.0,
            s if s < 0.15 => -0.05,
            s if s < 0.25 => -0.10,
            _ => -0.15,
        })
        .collect();
    let address_consistency = if by_addr.is_empty() {
        0.0
    } else if penalties.is_empty() {
        1.0
    } else {
        (1.0 + penalties.iter().sum::<f64>() / penalties.len() as f64).max(0.0)
    };
    Tier2::from_parts(entropy, rank_correlation, consistency, address_consistency)
}

impl Tier2 {
    /// Tier 2 from its four parts (the rank correlation unknown when `None`).
    pub fn from_parts(
        entropy: f64,
        rank_correlation: Option<f64>,
        consistency: f64,
        address_consistency: f64,
    ) -> Self {
        let known = entropy + consistency + address_consistency;
        let bounds = match rank_correlation {
            Some(r) => [0.25 * (known + r); 2],
            None => [0.25 * known, 0.25 * (known + 1.0)],
        };
        Self {
            score: rank_correlation.map(|_| bounds[0]),
            bounds,
            entropy,
            rank_correlation,
            consistency,
            address_consistency,
        }
    }

    /// The same Tier 2 with another consistency part (once the previous date is known).
    pub fn with_consistency(&self, consistency: f64) -> Self {
        Self::from_parts(
            self.entropy,
            self.rank_correlation,
            consistency,
            self.address_consistency,
        )
    }
}

/// Why Tier 3B is never computed (reported in `validation.json`).
pub const TIER3B_UNAVAILABLE: &str = "Tier 3B (feature evolution) cannot run upstream: its queries name columns the tables do not have and nothing schedules its tracking job, so the validator scores it as unavailable (0)";

fn population_std(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt()
}

/// Tier 3A: AUC of the scores against address labels, over the submitted alerts whose
/// address is labelled (high/critical = 1, low/medium = 0), and its coverage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tier3a {
    /// The AUC; `None` without labelled alerts of both classes (upstream: NaN or a crash).
    pub auc: Option<f64>,
    /// Labelled rows / distinct submitted alerts.
    pub coverage: f64,
    /// Labelled rows (one per label row of the alert's address).
    pub labelled: usize,
    /// Of which illicit (high/critical).
    pub positive: usize,
}

/// Tier 3A of `scores` (`distinct`: the number of distinct alert ids among them); `labels`
/// gives the label rows (true = illicit) of an address.
pub fn tier3a(
    scores: &[(&str, f64)],
    distinct: usize,
    addresses: &AddressGroups,
    labels: &LabelMap<Vec<bool>>,
) -> Tier3a {
    debug_assert_eq!(addresses.of.len(), scores.len());
    let labels = labels.get_many(addresses.address.iter().copied());
    let (mut s, mut y) = (Vec::new(), Vec::new());
    for ((_, v), g) in scores.iter().zip(&addresses.of) {
        if let Some(rows) = g.and_then(|g| labels[g as usize]) {
            for &l in rows {
                s.push(*v);
                y.push(l);
            }
        }
    }
    Tier3a {
        auc: auc_roc(&s, &y),
        coverage: if distinct == 0 {
            0.0
        } else {
            y.len() as f64 / distinct as f64
        },
        labelled: y.len(),
        positive: y.iter().filter(|&&l| l).count(),
    }
}

/// The final score of a day and how it was reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reward {
    /// `rejected` (Tier 1 failed), `flat_period`, `tier3a_only`, `awaiting_evolution_data`
    /// (day 29: no Tier 3 part available) or `no_tier3` (later, none available).
    pub status: String,
    /// Days since the miner's first submission, if known.
    pub days_since_first_submission: Option<i64>,
    /// The final score, when every part of it is known.
    pub score: Option<f64>,
    /// The lowest and highest final score the unknown parts allow.
    pub bounds: [f64; 2],
    /// 0.5 · T3A · coverage_A + 0.5 · T3B · coverage_B (T3B is never available, see docs).
    pub tier3: f64,
}

/// The final score: 0 if Tier 1 failed; the flat 0.1 while `days < 29`; else
/// 0.1 · Tier2 + 0.9 · Tier3, a missing Tier-3 part counting 0. Without `days` the day is
/// taken as past the flat period, the figure that matters once it ends.
pub fn reward(t1: &Tier1, t2: &Tier2, t3a: &Tier3a, days: Option<i64>) -> Reward {
    let tier3 = 0.5 * t3a.auc.map_or(0.0, |auc| auc * t3a.coverage);
    let (status, bounds) = if !t1.passed {
        ("rejected", [0.0; 2])
    } else if days.is_some_and(|d| d < FLAT_PERIOD_DAYS) {
        ("flat_period", [FLAT_REWARD; 2])
    } else {
        let status = match (t3a.auc.is_some(), days.is_some_and(|d| d < TIER3B_DAYS)) {
            (true, _) => "tier3a_only",
            (false, true) => "awaiting_evolution_data",
            (false, false) => "no_tier3",
        };
        let b = t2.bounds.map(|t2| 0.1 * t2 + 0.9 * tier3);
        (status, b)
    };
    Reward {
        status: status.to_string(),
        days_since_first_submission: days,
        score: (bounds[0] == bounds[1]).then_some(bounds[0]),
        bounds,
        tier3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[(String, f64)]) -> Vec<(&str, f64)> {
        v.iter().map(|(k, x)| (k.as_str(), *x)).collect()
    }

    fn row<'a>(id: &'a str, score: f64, url: &'a str) -> Row<'a> {
        Row {
            alert_id: id,
            score,
            model_version: "v1",
            model_github_url: url,
        }
    }

    #[test]
    fn tier1_is_the_mean_of_four_fractions() {
        let batch = ["a", "b", "c", "d"];
        let url = "https://github.com/x/y";
        let all: Vec<Row> = batch.iter().map(|id| row(id, 0.5, url)).collect();
        let t = tier1(&all, 4, batch.len());
        assert!(t.passed && t.score == 1.0);
        // No GitHub URL on any row: the metadata part is 0, the rest 1 → 0.75, gate failed.
        let t = tier1(&[row("a", 0.5, ""), row("b", 0.5, "")], 2, 2);
        assert_eq!((t.passed, t.score, t.metadata), (false, 0.75, 0.0));
        // 3 of 4 alerts, one of them twice: completeness 0.75, duplicates 3/4.
        let t = tier1(
            &[
                row("a", 0.5, url),
                row("b", 0.2, url),
                row("b", 0.2, url),
                row("c", 0.1, url),
            ],
            3,
            batch.len(),
        );
        assert_eq!((t.completeness, t.no_duplicates), (0.75, 0.75));
        assert_eq!(t.score, 0.25 * (0.75 + 1.0 + 0.75 + 1.0));
        let t = tier1(&[], 0, batch.len());
        assert_eq!((t.passed, t.score), (false, 0.0));
    }

    #[test]
    fn entropy_bins_as_numpy_does() {
        // numpy puts 0.3, 0.6 and 0.7 one bin lower than their decimal value.
        assert_eq!(numpy_bin(0.3), Some(2));
        assert_eq!(numpy_bin(0.6), Some(5));
        assert_eq!(numpy_bin(0.7), Some(6));
        assert_eq!(
            (numpy_bin(0.0), numpy_bin(0.1), numpy_bin(1.0)),
            (Some(0), Some(1), Some(9))
        );
        assert_eq!(numpy_bin(1.5), None);
        // Uniform over 10 bins: 1 (up to the epsilon); one bin: about 9.4e-9 (the epsilon), not 0.
        let u: Vec<f64> = (0..10).map(|i| i as f64 / 10.0 + 0.05).collect();
        assert!((entropy(&u) - 1.0).abs() < 1e-12);
        let one = entropy(&[0.5, 0.51]);
        assert!(one > 0.0 && one < 1e-7, "{one}");
        // Four equal bins: ln 4 / ln 10 plus six empty bins' epsilon terms (scipy: 0.6020599972).
        let four = entropy(&[0.05, 0.15, 0.25, 0.35]);
        assert!((four - 0.602_059_997_2).abs() < 1e-10, "{four}");
    }

    #[test]
    fn tier2_parts_and_unknown_consensus() {
        let sc = [("a", 0.2), ("b", 0.35), ("c", 0.9), ("d", 0.1)];
        let addr: HashMap<String, String> = [("a", "x"), ("b", "x"), ("c", "y")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let addr = AddressGroups::new(&sc, |k| addr.get(k).map(String::as_str));
        // Address x: 0.2 and 0.35, population std 0.075 → no penalty (sample std would be 0.106).
        let t = tier2(&sc, None, None, &addr);
        assert_eq!((t.address_consistency, t.consistency), (1.0, NO_HISTORY));
        assert_eq!(t.score, None);
        let known = t.entropy + 0.7 + 1.0;
        assert_eq!(t.bounds, [0.25 * known, 0.25 * (known + 1.0)]);
        // A consensus in the same order: ρ = 1 → part 1; reversed: 0.
        let same: HashMap<String, f64> = sc.iter().map(|(k, v)| (k.to_string(), v * 0.5)).collect();
        let t = tier2(&sc, Some(&same), None, &addr);
        assert_eq!(t.rank_correlation, Some(1.0));
        assert_eq!(t.score, Some(0.25 * (known + 1.0)));
        let rev: HashMap<String, f64> = sc.iter().map(|(k, v)| (k.to_string(), -v)).collect();
        assert_eq!(
            tier2(&sc, Some(&rev), None, &addr).rank_correlation,
            Some(0.0)
        );
        // Fewer than 2 shared alerts with the consensus: 0.
        let one: HashMap<String, f64> = [("a".to_string(), 0.3)].into();
        assert_eq!(
            tier2(&sc, Some(&one), None, &addr).rank_correlation,
            Some(0.0)
        );
        // Previous date: needs 2 shared alerts.
        let prev: HashMap<String, f64> = [("a".to_string(), 0.3), ("b".to_string(), 0.25)].into();
        let c = tier2(&sc, None, Some(&prev), &addr).consistency;
        assert!((c - 0.9).abs() < 1e-12, "{c}");
        // No alert with an address: 0, as upstream's empty join.
        assert_eq!(
            tier2(&sc, None, None, &AddressGroups::new(&sc, |_| None)).address_consistency,
            0.0
        );
    }

    #[test]
    fn address_consistency_does_not_depend_on_a_hash_order() {
        // 600 addresses with two scores each, penalised 0, −0.05, −0.10 and −0.15 in turn: the
        // sum of such penalties depends on its order, which was a SipHash map's (random) order.
        let (mut sc, mut addr) = (Vec::new(), HashMap::new());
        for i in 0..600 {
            let d = [0.0, 0.25, 0.4, 0.6][i % 4];
            for (j, s) in [0.2, 0.2 + d].into_iter().enumerate() {
                sc.push((format!("{i}-{j}"), s));
                addr.insert(format!("{i}-{j}"), format!("addr-{i}"));
            }
        }
        let want = 1.0
            + (0..600)
                .map(|i| [0.0, -0.05, -0.10, -0.15][i % 4])
                .sum::<f64>()
                / 600.0;
        let sc = s(&sc);
        for _ in 0..20 {
            let addr = AddressGroups::new(&sc, |k| addr.get(k).map(String::as_str));
            let got = tier2(&sc, None, None, &addr).address_consistency;
            assert_eq!(got.to_bits(), want.to_bits(), "{got} vs {want}");
        }
    }

    #[test]
    fn addresses_in_batch_order_are_those_by_id() {
        let ids = ["a", "b", "c", "d"];
        let addrs = StringArray::from(vec![Some("x"), Some("y"), Some("x"), None]);
        let by_id: HashMap<&str, &str> = [("a", "x"), ("b", "y"), ("c", "x"), ("d", "")].into();
        let sc: Vec<(&str, f64)> = ids.into_iter().zip([0.9, 0.2, 0.3, 0.6]).collect();
        let (in_order, by_id) = (
            AddressGroups::in_batch_order(&addrs),
            AddressGroups::new(&sc, |k| by_id.get(k).copied()),
        );
        assert_eq!(
            (&in_order.of, &in_order.address),
            (&by_id.of, &by_id.address)
        );
        assert_eq!(in_order.of, [Some(0), Some(1), Some(0), Some(2)]);
        assert_eq!(in_order.address, ["x", "y", ""]);
        // Tier 2 and Tier 3A see the same addresses either way.
        let labels: LabelMap<Vec<bool>> = ["x", "y", ""]
            .map(|a| (a, vec![a == "x"]))
            .into_iter()
            .collect();
        let t2 = tier2(&sc, None, None, &in_order);
        assert_eq!(
            t2.address_consistency,
            tier2(&sc, None, None, &by_id).address_consistency
        );
        assert!(t2.address_consistency < 1.0, "a and c share address x");
        let (t3, t3_by_id) = (
            tier3a(&sc, 4, &in_order, &labels),
            tier3a(&sc, 4, &by_id, &labels),
        );
        assert_eq!((t3.auc, t3.labelled), (t3_by_id.auc, t3_by_id.labelled));
        assert_eq!((t3.labelled, t3.positive), (4, 2));
    }

    #[test]
    fn tier3a_counts_every_label_row_and_the_reward_follows_the_schedule() {
        let sc = [("a", 0.9), ("b", 0.2), ("c", 0.6), ("d", 0.4)];
        let addr: HashMap<String, String> = sc
            .iter()
            .map(|(k, _)| (k.to_string(), format!("addr-{k}")))
            .collect();
        let labels: LabelMap<Vec<bool>> = [
            ("addr-a", vec![true]),
            ("addr-b", vec![false, false]),
            ("addr-c", vec![false]),
        ]
        .into_iter()
        .collect();
        let addr = AddressGroups::new(&sc, |k| addr.get(k).map(String::as_str));
        let t3 = tier3a(&sc, 4, &addr, &labels);
        // Rows: a+ 0.9, b− 0.2 (twice), c− 0.6: the positive outranks all → AUC 1; 4 rows / 4 alerts.
        assert_eq!(
            (t3.auc, t3.coverage, t3.labelled, t3.positive),
            (Some(1.0), 1.0, 4, 1)
        );
        let t1 = Tier1 {
            passed: true,
            score: 1.0,
            completeness: 1.0,
            score_range: 1.0,
            no_duplicates: 1.0,
            metadata: 1.0,
        };
        let t2 = Tier2 {
            score: Some(0.8),
            bounds: [0.8; 2],
            entropy: 0.5,
            rank_correlation: Some(1.0),
            consistency: 0.7,
            address_consistency: 1.0,
        };
        let r = reward(&t1, &t2, &t3, Some(10));
        assert_eq!((r.status.as_str(), r.score), ("flat_period", Some(0.1)));
        let r = reward(&t1, &t2, &t3, Some(29));
        assert_eq!(r.status, "tier3a_only");
        assert!((r.score.unwrap() - (0.1 * 0.8 + 0.9 * 0.5)).abs() < 1e-12);
        let failed = Tier1 {
            passed: false,
            ..t1.clone()
        };
        assert_eq!(reward(&failed, &t2, &t3, Some(40)).score, Some(0.0));
        let unknown = Tier2 {
            score: None,
            bounds: [0.6, 0.85],
            ..t2
        };
        let r = reward(&t1, &unknown, &t3, None);
        assert_eq!(r.score, None);
        assert!(
            (r.bounds[0] - (0.06 + 0.45)).abs() < 1e-12
                && (r.bounds[1] - (0.085 + 0.45)).abs() < 1e-12
        );
        let unlabelled = ["addr-a", "addr-b", "addr-c", "addr-d"].map(|a| (a, vec![false]));
        let none = tier3a(&sc, 4, &addr, &unlabelled.into_iter().collect());
        assert_eq!(none.auc, None);
        assert_eq!(
            reward(&t1, &t2, &none, Some(29)).status,
            "awaiting_evolution_data"
        );
        assert_eq!(reward(&t1, &t2, &none, Some(31)).status, "no_tier3");
    }
}
