//! `features.parquet`, joined to the alerts as it streams: each alert gets the address
//! features of its address's first row in the file, in one column per feature with a row per
//! alert, which feature join hands on as matrix columns unchanged. (Handed on as the kept rows
//! and gathered per alert in feature join, the 10× day held the 386K kept rows and 86 fresh
//! 500K-row columns at once.)

use super::{check_date, make_batch};
use crate::contract::{column, required, to_f64, to_str_view};
use crate::features::ADDRESS_FEATURES;
use crate::io::ParquetSource;
use crate::stages::alerted::Alerted;
use anyhow::{bail, Result};
use arrow::array::{ArrayRef, Float64Array, UInt32Array};
use arrow::compute::take;
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use std::path::Path;
use std::sync::Arc;

/// Columns decode reads from features.parquet: the key columns and every address feature.
pub fn feature_columns() -> Vec<&'static str> {
    let mut cols = vec!["address", "processing_date"];
    cols.extend(ADDRESS_FEATURES);
    cols
}

/// Streams `features.parquet` into one column per address feature with a row per alert of
/// `alerted` (`n_alerts` alerts): the values of the first row with the alert's address (a
/// null value, an absent column or an address without a row is NaN). Returns them and the
/// file's row count.
pub(super) fn read_features(
    path: &Path,
    date: NaiveDate,
    alerted: &Alerted,
    n_alerts: usize,
    batch_size: usize,
) -> Result<(RecordBatch, usize)> {
    let file = path.display().to_string();
    let src = ParquetSource::open_with_views(path, &["address"])?;
    let total = src.num_rows();
    let empty = src.schema().fields().is_empty();
    // The values of each address's first row, in file order, and the first alert of each;
    // room for every alerted address from the start (grown by doubling, the 10× day's 386K
    // rows took 524K rows' room, 96 MB more, and were copied at each step).
    let room = alerted.addresses();
    let mut kept: Vec<Vec<f64>> = (ADDRESS_FEATURES.iter())
        .map(|_| Vec::with_capacity(room))
        .collect();
    let mut firsts: Vec<u32> = Vec::new();
    // The first alert of each address whose row has been read (later rows are skipped).
    let mut seen = vec![false; n_alerts];
    if !empty {
        if src.schema().field_with_name("address").is_err() {
            bail!("{file}: required column `address` is missing");
        }
        for b in src.read(&feature_columns(), batch_size)? {
            let b = b?;
            check_date(&b, &file, date)?;
            let a = to_str_view(required(&b, &file, "address")?, &file, "address")?;
            let mut rows = Vec::<u32>::new();
            for (r, v) in a.iter().enumerate() {
                let Some(first) = v.and_then(|v| alerted.first_row(v)) else {
                    continue;
                };
                if !std::mem::replace(&mut seen[first as usize], true) {
                    rows.push(r as u32);
                    firsts.push(first as u32);
                }
            }
            if rows.is_empty() {
                continue;
            }
            // Only those rows are converted (a file's columns may be integers or decimals).
            let rows = UInt32Array::from(rows);
            for (k, name) in ADDRESS_FEATURES.iter().enumerate() {
                match column(&b, name) {
                    Some(c) => kept[k].extend(
                        to_f64(&take(c, &rows, None)?, &file, name)?
                            .iter()
                            .map(|v| v.unwrap_or(f64::NAN)),
                    ),
                    None => kept[k].extend(std::iter::repeat_n(f64::NAN, rows.len())),
                }
            }
        }
    }
    // Each column is put in alert order once read whole, one at a time: its writes, to
    // scattered rows, stay within one column's memory (written batch by batch into every
    // column at once, they missed the caches; 1× day's decode +17%). The later alerts of an
    // address take its first alert's values.
    let repeats = alerted.repeats();
    let cols = kept.into_iter().map(|values| -> ArrayRef {
        let mut col = vec![f64::NAN; n_alerts];
        for (&first, v) in firsts.iter().zip(values) {
            col[first as usize] = v;
        }
        for &(row, first) in repeats {
            col[row as usize] = col[first as usize];
        }
        Arc::new(Float64Array::from(col))
    });
    Ok((
        make_batch(ADDRESS_FEATURES.iter().copied().zip(cols).collect())?,
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, StringArray};

    fn write(path: &Path, cols: Vec<(&str, ArrayRef)>) {
        crate::io::write_parquet(path, &RecordBatch::try_from_iter(cols).unwrap()).unwrap();
    }

    #[test]
    fn each_alert_gets_its_address_first_row_nulls_and_absent_addresses_nan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("features.parquet");
        let (f0, f1) = (ADDRESS_FEATURES[0], ADDRESS_FEATURES[1]);
        // Rows: x (no alert), b, a, a again (skipped), null address, c with a null value.
        write(
            &path,
            vec![
                (
                    "address",
                    Arc::new(StringArray::from(vec![
                        Some("x"),
                        Some("b"),
                        Some("a"),
                        Some("a"),
                        None,
                        Some("c"),
                    ])),
                ),
                (
                    f0,
                    Arc::new(Float64Array::from(vec![
                        Some(9.0),
                        Some(2.0),
                        Some(1.0),
                        Some(5.0),
                        Some(7.0),
                        None,
                    ])),
                ),
                (
                    f1,
                    Arc::new(Float64Array::from(vec![9.0, 20.0, 10.0, 50.0, 70.0, 30.0])),
                ),
            ],
        );
        // Alerts: a, b, a, d (no row), null address, c.
        let addrs = [Some("a"), Some("b"), Some("a"), Some("d"), None, Some("c")];
        let alerted = Alerted::new(
            addrs
                .iter()
                .enumerate()
                .filter_map(|(r, a)| Some((r, (*a)?))),
        );
        let date = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
        for batch_size in [1, 2, 100] {
            let (b, total) = read_features(&path, date, &alerted, addrs.len(), batch_size).unwrap();
            assert_eq!(
                (b.num_rows(), b.num_columns(), total),
                (6, ADDRESS_FEATURES.len(), 6)
            );
            let col = |name: &str| -> Vec<f64> {
                let c = b.column_by_name(name).unwrap();
                let c = c.as_any().downcast_ref::<Float64Array>().unwrap();
                assert_eq!(c.null_count(), 0);
                c.values().to_vec()
            };
            let same = |got: Vec<f64>, want: [f64; 6]| {
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{got:?} against {want:?}, batches of {batch_size}"
                );
            };
            let nan = f64::NAN;
            same(col(f0), [1.0, 2.0, 1.0, nan, nan, nan]);
            same(col(f1), [10.0, 20.0, 10.0, nan, nan, 30.0]);
            same(col(ADDRESS_FEATURES[2]), [nan; 6]);
        }
        // A file with features but no addresses is refused, naming the file and the column.
        write(&path, vec![(f0, Arc::new(Float64Array::from(vec![1.0])))]);
        let err = read_features(&path, date, &alerted, addrs.len(), 100).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("features.parquet"), "{err}");
        assert!(
            err.contains("required column `address` is missing"),
            "{err}"
        );
    }
}
