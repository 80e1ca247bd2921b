//! Classification and ranking metrics: AUC-ROC and average precision (ties handled as
//! scikit-learn does), best F1, and NDCG@k.

/// Ranks with ties averaged, 1-based (pandas `rank()`).
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    // The values with their positions, sorted by value then position (the order of a stable
    // sort, which decides the ranks of NaNs, each a group of its own): one sort of contiguous
    // pairs, not of positions compared through the values they point at.
    let mut sorted: Vec<(f64, u32)> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, u32::try_from(i).expect("fewer than 2^32 values")))
        .collect();
    sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut r = vec![0.0; x.len()];
    let mut below = 0;
    for group in sorted.chunk_by(|a, b| a.0 == b.0) {
        let rank = (2 * below + group.len() - 1) as f64 / 2.0 + 1.0;
        for &(_, i) in group {
            r[i as usize] = rank;
        }
        below += group.len();
    }
    r
}

/// Sample variance (ddof 1); 0 with fewer than two values.
pub fn variance(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = x.iter().sum::<f64>() / x.len() as f64;
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64
}

/// Mean and sample standard deviation (ddof 1; 0 with one value); `None` when empty.
pub fn mean_std(x: &[f64]) -> Option<(f64, f64)> {
    (!x.is_empty()).then(|| (x.iter().sum::<f64>() / x.len() as f64, variance(x).sqrt()))
}

/// Area under the ROC curve; ties in score count one half. `None` without both classes.
pub fn auc_roc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    // Sum of the positives' average ranks, one group of tied scores at a time: ranks are
    // half-integers and counts integers, so the sum is exact in any order.
    let (mut rank_sum, mut below) = (0.0, 0);
    for group in by_score(scores, labels).chunk_by(|a, b| a.0 == b.0) {
        let rank = (2 * below + group.len() - 1) as f64 / 2.0 + 1.0;
        rank_sum += rank * group.iter().filter(|p| p.1).count() as f64;
        below += group.len();
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The (score, label) pairs ascending by score (`total_cmp`; ties, runs of `==` scores with
/// each NaN alone, in any order): one sort
/// of contiguous pairs, which on 250K scores cost a third of sorting indices by the scores
/// they point at.
fn by_score(scores: &[f64], labels: &[bool]) -> Vec<(f64, bool)> {
    let mut v: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    v.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Cumulative `(threshold, true positives, false positives)` at each distinct score, highest first.
fn sweep(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64, f64)> {
    let (mut tp, mut fp) = (0.0, 0.0);
    by_score(scores, labels)
        .chunk_by(|a, b| a.0 == b.0)
        .rev()
        .map(|group| {
            let positive = group.iter().filter(|p| p.1).count() as f64;
            tp += positive;
            fp += group.len() as f64 - positive;
            (group[0].0, tp, fp)
        })
        .collect()
}

/// Points of the precision-recall curve at each distinct threshold, highest first:
/// `(threshold, precision, recall)`.
fn pr_points(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64, f64)> {
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    sweep(scores, labels)
        .into_iter()
        .map(|(t, tp, fp)| (t, tp / (tp + fp), if pos > 0.0 { tp / pos } else { 0.0 }))
        .collect()
}

/// Precision-recall curve, one point per distinct threshold from the highest:
/// `(recall, precision)`.
pub fn pr_curve(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    pr_points(scores, labels)
        .into_iter()
        .map(|(_, p, r)| (r, p))
        .collect()
}

/// ROC curve from (0, 0), one point per distinct threshold from the highest: `(fpr, tpr)`.
/// Empty without both classes.
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Vec::new();
    }
    std::iter::once((0.0, 0.0))
        .chain(
            sweep(scores, labels)
                .into_iter()
                .map(|(_, tp, fp)| (fp / neg, tp / pos)),
        )
        .collect()
}

/// Average precision (area under the step PR curve, as scikit-learn). `None` without positives.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if !labels.iter().any(|&l| l) {
        return None;
    }
    let mut prev_r = 0.0;
    let mut ap = 0.0;
    for (_, p, r) in pr_points(scores, labels) {
        ap += (r - prev_r) * p;
        prev_r = r;
    }
    Some(ap)
}

/// Best F1 over thresholds: `(f1, threshold, precision, recall)`.
pub fn best_f1(scores: &[f64], labels: &[bool]) -> Option<(f64, f64, f64, f64)> {
    if !labels.iter().any(|&l| l) {
        return None;
    }
    pr_points(scores, labels)
        .into_iter()
        .map(|(t, p, r)| {
            (
                if p + r > 0.0 {
                    2.0 * p * r / (p + r)
                } else {
                    0.0
                },
                t,
                p,
                r,
            )
        })
        .fold(None, |best: Option<(f64, f64, f64, f64)>, x| match best {
            Some(b) if b.0 >= x.0 => Some(b),
            _ => Some(x),
        })
}

/// The highest recall at a threshold whose precision is at least `min_precision` (0 if none
/// is); `None` without positives.
pub fn recall_at_precision(scores: &[f64], labels: &[bool], min_precision: f64) -> Option<f64> {
    if !labels.iter().any(|&l| l) {
        return None;
    }
    Some(
        pr_points(scores, labels)
            .into_iter()
            .filter(|&(_, p, _)| p >= min_precision)
            .map(|(_, _, r)| r)
            .fold(0.0, f64::max),
    )
}

/// NDCG@k of one query with graded relevance, ordered by descending score (ties by index).
pub fn ndcg_at(scores: &[f64], relevance: &[f64], k: usize) -> Option<f64> {
    let dcg = |order: &[usize]| -> f64 {
        order
            .iter()
            .take(k)
            .enumerate()
            .map(|(i, &j)| (2f64.powf(relevance[j]) - 1.0) / ((i + 2) as f64).log2())
            .sum()
    };
    let mut by_score: Vec<usize> = (0..scores.len()).collect();
    by_score.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut ideal: Vec<usize> = (0..scores.len()).collect();
    ideal.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]));
    let best = dcg(&ideal);
    (best > 0.0).then(|| dcg(&by_score) / best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties_and_give_each_nan_its_own_in_position_order() {
        let x = [f64::NAN, 1.0, f64::NAN, 1.0, -0.0, 0.0];
        assert_eq!(average_ranks(&x), [5.0, 3.5, 6.0, 3.5, 1.5, 1.5]);
        assert!(average_ranks(&[]).is_empty());
    }

    #[test]
    fn std_is_sample_std() {
        assert_eq!(mean_std(&[1.0, 2.0, 3.0]), Some((2.0, 1.0)));
        assert_eq!(mean_std(&[4.0]), Some((4.0, 0.0)));
        assert_eq!(mean_std(&[]), None);
    }

    #[test]
    fn auc_with_ties() {
        // sklearn.metrics.roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) == 0.75
        assert_eq!(
            auc_roc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        // a tie between a positive and a negative counts one half
        assert_eq!(auc_roc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auc_roc(&[0.5], &[true]), None);
    }

    #[test]
    fn average_precision_like_sklearn() {
        // sklearn.metrics.average_precision_score([0,0,1,1],[0.1,0.4,0.35,0.8]) == 0.8333…
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((ap - 0.833_333_333_333_333_4).abs() < 1e-12);
        // all tied: precision = prevalence
        assert_eq!(
            average_precision(&[0.2, 0.2, 0.2, 0.2], &[true, false, false, false]),
            Some(0.25)
        );
    }

    #[test]
    fn best_f1_threshold() {
        let (f1, t, p, r) = best_f1(&[0.9, 0.8, 0.3, 0.1], &[true, true, false, false]).unwrap();
        assert_eq!((f1, t, p, r), (1.0, 0.8, 1.0, 1.0));
    }

    #[test]
    fn roc_curve_steps() {
        let roc = roc_curve(&[0.9, 0.8, 0.8, 0.1], &[true, true, false, false]);
        assert_eq!(roc, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        assert!(roc_curve(&[0.5], &[true]).is_empty());
    }

    #[test]
    fn ndcg_perfect_and_reversed() {
        assert_eq!(ndcg_at(&[3.0, 2.0, 1.0], &[2.0, 1.0, 0.0], 10), Some(1.0));
        let n = ndcg_at(&[1.0, 2.0, 3.0], &[2.0, 1.0, 0.0], 10).unwrap();
        assert!(n < 1.0 && n > 0.0);
    }

    #[test]
    fn recall_at_a_precision_floor() {
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let labels = [true, false, true, false, false, true];
        // Cuts: 1/1, 1/2, 2/3, 2/4, 2/5, 3/6 precision; recall 1/3, 1/3, 2/3, 2/3, 2/3, 1.
        assert_eq!(recall_at_precision(&scores, &labels, 0.5), Some(1.0));
        assert_eq!(recall_at_precision(&scores, &labels, 0.6), Some(2.0 / 3.0));
        assert_eq!(recall_at_precision(&scores, &labels, 0.9), Some(1.0 / 3.0));
        assert_eq!(
            recall_at_precision(&[0.9, 0.1], &[false, true], 0.6),
            Some(0.0)
        );
        assert_eq!(recall_at_precision(&[0.9], &[false], 0.5), None);
    }
}
