//! Calibration of the alert scores: a monotone map applied after the scorer, chosen by the
//! score stage's `calibration` parameter. Every map keeps the order of the scores (equal scores
//! stay equal, a higher score stays higher), so rankings and AUC never change; what changes is
//! the distribution the validator's Tier 2 entropy and the miner template's behaviour tier
//! judge, and how well the scores read as probabilities (Brier score). `docs/validation.md`
//! has the measured effect of each.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// How the score stage maps the scorer's probabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Calibration {
    /// The scorer's probabilities as they are.
    None,
    /// Each score replaced by its percentile among the date's alerts (average rank of its tie
    /// group ÷ alerts): uniform on (0, 1], whatever the model's base rate. The default: it
    /// earns the most of the validator's reward.
    #[default]
    RankPercentile,
    /// The isotonic map fitted on the scorer's held-out dates at training time (stored in its
    /// metadata): probabilities that match the observed SAR rate.
    Isotonic,
}

/// Weight of the raw score in an isotonic map: it keeps the map strictly increasing (so no
/// two distinct scores become equal) at a cost of at most 0.001 in probability.
const RAW_WEIGHT: f64 = 1e-3;

/// A monotone map from scores to probabilities, fitted by pool-adjacent-violators: knots at
/// the mean score of each pooled block and its positive rate, linear in between, constant
/// beyond the ends, blended with the raw score by [`RAW_WEIGHT`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Isotonic {
    /// Knot scores, strictly increasing.
    pub x: Vec<f64>,
    /// Knot probabilities, strictly increasing.
    pub y: Vec<f64>,
    /// Labelled scores it was fitted on.
    pub samples: usize,
}

impl Isotonic {
    /// Fits the map to scores and their labels; `None` without both classes.
    pub fn fit(scores: &[f64], labels: &[bool]) -> Option<Self> {
        let positives = labels.iter().filter(|&&l| l).count();
        if scores.len() != labels.len() || positives == 0 || positives == labels.len() {
            return None;
        }
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        // Blocks of (sum of scores, sum of labels, count). Each group of equal scores enters
        // as one block; then a block whose rate is not above its predecessor's is pooled with
        // it, until the rates increase strictly.
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let s = scores[order[start]];
            let mut group = (0.0, 0.0, 0.0);
            let mut end = start;
            while end < order.len() && scores[order[end]] == s {
                group = (
                    group.0 + s,
                    group.1 + f64::from(u8::from(labels[order[end]])),
                    group.2 + 1.0,
                );
                end += 1;
            }
            blocks.push(group);
            start = end;
            while blocks.len() >= 2 {
                let (b, a) = (blocks[blocks.len() - 1], blocks[blocks.len() - 2]);
                if b.1 / b.2 > a.1 / a.2 {
                    break;
                }
                blocks.pop();
                *blocks.last_mut().expect("two blocks") = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
            }
        }
        Some(Self {
            x: blocks.iter().map(|b| b.0 / b.2).collect(),
            y: blocks.iter().map(|b| b.1 / b.2).collect(),
            samples: scores.len(),
        })
    }

    /// The calibrated probability of a score in [0, 1].
    pub fn apply(&self, s: f64) -> f64 {
        let (x, y) = (&self.x, &self.y);
        let fitted = match x.partition_point(|&k| k <= s) {
            0 => y[0],
            i if i == x.len() => y[x.len() - 1],
            i => y[i - 1] + (y[i] - y[i - 1]) * (s - x[i - 1]) / (x[i] - x[i - 1]),
        };
        ((1.0 - RAW_WEIGHT) * fitted + RAW_WEIGHT * s).clamp(0.0, 1.0)
    }
}

/// Writes `mapped` (a monotone map of `scores`) into `scores`, nudged up by the smallest step
/// where rounding made two different scores equal or swapped them, so the order of `scores`
/// is kept exactly (ranks and AUC depend on it); only at 1.0 itself can two stay equal.
fn keep_order(scores: &mut [f64], mut mapped: Vec<f64>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    for w in order.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        if scores[hi] == scores[lo] {
            mapped[hi] = mapped[lo];
        } else if mapped[hi] <= mapped[lo] {
            mapped[hi] = mapped[lo].next_up().min(1.0);
        }
    }
    scores.copy_from_slice(&mapped);
}

/// Each score's percentile among `scores`: the average 1-based rank of its tie group ÷ n.
pub fn rank_percentile(scores: &[f64]) -> Vec<f64> {
    let n = scores.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut out = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks start + 1 ..= end share their mean.
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            out[i] = mean_rank / n as f64;
        }
        start = end;
    }
    out
}

impl Calibration {
    /// Maps one date's scores; `isotonic` is the scorer's fitted map, if it has one.
    pub fn apply(self, scores: &mut [f64], isotonic: Option<&Isotonic>) -> Result<()> {
        match self {
            Self::None => {}
            Self::RankPercentile => {
                let p = rank_percentile(scores);
                scores.copy_from_slice(&p);
            }
            Self::Isotonic => {
                self.check(isotonic)?;
                if let Some(iso) = isotonic {
                    let mapped: Vec<f64> = scores.iter().map(|&s| iso.apply(s)).collect();
                    keep_order(scores, mapped);
                }
            }
        }
        Ok(())
    }

    /// Whether this calibration can be applied by a scorer with (or without) `isotonic`.
    pub fn check(self, isotonic: Option<&Isotonic>) -> Result<()> {
        if self == Self::Isotonic && isotonic.is_none() {
            bail!("calibration = \"isotonic\" needs a scorer trained with `pipeline train` (its metadata holds the isotonic map); this one has none: retrain it, or choose another calibration")
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_percentile_averages_ties_and_keeps_order() {
        let p = rank_percentile(&[0.2, 0.9, 0.2, 0.5]);
        assert_eq!(p, vec![0.375, 1.0, 0.375, 0.75]);
        assert_eq!(rank_percentile(&[0.3]), vec![1.0]);
        assert!(rank_percentile(&[]).is_empty());
    }

    #[test]
    fn isotonic_pools_violators_and_stays_strictly_increasing() {
        let s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let y = [false, true, false, false, true, true];
        let iso = Isotonic::fit(&s, &y).unwrap();
        // 0.2 (1) and 0.3, 0.4 (0, 0) pool into one block of rate 1/3.
        assert_eq!(iso.y, vec![0.0, 1.0 / 3.0, 1.0]);
        assert!(iso.x.windows(2).all(|w| w[0] < w[1]));
        let mut last = -1.0;
        for i in 0..=1000 {
            let v = iso.apply(i as f64 / 1000.0);
            assert!(v > last, "strictly increasing at {i}");
            assert!((0.0..=1.0).contains(&v));
            last = v;
        }
        assert!(Isotonic::fit(&s, &[true; 6]).is_none());
    }

    #[test]
    fn isotonic_treats_equal_scores_as_one_whatever_their_order() {
        let s = [0.1, 0.1, 0.2, 0.2, 0.2, 0.2];
        for y in [
            [true, false, false, true, true, true],
            [false, true, true, true, true, false],
        ] {
            let iso = Isotonic::fit(&s, &y).unwrap();
            assert_eq!(iso.y, vec![0.5, 0.75], "{y:?}");
        }
    }

    #[test]
    fn isotonic_keeps_scores_apart_that_rounding_would_merge() {
        let iso = Isotonic::fit(&[0.1, 0.9], &[false, true]).unwrap();
        let raw = [0.95, 0.95 + 1e-15, 0.95, 0.97];
        let mut out = raw;
        Calibration::Isotonic.apply(&mut out, Some(&iso)).unwrap();
        assert!(
            out[1] > out[0] && out[0] == out[2] && out[3] > out[1],
            "{out:?}"
        );
    }

    #[test]
    fn calibrations_never_reorder() {
        let scores: Vec<f64> = (0..500)
            .map(|i| ((i * 7919) % 997) as f64 / 997.0)
            .collect();
        let labels: Vec<bool> = scores.iter().map(|s| s * 10.0 % 3.0 > 1.5).collect();
        let iso = Isotonic::fit(&scores, &labels).unwrap();
        for c in [Calibration::RankPercentile, Calibration::Isotonic] {
            let mut out = scores.clone();
            c.apply(&mut out, Some(&iso)).unwrap();
            for i in 0..scores.len() {
                for j in 0..scores.len() {
                    assert_eq!(scores[i].total_cmp(&scores[j]), out[i].total_cmp(&out[j]));
                }
            }
        }
        assert!(Calibration::Isotonic.apply(&mut [0.5], None).is_err());
    }
}
