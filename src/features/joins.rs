//! Features joined on the alert's address: its history over earlier dates, and its row of
//! `features.parquet`.

use super::{f64_col, get_f, str_col, Columns, Day, ADDRESS_FEATURES, HISTORY_FEATURES};
use anyhow::Result;
use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use rustc_hash::FxHashMap as HashMap;

/// The address history (absent = no history = 0).
pub(super) fn history(day: &Day, history: &RecordBatch, out: &mut Columns) -> Result<()> {
    let haddr = str_col(history, "address")?;
    let hrow: HashMap<&str, usize> = (0..haddr.len()).map(|r| (haddr.value(r), r)).collect();
    let rows: Vec<Option<usize>> = (0..day.n)
        .map(|i| hrow.get(day.addr.value(i)).copied())
        .collect();
    for name in HISTORY_FEATURES {
        let c = f64_col(history, name)?;
        out.push(
            *name,
            rows.iter().map(|r| r.map_or(0.0, |r| c.value(r))).collect(),
        );
    }
    Ok(())
}

/// The address features, `af_` + the column name (first row per address wins; absent = NaN).
pub(super) fn address(day: &Day, feats: &RecordBatch, out: &mut Columns) -> Result<()> {
    let faddr = str_col(feats, "address")?;
    let mut frow: HashMap<&str, usize> =
        HashMap::with_capacity_and_hasher(faddr.len(), Default::default());
    for r in 0..faddr.len() {
        if let Some(a) = faddr.is_valid(r).then(|| faddr.value(r)) {
            frow.entry(a).or_insert(r);
        }
    }
    let rows: Vec<Option<usize>> = (0..day.n)
        .map(|i| frow.get(day.addr.value(i)).copied())
        .collect();
    for name in ADDRESS_FEATURES {
        let c = f64_col(feats, name)?;
        out.push(
            format!("af_{name}"),
            rows.iter()
                .map(|r| r.map_or(f64::NAN, |r| get_f(&c, r)))
                .collect(),
        );
    }
    Ok(())
}
