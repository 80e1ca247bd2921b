//! What the written outputs are checked against: the batch's alert ids, addresses and cluster
//! ids ([`BatchFacts`]), and the structural checks of the rankings and cluster scores.

use super::Check;
use crate::batch::{Table, Tables};
use crate::contract::column;
use crate::features::keys::KeyRows;
use crate::io::ParquetSource;
use crate::layout;
use crate::stages::table;
use crate::validator::{self, AddressGroups};
use anyhow::Result;
use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::{Float64Type, Int32Type};
use arrow::record_batch::RecordBatch;
use rustc_hash::FxHashMap;
use std::path::Path;

/// Column `name` of `b` as strings (nulls if it is missing or holds no strings).
pub(super) fn strings(b: &RecordBatch, name: &str) -> StringArray {
    column(b, name)
        .and_then(|c| c.as_string_opt::<i32>())
        .cloned()
        .unwrap_or_else(|| StringArray::new_null(b.num_rows()))
}

/// Whether `ids` (a null as the empty string) hold the same set of ids as the distinct `want`.
/// One prefetched table of `ids`: on a 10x day a hash set of 500K ids cost ~100 ms.
fn same_ids(ids: &StringArray, want: &StringArray) -> bool {
    let got = KeyRows::new(ids);
    got.len() == want.len() && got.numbers(want).iter().all(Option::is_some)
}

/// Rankings are a permutation of 1..N over the alerts; every cluster has one score (the
/// rankings and cluster scores written in `dir`).
pub(super) fn structure(dir: &Path, facts: &BatchFacts) -> Result<Vec<Check>> {
    let read = |f: &str| {
        ParquetSource::open(&dir.join(f))?.read_all(&["alert_id", "cluster_id", "score", "rank"])
    };
    let (rankings, clusters) = (read(layout::ALERT_RANKINGS)?, read(layout::CLUSTER_SCORES)?);
    let (alert_ids, cluster_ids) = (&facts.alert_ids, &facts.cluster_ids);
    let ranks: Vec<i32> = column(&rankings, "rank")
        .and_then(|c| c.as_primitive_opt::<Int32Type>())
        .map_or_else(Vec::new, |r| r.iter().flatten().collect());
    let perm = ranks.len() == alert_ids.len() && is_permutation(&ranks);
    let all_ranked = same_ids(&strings(&rankings, "alert_id"), alert_ids);
    let all_scored = same_ids(&strings(&clusters, "cluster_id"), cluster_ids);
    let cluster_scores_ok = column(&clusters, "score")
        .and_then(|c| c.as_primitive_opt::<Float64Type>())
        .is_some_and(|s| {
            s.iter()
                .all(|v| v.is_some_and(|v| (0.0..=1.0).contains(&v)))
        });
    Ok(vec![
        Check {
            name: "ranks_permutation".to_string(),
            passed: perm && all_ranked,
            detail: format!("{} ranks for {} alerts", ranks.len(), alert_ids.len()),
        },
        Check {
            name: "clusters_scored".to_string(),
            passed: all_scored && clusters.num_rows() == cluster_ids.len() && cluster_scores_ok,
            detail: format!(
                "{} cluster scores in [0, 1] for {} clusters",
                clusters.num_rows(),
                cluster_ids.len()
            ),
        },
    ])
}

/// Whether `ranks` are 1..=N in some order (N = their number), each once.
fn is_permutation(ranks: &[i32]) -> bool {
    let mut seen = vec![false; ranks.len()];
    ranks.iter().all(|&r| {
        let at = usize::try_from(r).ok().and_then(|r| r.checked_sub(1));
        let Some(s) = at.and_then(|i| seen.get_mut(i)) else {
            return false;
        };
        !std::mem::replace(s, true)
    })
}

/// The batch facts validation needs: alert ids with their addresses, and cluster ids.
pub struct BatchFacts {
    /// Alert ids, in batch order (distinct: decode refuses a repeated id).
    pub alert_ids: StringArray,
    /// Address of each alert.
    pub addresses: StringArray,
    /// Cluster ids.
    pub cluster_ids: StringArray,
}

impl BatchFacts {
    /// From the decoded alerts and clusters among `tables`.
    pub fn from_tables(tables: &Tables) -> Result<Self> {
        let alerts = table(tables, Table::Alerts)?;
        Ok(Self {
            alert_ids: strings(alerts, "alert_id"),
            addresses: strings(alerts, "address"),
            cluster_ids: strings(table(tables, Table::Clusters)?, "cluster_id"),
        })
    }

    /// The addresses of `scores`: by position when they are the batch's alerts in batch order
    /// (`in_batch_order`, [`Submitted::scored_in_order`]), as the pipeline writes them, else
    /// by alert id (the validator joins the scores with the alerts on `alert_id`).
    pub fn addresses_of<'a>(
        &'a self,
        scores: &[(&str, f64)],
        in_batch_order: bool,
    ) -> AddressGroups<'a> {
        if in_batch_order {
            return AddressGroups::in_batch_order(&self.addresses);
        }
        let ids = self.alert_ids.iter().map(Option::unwrap_or_default);
        let addresses = self.addresses.iter().map(Option::unwrap_or_default);
        let by_id: FxHashMap<&str, &str> = ids.zip(addresses).collect();
        AddressGroups::new(scores, |id| by_id.get(id).copied())
    }

    /// How the `submitted` rows' ids and the `scored` ones (the rows with a score) stand to
    /// the batch, from one comparison with the batch's ids: when the rows are the batch's
    /// alerts in batch order (the pipeline's own), whose ids are distinct, nothing is counted
    /// through a set.
    pub fn submitted<'a>(
        &self,
        submitted: impl ExactSizeIterator<Item = &'a str> + Clone,
        scored: &[(&str, f64)],
    ) -> Submitted {
        let batch = self.alert_ids.iter().map(Option::unwrap_or_default);
        let in_order = submitted.clone().eq(batch);
        let all_scored = scored.len() == submitted.len();
        let distinct_rows = if in_order {
            submitted.len()
        } else {
            validator::distinct(submitted)
        };
        let distinct_scored = if in_order {
            scored.len()
        } else if all_scored {
            distinct_rows
        } else {
            validator::distinct(scored.iter().map(|(k, _)| *k))
        };
        Submitted {
            distinct_rows,
            distinct_scored,
            scored_in_order: in_order && all_scored,
        }
    }
}

/// The submitted scores against the batch ([`BatchFacts::submitted`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Submitted {
    /// Distinct alert ids among the submitted rows.
    pub distinct_rows: usize,
    /// Distinct alert ids among the rows with a score.
    pub distinct_scored: usize,
    /// Whether the rows with a score are the batch's alerts in batch order.
    pub scored_in_order: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scored_alerts_get_their_batch_address_in_batch_order_or_not() {
        let facts = BatchFacts {
            alert_ids: StringArray::from(vec!["a", "b", "c"]),
            addresses: StringArray::from(vec![Some("x"), None, Some("x")]),
            cluster_ids: StringArray::from(Vec::<&str>::new()),
        };
        let by_id = |k: &str| match k {
            "a" | "c" => Some("x"),
            "b" => Some(""),
            _ => None,
        };
        // In order (by position, and by id), reordered, one missing, one unknown, repeated.
        for ids in [
            &["a", "b", "c"][..],
            &["c", "a", "b"],
            &["a", "b"],
            &["a", "b", "z"],
            &["a", "a", "b"],
        ] {
            let sc: Vec<(&str, f64)> = ids.iter().map(|k| (*k, 0.5)).collect();
            let in_order = facts.submitted(ids.iter().copied(), &sc).scored_in_order;
            assert_eq!(in_order, ids == ["a", "b", "c"], "{ids:?}");
            for by_position in [in_order, false] {
                let groups = facts.addresses_of(&sc, by_position);
                for (i, k) in ids.iter().enumerate() {
                    assert_eq!(groups.address(i), by_id(k), "{ids:?}: {k}");
                }
            }
        }
    }

    #[test]
    fn distinct_ids_are_counted_without_a_set_only_in_batch_order() {
        let facts = BatchFacts {
            alert_ids: StringArray::from(vec!["a", "b", "c"]),
            addresses: StringArray::from(vec!["x", "y", "z"]),
            cluster_ids: StringArray::from(Vec::<&str>::new()),
        };
        let scored = |ids: &[&'static str]| -> Vec<(&'static str, f64)> {
            ids.iter().map(|k| (*k, 0.5)).collect()
        };
        // In batch order; one row without a score; reordered with a repeat; unknown ids.
        for (rows, with_score, want) in [
            (&["a", "b", "c"][..], &["a", "b", "c"][..], (3, 3)),
            (&["a", "b", "c"], &["a", "c"], (3, 2)),
            (&["c", "a", "a"], &["c", "a", "a"], (2, 2)),
            (&["a", "b", "b", "z"], &["b", "b"], (3, 1)),
            (&[], &[], (0, 0)),
        ] {
            let got = facts.submitted(rows.iter().copied(), &scored(with_score));
            let got = (got.distinct_rows, got.distinct_scored);
            assert_eq!(got, want, "{rows:?} / {with_score:?}");
        }
    }

    #[test]
    fn ranks_are_a_permutation_of_one_to_n() {
        assert!(is_permutation(&[3, 1, 2]));
        assert!(is_permutation(&[]));
        for bad in [
            &[1, 1, 3][..],
            &[0, 1, 2],
            &[1, 2, 4],
            &[-1, 1, 2],
            &[i32::MIN, 1, 2],
        ] {
            assert!(!is_permutation(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_same_ids_are_the_same_set() {
        let want = StringArray::from(vec!["a", "b", "c"]);
        let same = |ids: Vec<Option<&str>>| same_ids(&StringArray::from(ids), &want);
        assert!(same(vec![Some("c"), Some("a"), Some("b")]));
        assert!(same(vec![Some("a"), Some("b"), Some("c"), Some("a")]));
        assert!(!same(vec![Some("a"), Some("b")]));
        assert!(!same(vec![Some("a"), Some("b"), Some("c"), Some("z")]));
        assert!(!same(vec![Some("a"), Some("b"), None]));
    }
}
