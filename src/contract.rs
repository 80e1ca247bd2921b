//! The data contract: tolerant, checked access to upstream columns.
//!
//! Upstream files are written by pandas, so the same logical column arrives as any integer
//! width, float, `decimal128(p, 18)` or boolean; strings as utf8, large utf8, views or
//! dictionaries; dates as date32, date64, timestamps or `YYYY-MM-DD` strings. These helpers
//! normalise each to one type, or fail with the file, the column and what was expected.

use anyhow::{anyhow, bail, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, ListArray, StringArray,
    StringViewArray,
};
use arrow::compute::{cast, cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Date32Type, Date64Type, Field};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use std::sync::Arc;

/// The column `name` of `batch`, or `None` when the file does not have it.
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch
        .schema_ref()
        .index_of(name)
        .ok()
        .map(|i| batch.column(i))
}

/// The column `name`, which must exist.
pub fn required<'a>(batch: &'a RecordBatch, file: &str, name: &str) -> Result<&'a ArrayRef> {
    column(batch, name).ok_or_else(|| {
        let present: Vec<_> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        anyhow!(
            "{file}: required column `{name}` is missing (columns present: {})",
            present.join(", ")
        )
    })
}

fn is_numeric(t: &DataType) -> bool {
    t.is_integer()
        || t.is_floating()
        || matches!(
            t,
            DataType::Decimal128(..)
                | DataType::Decimal256(..)
                | DataType::Boolean
                | DataType::Null
        )
}

/// A numeric column (any int width, float, decimal, bool) as f64; nulls stay null.
pub fn to_f64(a: &ArrayRef, file: &str, name: &str) -> Result<Float64Array> {
    check_numeric(a, file, name)?;
    let c = cast(a, &DataType::Float64).map_err(|e| anyhow!("{file}: column `{name}`: {e}"))?;
    Ok(c.as_primitive().clone())
}

/// Fails unless `a` is numeric (possibly dictionary-encoded).
fn check_numeric(a: &ArrayRef, file: &str, name: &str) -> Result<()> {
    let t = a.data_type();
    let t = match t {
        DataType::Dictionary(_, v) => v.as_ref(),
        t => t,
    };
    if !is_numeric(t) {
        bail!(
            "{file}: column `{name}` has type {}, expected a number (integer, float or decimal)",
            a.data_type()
        );
    }
    Ok(())
}

/// The scale of [`to_usd_units`]: upstream's USD amounts are `decimal128(p, 18)`.
pub const USD_SCALE: i8 = 18;

/// A numeric column as exact `decimal128(38, 18)`, i.e. integers in units of 10⁻¹⁸, so that sums
/// are exact and independent of their order. Decimals are rescaled exactly, integers multiplied,
/// floats rounded to the nearest unit; a value that does not fit (or NaN, ±inf) becomes null.
pub fn to_usd_units(a: &ArrayRef, file: &str, name: &str) -> Result<Decimal128Array> {
    check_numeric(a, file, name)?;
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let c = cast_with_options(a, &DataType::Decimal128(38, USD_SCALE), &options)
        .map_err(|e| anyhow!("{file}: column `{name}`: {e}"))?;
    Ok(c.as_primitive().clone())
}

/// A string column (utf8, large utf8, view or dictionary) as utf8.
pub fn to_str(a: &ArrayRef, file: &str, name: &str) -> Result<StringArray> {
    let c = cast_str(a, file, name, &DataType::Utf8)?;
    Ok(c.as_string::<i32>().clone())
}

/// A string column as `Utf8View` (shared, not copied, when it is one already).
pub fn to_str_view(a: &ArrayRef, file: &str, name: &str) -> Result<StringViewArray> {
    let c = cast_str(a, file, name, &DataType::Utf8View)?;
    Ok(c.as_string_view().clone())
}

/// A string column cast to `to`; any other type is an error naming the file and column.
fn cast_str(a: &ArrayRef, file: &str, name: &str, to: &DataType) -> Result<ArrayRef> {
    let ok = match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => true,
        DataType::Dictionary(_, v) => matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8),
        _ => false,
    };
    if !ok {
        bail!(
            "{file}: column `{name}` has type {}, expected a string",
            a.data_type()
        );
    }
    cast(a, to).map_err(|e| anyhow!("{file}: column `{name}`: {e}"))
}

/// A list-of-strings column as `List<Utf8>`.
pub fn to_str_list(a: &ArrayRef, file: &str, name: &str) -> Result<ListArray> {
    let item_ok = |f: &Arc<Field>| {
        matches!(
            f.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
        )
    };
    let ok = match a.data_type() {
        DataType::List(f) | DataType::LargeList(f) => item_ok(f),
        DataType::Null => true,
        _ => false,
    };
    if !ok {
        bail!(
            "{file}: column `{name}` has type {}, expected a list of strings",
            a.data_type()
        );
    }
    let target = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    let c = cast(a, &target).map_err(|e| anyhow!("{file}: column `{name}`: {e}"))?;
    Ok(c.as_list::<i32>().clone())
}

/// Row `i` of a date column (date32, date64, timestamp or `YYYY-MM-DD` string).
pub struct DateColumn {
    values: Vec<Option<NaiveDate>>,
}

impl DateColumn {
    /// Reads a date column, checking its type.
    pub fn new(a: &ArrayRef, file: &str, name: &str) -> Result<Self> {
        let values = match a.data_type() {
            DataType::Date32 => a.as_primitive::<Date32Type>().iter().map(|v| v.and_then(date32)).collect(),
            DataType::Date64 => a
                .as_primitive::<Date64Type>()
                .iter()
                .map(|v| v.and_then(|ms| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.date_naive())))
                .collect(),
            DataType::Timestamp(..) => {
                let c = cast(a, &DataType::Date32).map_err(|e| anyhow!("{file}: column `{name}`: {e}"))?;
                c.as_primitive::<Date32Type>().iter().map(|v| v.and_then(date32)).collect()
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
                let s = to_str(a, file, name)?;
                let mut out = Vec::with_capacity(s.len());
                for (i, v) in s.iter().enumerate() {
                    out.push(match v {
                        None => None,
                        Some(v) => Some(NaiveDate::parse_from_str(v.get(..10).unwrap_or(v), "%Y-%m-%d").map_err(|_| {
                            anyhow!("{file}: column `{name}` row {i}: {v:?} is not a YYYY-MM-DD date")
                        })?),
                    });
                }
                out
            }
            t => bail!("{file}: column `{name}` has type {t}, expected a date (date32 or YYYY-MM-DD string)"),
        };
        Ok(Self { values })
    }

    /// Fails unless every non-null value equals `expected`.
    pub fn check_all(&self, expected: NaiveDate, file: &str, name: &str) -> Result<()> {
        if let Some((i, d)) = self
            .values
            .iter()
            .enumerate()
            .find_map(|(i, v)| v.filter(|d| *d != expected).map(|d| (i, d)))
        {
            bail!("{file}: column `{name}` holds {d} in row {i}, but the batch directory is for {expected}");
        }
        Ok(())
    }
}

/// Fails unless every non-null value of a date column (any accepted type) equals `expected`.
/// Date32 and string columns are compared without parsing each row; a mismatch is reported
/// as [`DateColumn::check_all`] does.
pub fn check_dates(a: &ArrayRef, expected: NaiveDate, file: &str, name: &str) -> Result<()> {
    let slow = || DateColumn::new(a, file, name)?.check_all(expected, file, name);
    match a.data_type() {
        DataType::Date32 => {
            let want =
                (expected - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32;
            if a.as_primitive::<Date32Type>()
                .iter()
                .all(|v| v.is_none_or(|d| d == want))
            {
                return Ok(());
            }
            slow()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            let want = expected.format("%Y-%m-%d").to_string();
            let s = to_str(a, file, name)?;
            if s.iter()
                .all(|v| v.is_none_or(|v| v.get(..10) == Some(want.as_str())))
            {
                return Ok(());
            }
            slow()
        }
        _ => slow(),
    }
}

fn date32(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(days as i64))
}

/// Fails if a column has a null or repeated value (e.g. duplicate alert ids).
pub fn check_unique(a: &StringArray, file: &str, name: &str) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(a.len());
    for (i, v) in a.iter().enumerate() {
        let Some(v) = v else {
            bail!("{file}: column `{name}` is null in row {i}")
        };
        if !seen.insert(v) {
            bail!("{file}: column `{name}` repeats the value {v:?} (row {i}); ids must be unique");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Int16Array, UInt32Array};

    #[test]
    fn usd_units_are_exact_for_decimals_and_rounded_for_floats() {
        let units = |a: ArrayRef| -> Vec<Option<i128>> {
            to_usd_units(&a, "f", "v").unwrap().iter().collect()
        };
        // decimal(25, 18) and decimal(10, 2) rescale exactly, beyond f64's 53 bits.
        let exact = 123_456_789_012_345_678_901i128;
        let a: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(exact), None])
                .with_precision_and_scale(25, 18)
                .unwrap(),
        );
        assert_eq!(units(a), [Some(exact), None]);
        let a: ArrayRef = Arc::new(
            Decimal128Array::from(vec![12_345i128])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        assert_eq!(units(a), [Some(123_450_000_000_000_000_000)]);
        let a: ArrayRef = Arc::new(Int16Array::from(vec![-3]));
        assert_eq!(units(a), [Some(-3_000_000_000_000_000_000)]);
        let a: ArrayRef = Arc::new(Float64Array::from(vec![0.1, f64::NAN, f64::INFINITY]));
        assert_eq!(units(a), [Some(100_000_000_000_000_000), None, None]);
        let a: ArrayRef = Arc::new(StringArray::from(vec!["1"]));
        let e = to_usd_units(&a, "alerts.parquet", "volume_usd").unwrap_err();
        assert!(e.to_string().contains("expected a number"), "{e}");
    }

    #[test]
    fn numbers_of_any_width_and_decimals() {
        let name = "x";
        let a: ArrayRef = Arc::new(Int16Array::from(vec![Some(3), None]));
        assert_eq!(to_f64(&a, "f", name).unwrap().value(0), 3.0);
        let a: ArrayRef = Arc::new(UInt32Array::from(vec![7]));
        assert_eq!(to_f64(&a, "f", name).unwrap().value(0), 7.0);
        let a: ArrayRef = Arc::new(
            Decimal128Array::from(vec![1_500_000_000_000_000_000i128])
                .with_precision_and_scale(24, 18)
                .unwrap(),
        );
        assert_eq!(to_f64(&a, "f", name).unwrap().value(0), 1.5);
        let a: ArrayRef = Arc::new(StringArray::from(vec!["1"]));
        let e = to_f64(&a, "alerts.parquet", "volume_usd")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("alerts.parquet")
                && e.contains("volume_usd")
                && e.contains("expected a number"),
            "{e}"
        );
    }

    #[test]
    fn dates_as_strings_or_date32() {
        let d = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
        let a: ArrayRef = Arc::new(StringArray::from(vec!["2025-10-01"]));
        DateColumn::new(&a, "f", "processing_date")
            .unwrap()
            .check_all(d, "f", "processing_date")
            .unwrap();
        let a: ArrayRef = Arc::new(arrow::array::Date32Array::from(vec![20363]));
        let e = DateColumn::new(&a, "f", "processing_date")
            .unwrap()
            .check_all(d, "f", "processing_date");
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("batch directory is for 2025-10-01"));
    }

    #[test]
    fn fast_date_check_agrees_with_the_parser() {
        let d = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
        let ok: ArrayRef = Arc::new(arrow::array::Date32Array::from(vec![Some(20362), None]));
        check_dates(&ok, d, "f", "processing_date").unwrap();
        let bad: ArrayRef = Arc::new(arrow::array::Date32Array::from(vec![20362, 20363]));
        let e = check_dates(&bad, d, "f", "processing_date")
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds 2025-10-02 in row 1"), "{e}");
        let ok: ArrayRef = Arc::new(StringArray::from(vec!["2025-10-01", "2025-10-01T00:00:00"]));
        check_dates(&ok, d, "f", "processing_date").unwrap();
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["2025-10-01", "01/10/2025"]));
        let e = check_dates(&bad, d, "f", "processing_date")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("row 1") && e.contains("not a YYYY-MM-DD date"),
            "{e}"
        );
    }

    #[test]
    fn duplicates_are_named() {
        let a = StringArray::from(vec!["a", "b", "a"]);
        let e = check_unique(&a, "alerts.parquet", "alert_id")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"a\"") && e.contains("row 2"), "{e}");
    }
}
