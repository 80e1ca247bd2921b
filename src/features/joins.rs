//! Features joined on the alert's address: its history over earlier dates, and its row of
//! `features.parquet`.

use super::{
    f64_col, get_f, str_col, Columns, Day, ADDRESS_FEATURES, FLOW_HISTORY_FEATURES,
    HISTORY_FEATURES,
};
use anyhow::Result;
use arrow::array::{Array, ArrayRef, Float64Array, StringArray};
use arrow::record_batch::RecordBatch;

/// The address history (absent = no history = 0); the flow-history columns are `missing`
/// (NaN for every alert) when given, as the run did not compute them.
pub(super) fn history(
    day: &Day,
    history: &RecordBatch,
    missing: Option<&ArrayRef>,
    out: &mut Columns,
) -> Result<()> {
    let join = Join::new(day, &str_col(history, "address")?);
    let mut dense = Vec::new();
    for name in HISTORY_FEATURES {
        if let Some(nan) = missing.filter(|_| FLOW_HISTORY_FEATURES.contains(name)) {
            out.push_array(*name, nan.clone());
            continue;
        }
        out.push(
            *name,
            join.gather(&f64_col(history, name)?, 0.0, &mut dense),
        );
    }
    Ok(())
}

/// The address features, `af_` + the column name (first row per address wins; absent = NaN).
pub(super) fn address(day: &Day, feats: &RecordBatch, out: &mut Columns) -> Result<()> {
    let join = Join::new(day, &str_col(feats, "address")?);
    let mut dense = Vec::new();
    for name in ADDRESS_FEATURES {
        let c = f64_col(feats, name)?;
        out.push(format!("af_{name}"), join.gather(&c, f64::NAN, &mut dense));
    }
    Ok(())
}

/// Each alert's row in a table joined on the address (its first row with the alert's
/// address), as one index per alert; the table's row count stands for "no row" (a string
/// column's i32 offsets keep it below 2^31).
struct Join {
    rows: Vec<u32>,
    table_rows: usize,
}

impl Join {
    fn new(day: &Day, table_addr: &StringArray) -> Self {
        Self {
            rows: day.by_addr.join(table_addr),
            table_rows: table_addr.len(),
        }
    }

    /// Column `c` for every alert: its row's value (null = NaN), `absent` without a row. A
    /// column with nulls is first copied into `dense` with the nulls as NaN. The gather, which
    /// jumps around a table larger than the caches on a big day, is one load per alert with no
    /// branch (an alert without a row loads the last row and takes `absent` instead).
    fn gather(&self, c: &Float64Array, absent: f64, dense: &mut Vec<f64>) -> Vec<f64> {
        let values = if c.null_count() == 0 {
            c.values()
        } else {
            dense.clear();
            dense.extend((0..self.table_rows).map(|r| get_f(c, r)));
            &dense[..]
        };
        let Some(last) = values.len().checked_sub(1) else {
            return vec![absent; self.rows.len()];
        };
        self.rows
            .iter()
            .map(|&r| {
                let v = values[(r as usize).min(last)];
                if r as usize > last {
                    absent
                } else {
                    v
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A table of `address` and the float columns `names`, every column `values[row]`.
    fn table(addr: &[&str], names: &[&str], values: &[Option<f64>]) -> RecordBatch {
        let mut cols: Vec<(&str, ArrayRef)> =
            vec![("address", Arc::new(StringArray::from(addr.to_vec())))];
        for n in names {
            cols.push((n, Arc::new(Float64Array::from(values.to_vec()))));
        }
        RecordBatch::try_from_iter(cols).unwrap()
    }

    #[test]
    fn first_row_wins_nulls_are_nan_and_absent_addresses_get_nan_or_zero() {
        let ids = StringArray::from(vec!["a1", "b1", "a2", "c1"]);
        let addr = StringArray::from(vec!["a", "b", "a", "c"]);
        let typ = StringArray::from(vec!["t"; 4]);
        let day = crate::features::test_day(&ids, &addr, &typ);

        let feats = table(
            &["b", "a", "a"],
            ADDRESS_FEATURES,
            &[None, Some(1.0), Some(2.0)],
        );
        let mut out = Columns::default();
        address(&day, &feats, &mut out).unwrap();
        assert_eq!(out.names.len(), ADDRESS_FEATURES.len());
        for col in out.values() {
            assert_eq!(col[0], 1.0, "the first row of `a` wins");
            assert!(col[1].is_nan(), "a null value is NaN");
            assert_eq!(col[2], 1.0);
            assert!(col[3].is_nan(), "an address without a row is NaN");
        }

        let hist = table(&["c", "a"], HISTORY_FEATURES, &[Some(3.0), Some(4.0)]);
        let mut out = Columns::default();
        history(&day, &hist, None, &mut out).unwrap();
        assert_eq!(out.names, HISTORY_FEATURES);
        for col in out.values() {
            assert_eq!(col, [4.0, 0.0, 4.0, 3.0], "no history is 0");
        }
        // A table without rows: every alert is absent.
        let mut out = Columns::default();
        history(&day, &table(&[], HISTORY_FEATURES, &[]), None, &mut out).unwrap();
        for col in out.values() {
            assert_eq!(col, [0.0; 4]);
        }
        // Flow history not computed: NaN for every alert, with a history row or not.
        let nan: ArrayRef = Arc::new(Float64Array::from(vec![f64::NAN; 4]));
        let mut out = Columns::default();
        history(&day, &hist, Some(&nan), &mut out).unwrap();
        for (col, name) in out.values().zip(HISTORY_FEATURES) {
            let flows = FLOW_HISTORY_FEATURES.contains(name);
            assert_eq!(col.iter().all(|v| v.is_nan()), flows, "{name}");
        }
    }
}
