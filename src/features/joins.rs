//! Features joined on the alert's address: its history over earlier dates, and its row of
//! `features.parquet` (which decode joins as it reads the file).

use super::{
    f64_col, get_f, str_col, Columns, Day, ADDRESS_FEATURES, FLOW_HISTORY_FEATURES,
    HISTORY_FEATURES,
};
use anyhow::{anyhow, bail, Result};
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

/// The address features, `af_` + the column name: decode's columns, which hold each alert's
/// values already ([`Table::Features`](crate::batch::Table::Features)), handed on unchanged.
pub(super) fn address(day: &Day, feats: &RecordBatch, out: &mut Columns) -> Result<()> {
    if feats.num_rows() != day.n {
        bail!(
            "the address features have {} rows for {} alerts (decode writes one per alert)",
            feats.num_rows(),
            day.n
        );
    }
    for name in ADDRESS_FEATURES {
        let c = feats
            .column_by_name(name)
            .ok_or_else(|| anyhow!("the address features lack the column `{name}`"))?;
        out.push_array(format!("af_{name}"), c.clone());
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
    fn history_absent_is_zero_and_address_features_are_handed_on() {
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
        let err = address(&day, &feats, &mut out).unwrap_err().to_string();
        assert!(err.contains("3 rows for 4 alerts"), "{err}");
        let feats = table(&["", "", "", ""], &ADDRESS_FEATURES[1..], &[Some(1.0); 4]);
        let err = address(&day, &feats, &mut out).unwrap_err().to_string();
        assert!(err.contains(ADDRESS_FEATURES[0]), "{err}");
        let feats = table(
            &["", "", "", ""],
            ADDRESS_FEATURES,
            &[Some(1.0), None, None, None],
        );
        let mut out = Columns::default();
        address(&day, &feats, &mut out).unwrap();
        assert_eq!(out.names.len(), ADDRESS_FEATURES.len());
        assert!(out.names[0].starts_with("af_"));
        assert!(
            Arc::ptr_eq(&out.cols[0], feats.column(1)),
            "handed on, not copied"
        );

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
