//! Features of the clusters an alert belongs to, and the cluster matrix the cluster scorer
//! reads (each cluster's own fields, then the mean and max of every alert feature over its
//! members).

use super::keys::KeyRows;
use super::{
    alert_feature_names, f64_col, get_f, list_col, list_values, severity_code, str_col, Columns,
    Day,
};
use crate::address_table::{prefetch, AHEAD};
use anyhow::Result;
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// Whether the alert is in a cluster, in how many, and the largest of those clusters' alerts,
/// volume and addresses. Members: by `related_alert_ids`, else `primary_alert_id`, else
/// address (`Members::of`). The (member row, cluster) pairs are taken in row order, so the
/// alerts' columns are written front to back: on a 10× day, updating them cluster by cluster
/// at the members' rows (four 4 MB columns) waited on memory at every member.
pub(super) fn membership(day: &Day, clusters: &RecordBatch, out: &mut Columns) -> Result<()> {
    let n = day.n;
    let total = f64_col(clusters, "total_alerts")?;
    let cvol = f64_col(clusters, "total_volume_usd")?;
    let members = Members::new(clusters, day.ids, || &day.by_addr)?;
    let m = clusters.num_rows();
    let own: Vec<[f64; 3]> = (0..m)
        .map(|c| {
            let n_addr = list_values(&members.inv, c).count() as f64;
            [get_f(&total, c), get_f(&cvol, c), n_addr]
        })
        .collect();
    let pairs = member_pairs(&members.all())?;
    let mut c_count = vec![0.0; n];
    let mut c_alerts = vec![f64::NAN; n];
    let mut c_vol = vec![f64::NAN; n];
    let mut c_addrs = vec![f64::NAN; n];
    for &(row, c) in &pairs {
        let (i, [alerts, vol, addrs]) = (row as usize, own[c as usize]);
        c_count[i] += 1.0;
        c_alerts[i] = c_alerts[i].max(alerts);
        c_vol[i] = c_vol[i].max(vol);
        c_addrs[i] = c_addrs[i].max(addrs);
    }
    out.push(
        "in_cluster",
        c_count.iter().map(|&c| (c > 0.0) as u8 as f64).collect(),
    );
    out.push("cluster_count", c_count);
    out.push("cluster_max_alerts", c_alerts);
    out.push("cluster_max_volume_usd", c_vol);
    out.push("cluster_max_addresses", c_addrs);
    Ok(())
}

/// What the clusters' members are found by: the alerts by id, every cluster's related alert
/// ids looked up in one prefetched pass (a million lookups on a 10× day), and the alerts by
/// address, grouped only if a cluster needs them.
struct Members<F> {
    rel: ListArray,
    prim: StringArray,
    inv: ListArray,
    row_of: KeyRows,
    /// The alert row of each value of `rel`'s values (the last alert with that id).
    rel_rows: Vec<Option<usize>>,
    by_addr: F,
}

impl<'a, F: Fn() -> &'a KeyRows> Members<F> {
    fn new(clusters: &RecordBatch, ids: &StringArray, by_addr: F) -> Result<Self> {
        let rel = list_col(clusters, "related_alert_ids")?;
        let row_of = KeyRows::new(ids);
        let rel_rows = row_of
            .numbers(rel.values().as_string::<i32>())
            .into_iter()
            .map(|g| g.and_then(|g| row_of.rows(g).last().copied()))
            .collect();
        Ok(Self {
            prim: str_col(clusters, "primary_alert_id")?,
            inv: list_col(clusters, "addresses_involved")?,
            rel,
            row_of,
            rel_rows,
            by_addr,
        })
    }

    /// Matrix rows of cluster `c`'s member alerts: its `related_alert_ids`, else its
    /// `primary_alert_id`, else the alerts of its `addresses_involved`; ascending, distinct.
    fn of(&self, c: usize) -> Vec<usize> {
        let offsets = self.rel.value_offsets();
        let mut m: Vec<usize> = if self.rel.is_null(c) {
            Vec::new()
        } else {
            self.rel_rows[offsets[c] as usize..offsets[c + 1] as usize]
                .iter()
                .flatten()
                .copied()
                .collect()
        };
        if m.is_empty() && self.prim.is_valid(c) {
            m.extend(self.row_of.last(self.prim.value(c)));
        }
        if m.is_empty() {
            let by_addr = (self.by_addr)();
            for a in list_values(&self.inv, c) {
                m.extend(by_addr.find(a).into_iter().flat_map(|g| by_addr.rows(g)));
            }
        }
        m.sort_unstable();
        m.dedup();
        m
    }

    /// Every cluster's member rows ([`Self::of`]), in cluster order.
    fn all(&self) -> Vec<Vec<usize>> {
        (0..self.rel.len()).map(|c| self.of(c)).collect()
    }
}

/// Cluster-level feature names: the cluster's own fields, then `mean_`/`max_` of each alert feature over its members.
pub fn cluster_feature_names() -> Vec<String> {
    let mut v: Vec<String> = CLUSTER_OWN.iter().map(|s| s.to_string()).collect();
    for f in alert_feature_names() {
        v.push(format!("mean_{f}"));
        v.push(format!("max_{f}"));
    }
    v
}

const CLUSTER_OWN: &[&str] = &[
    "member_count",
    "cluster_total_alerts",
    "cluster_total_volume_usd",
    "cluster_confidence_avg",
    "cluster_severity_max",
    "cluster_type_code",
    "cluster_address_count",
];

/// Matrix rows of each cluster's member alerts: its `related_alert_ids`, else its
/// `primary_alert_id`, else the alerts of its `addresses_involved`; ascending, distinct.
pub fn cluster_memberships(
    clusters: &RecordBatch,
    matrix: &RecordBatch,
) -> Result<Vec<Vec<usize>>> {
    let ids = str_col(matrix, "alert_id")?;
    let addr = str_col(matrix, "address")?;
    let by_addr = std::cell::OnceCell::new();
    let members = Members::new(clusters, &ids, || {
        by_addr.get_or_init(|| KeyRows::new(&addr))
    })?;
    Ok(members.all())
}

/// Builds the cluster matrix (`cluster_id`, then [`cluster_feature_names`]) from the clusters,
/// the alert matrix and each cluster's member rows ([`cluster_memberships`]; ascending: the
/// means add the members' values in that order).
pub fn build_cluster_matrix(
    clusters: &RecordBatch,
    matrix: &RecordBatch,
    members: &[Vec<usize>],
) -> Result<RecordBatch> {
    let feats: Vec<Float64Array> = alert_feature_names()
        .iter()
        .map(|f| f64_col(matrix, f))
        .collect::<Result<_>>()?;
    let cid = str_col(clusters, "cluster_id")?;
    let ctype = str_col(clusters, "cluster_type")?;
    let inv = list_col(clusters, "addresses_involved")?;
    let total = f64_col(clusters, "total_alerts")?;
    let cvol = f64_col(clusters, "total_volume_usd")?;
    let cconf = f64_col(clusters, "confidence_avg")?;
    let csev = str_col(clusters, "severity_max")?;
    let m = clusters.num_rows();
    let mut cols: Vec<Vec<f64>> = vec![Vec::with_capacity(m); CLUSTER_OWN.len()];
    for (c, members) in members.iter().enumerate().take(m) {
        let own = [
            members.len() as f64,
            get_f(&total, c),
            get_f(&cvol, c),
            get_f(&cconf, c),
            if csev.is_null(c) {
                f64::NAN
            } else {
                severity_code(csev.value(c))
            },
            match if ctype.is_null(c) { "" } else { ctype.value(c) } {
                "same_entity" => 1.0,
                "related_network" => 2.0,
                "same_pattern" => 3.0,
                "time_based" => 4.0,
                _ => 0.0,
            },
            list_values(&inv, c).count() as f64,
        ];
        for (k, v) in own.into_iter().enumerate() {
            cols[k].push(v);
        }
    }
    // Feature by feature, each alert column read in row order: every (member row, cluster)
    // pair sorted by row, each value added to its cluster's sum and maximum, kept side by side
    // in one small table. A cluster's members are ascending, so each cluster still adds them in
    // its own order, and the sum (starting at -0.0 and skipping NaNs, as `Iterator::sum` over
    // the kept values) keeps its bits. Gathering the members' values at random rows of a
    // column waited on memory once the column outgrew the core's cache, and branching on NaNs
    // mispredicted (the 10× day's cluster matrix took 14× the 1× time). Each pair's cluster is
    // prefetched AHEAD pairs before its turn: on a 10× day the table (105K clusters) outgrows
    // the core's cache, and the 1× day's did not. The NaNs each cluster skipped are counted
    // in a second pass, only for a column where the first met one (3 of the 129 on the 10×
    // day): at 16 bytes a cluster, the 10× day's sums and maxima (1.7 MB) fit a core's 2 MB
    // cache, which with the counts beside them (2.5 MB) they did not.
    // A feature that is NaN for every alert (the graph features when no model uses them: one
    // array shared by all of them, scanned once) has NaN means and maxima without a pass, all
    // of them one shared array too.
    let pairs = member_pairs(&members[..m])?;
    let mut acc = vec![Acc::EMPTY; m];
    let mut nans = vec![0u32; m];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(cid.clone())];
    arrays.extend(cols.into_iter().map(f64_array));
    let all_nan: ArrayRef = Arc::new(Float64Array::from(vec![f64::NAN; m]));
    let mut scanned: Vec<(*const f64, bool)> = Vec::new();
    for f in &feats {
        let values = f.values();
        let nan = match scanned.iter().find(|s| s.0 == values.as_ptr()) {
            Some(&(_, nan)) => nan,
            None => {
                let nan = values.iter().all(|v| v.to_bits() == f64::NAN.to_bits());
                scanned.push((values.as_ptr(), nan));
                nan
            }
        };
        if nan {
            arrays.extend([all_nan.clone(), all_nan.clone()]);
            continue;
        }
        acc.fill(Acc::EMPTY);
        let some_nan = accumulate(&pairs, values, &mut acc);
        if some_nan {
            count_nans(&pairs, values, &mut nans);
        }
        let mean = |(c, a): (usize, &Acc)| {
            let kept = members[c].len() - nans[c] as usize;
            if kept == 0 {
                f64::NAN
            } else {
                a.sum / kept as f64
            }
        };
        arrays.push(f64_array(acc.iter().enumerate().map(mean).collect()));
        arrays.push(f64_array(acc.iter().map(|a| a.max).collect()));
        if some_nan {
            nans.fill(0);
        }
    }
    let mut fields = vec![Field::new("cluster_id", DataType::Utf8, false)];
    fields.extend(
        cluster_feature_names()
            .iter()
            .map(|n| Field::new(n, DataType::Float64, false)),
    );
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// A column of `values`.
fn f64_array(values: Vec<f64>) -> ArrayRef {
    Arc::new(Float64Array::from(values))
}

/// One cluster's sum and maximum of the non-NaN values of one alert feature.
#[derive(Clone, Copy)]
struct Acc {
    sum: f64,
    max: f64,
}

impl Acc {
    const EMPTY: Acc = Acc {
        sum: -0.0,
        max: f64::NAN,
    };

    /// Adds `v` unless it is NaN, without a branch: adding -0.0 leaves any sum as it was, and
    /// `f64::max` returns the operand that is not NaN.
    fn add(&mut self, v: f64) {
        self.sum += if v.is_nan() { -0.0 } else { v };
        self.max = self.max.max(v);
    }
}

/// Adds each pair's value to its cluster's [`Acc`] (prefetched [`AHEAD`] pairs before).
/// Whether a value was NaN.
fn accumulate(pairs: &[(u32, u32)], values: &[f64], acc: &mut [Acc]) -> bool {
    let mut any = false;
    for (i, &(row, c)) in pairs.iter().enumerate() {
        if let Some(&(_, ahead)) = pairs.get(i + AHEAD) {
            prefetch(&acc[ahead as usize]);
        }
        let v = values[row as usize];
        acc[c as usize].add(v);
        any |= v.is_nan();
    }
    any
}

/// Counts the NaNs among each cluster's values into `nans`.
fn count_nans(pairs: &[(u32, u32)], values: &[f64], nans: &mut [u32]) {
    for &(row, c) in pairs {
        nans[c as usize] += u32::from(values[row as usize].is_nan());
    }
}

/// Every (member row, cluster) pair, sorted by row then cluster.
fn member_pairs(members: &[Vec<usize>]) -> Result<Vec<(u32, u32)>> {
    let mut pairs = Vec::with_capacity(members.iter().map(Vec::len).sum());
    for (c, rows) in members.iter().enumerate() {
        let c = u32::try_from(c)?;
        for &row in rows {
            pairs.push((u32::try_from(row)?, c));
        }
    }
    pairs.sort_unstable();
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::ListBuilder;
    use arrow::array::StringBuilder;

    /// A list-of-strings column of `lists` (`None`: a null list; a `None` item: a null id).
    fn lists(lists: &[Option<Vec<Option<&str>>>]) -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for l in lists {
            match l {
                Some(items) => {
                    for item in items {
                        b.values().append_option(*item);
                    }
                    b.append(true);
                }
                None => b.append(false),
            }
        }
        Arc::new(b.finish())
    }

    #[test]
    fn members_by_related_ids_else_primary_id_else_addresses() {
        // Alerts: a1 (address A), b1 (B), a1 again (A, the last row with id a1 wins), c1 (A).
        let ids = StringArray::from(vec!["a1", "b1", "a1", "c1"]);
        let addr = StringArray::from(vec!["A", "B", "A", "A"]);
        let strs = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
        let clusters = RecordBatch::try_from_iter([
            (
                "related_alert_ids",
                lists(&[
                    Some(vec![Some("c1"), Some("zz"), None, Some("a1"), Some("c1")]),
                    Some(vec![]),
                    None,
                    Some(vec![Some("zz")]),
                    None,
                ]),
            ),
            (
                "primary_alert_id",
                strs(vec![None, Some("b1"), None, None, Some("zz")]),
            ),
            (
                "addresses_involved",
                lists(&[
                    None,
                    Some(vec![Some("A")]),
                    Some(vec![Some("A"), Some("Q"), None]),
                    Some(vec![Some("B")]),
                    None,
                ]),
            ),
        ])
        .unwrap();
        let by_addr = std::cell::OnceCell::new();
        let members = Members::new(&clusters, &ids, || {
            by_addr.get_or_init(|| KeyRows::new(&addr))
        })
        .unwrap();
        let got: Vec<Vec<usize>> = (0..5).map(|c| members.of(c)).collect();
        let want: [&[usize]; 5] = [&[2, 3], &[1], &[0, 2, 3], &[1], &[]];
        assert_eq!(got, want);
    }

    /// Means and maxes over members, checked against a direct computation: NaNs skipped, a
    /// cluster without members or with only NaNs gets NaN (so does every cluster for a feature
    /// NaN for every alert), a member listed twice counts twice, members shared between
    /// clusters count in each; features with NaNs and features without.
    #[test]
    fn cluster_means_and_maxes_skip_nans_over_members_in_order() {
        let names = alert_feature_names();
        let n = 6;
        // The first feature is NaN for every alert; every third has none.
        let value = |f: usize, i: usize| match (f, (f + i) % 4) {
            (0, _) => f64::NAN,
            (_, 0) if f % 3 != 1 => f64::NAN,
            (_, k) => (f * 10 + i) as f64 / (k + 1) as f64,
        };
        let mut cols: Vec<(&str, ArrayRef)> = vec![
            ("alert_id", Arc::new(StringArray::from(vec!["a"; n]))),
            ("address", Arc::new(StringArray::from(vec!["x"; n]))),
        ];
        for (f, name) in names.iter().enumerate() {
            let v: Vec<f64> = (0..n).map(|i| value(f, i)).collect();
            cols.push((name, Arc::new(Float64Array::from(v))));
        }
        let matrix = RecordBatch::try_from_iter(cols).unwrap();
        let members: Vec<Vec<usize>> =
            vec![vec![0, 2, 4], vec![], vec![1, 5, 5], vec![3], vec![2, 3, 5]];
        let m = members.len();
        let mut inv = ListBuilder::new(StringBuilder::new());
        for _ in 0..m {
            inv.values().append_value("x");
            inv.append(true);
        }
        let nums = || Arc::new(Float64Array::from(vec![1.0; m])) as ArrayRef;
        let strs = |s: &str| Arc::new(StringArray::from(vec![s; m])) as ArrayRef;
        let clusters = RecordBatch::try_from_iter(vec![
            ("cluster_id", strs("c")),
            ("cluster_type", strs("same_entity")),
            ("addresses_involved", Arc::new(inv.finish()) as ArrayRef),
            ("total_alerts", nums()),
            ("total_volume_usd", nums()),
            ("confidence_avg", nums()),
            ("severity_max", strs("high")),
        ])
        .unwrap();
        let out = build_cluster_matrix(&clusters, &matrix, &members).unwrap();
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        for (f, name) in names.iter().enumerate() {
            let mean = f64_col(&out, &format!("mean_{name}")).unwrap();
            let max = f64_col(&out, &format!("max_{name}")).unwrap();
            for (c, rows) in members.iter().enumerate() {
                let vs: Vec<f64> = rows
                    .iter()
                    .map(|&i| value(f, i))
                    .filter(|v| !v.is_nan())
                    .collect();
                let want_mean = if vs.is_empty() {
                    f64::NAN
                } else {
                    vs.iter().sum::<f64>() / vs.len() as f64
                };
                let want_max = vs.iter().copied().fold(f64::NAN, f64::max);
                assert!(same(mean.value(c), want_mean), "{name} mean of {c}");
                assert!(same(max.value(c), want_max), "{name} max of {c}");
            }
        }
    }
}
