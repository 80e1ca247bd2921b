//! The labels beside the batches, merged with the files already there: `address_labels`
//! (a fraction of the addresses, more of the alerted ones, with some noise) and
//! `ground_truth` (whether a SAR was filed for an alert).

use super::world::{mix, unit, World};
use super::writer::{Col, Table};
use super::GenerateOptions;
use crate::io::ParquetSource;
use anyhow::Result;
use arrow::array::AsArray;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Which addresses get a label, and how often it is wrong.
pub(super) struct LabelNoise {
    /// Share of the alerted addresses labelled.
    pub(super) alerted: f64,
    /// Share of the other addresses labelled.
    pub(super) other: f64,
    /// Share of illicit addresses labelled low or medium risk.
    pub(super) missed: f64,
    /// Share of licit addresses labelled high or critical risk.
    pub(super) false_alarm: f64,
}

impl LabelNoise {
    /// The classic world's: 30% of the alerted addresses, 1% of the others, 3% wrong.
    pub(super) const CLASSIC: LabelNoise = LabelNoise {
        alerted: 0.3,
        other: 0.01,
        missed: 0.03,
        false_alarm: 0.03,
    };
}

/// Writes `address_labels.parquet` at `path`, keeping the rows of an existing file for
/// addresses not labelled now; returns its row count.
pub(super) fn write_labels(
    opts: &GenerateOptions,
    w: &World,
    alerted: &BTreeSet<u32>,
    noise: &LabelNoise,
    path: &Path,
    threads: usize,
) -> Result<usize> {
    let mut rows: BTreeMap<String, (String, String, f32)> = BTreeMap::new();
    if path.exists() {
        let b = ParquetSource::open(path)?.read_all(&[
            "address",
            "label",
            "risk_level",
            "confidence_score",
        ])?;
        if b.num_columns() == 4 {
            let (a, l, r) = (
                b.column(0).as_string::<i32>(),
                b.column(1).as_string::<i32>(),
                b.column(2).as_string::<i32>(),
            );
            let c = b.column(3).as_primitive::<arrow::datatypes::Float32Type>();
            for i in 0..b.num_rows() {
                rows.insert(
                    a.value(i).into(),
                    (l.value(i).into(), r.value(i).into(), c.value(i)),
                );
            }
        }
    }
    for a in 0..w.len() as u32 {
        let h = mix(opts.seed ^ 0x6c61_6265 ^ mix(a as u64));
        let p = if alerted.contains(&a) {
            noise.alerted
        } else {
            noise.other
        };
        if unit(h) >= p {
            continue;
        }
        let ill = w.illicit[a as usize];
        let flip = unit(mix(h ^ 1)) < if ill { noise.missed } else { noise.false_alarm };
        let bad = ill ^ flip;
        let risk = match (bad, unit(mix(h ^ 2)) < 0.5) {
            (true, true) => "critical",
            (true, false) => "high",
            (false, true) => "medium",
            (false, false) => "low",
        };
        let label = if bad {
            "suspicious"
        } else if w.hub[a as usize] {
            "exchange"
        } else {
            "retail"
        };
        rows.insert(
            w.addr(a).as_ref().to_string(),
            (
                label.into(),
                risk.into(),
                (0.5 + 0.5 * unit(mix(h ^ 3))) as f32,
            ),
        );
    }
    let n = rows.len();
    let rows: Vec<(String, (String, String, f32))> = rows.into_iter().collect();
    let rows = &rows;
    let mut t = Table::new(n);
    t.push("network", Col::str(|_| &opts.network))
        .push("network_type", Col::str(|_| "substrate"))
        .push("address", Col::str(|i| &rows[i].0))
        .push("label", Col::str(|i| &rows[i].1 .0))
        .push(
            "address_type",
            Col::str(|i| match rows[i].1 .0.as_str() {
                "exchange" => "exchange",
                _ => "wallet",
            }),
        )
        .push("address_subtype", Col::str(|_| ""))
        .push("trust_level", Col::str(|_| "verified"))
        .push("source", Col::str(|_| "synthetic"))
        .push("risk_level", Col::str(|i| &rows[i].1 .1))
        .push("confidence_score", Col::f32(|i| rows[i].1 .2))
        .push("created_timestamp", Col::i64(|_| 0))
        .push("updated_timestamp", Col::i64(|_| 0));
    t.write(path, threads)?.0.commit()?;
    Ok(n)
}

/// Writes `ground_truth.parquet` at `path` from `truth` (alert id → SAR filed), keeping the
/// rows of an existing file for other alerts; returns its row count.
pub(super) fn write_truth(
    mut truth: BTreeMap<String, bool>,
    path: &Path,
    threads: usize,
) -> Result<usize> {
    if path.exists() {
        let b = ParquetSource::open(path)?.read_all(&["alert_id", "is_sar_filed"])?;
        if b.num_columns() == 2 {
            let (a, s) = (b.column(0).as_string::<i32>(), b.column(1).as_boolean());
            for i in 0..b.num_rows() {
                truth.entry(a.value(i).into()).or_insert(s.value(i));
            }
        }
    }
    let n = truth.len();
    let truth: Vec<(String, bool)> = truth.into_iter().collect();
    let mut t = Table::new(n);
    t.push("alert_id", Col::str(|i| &truth[i].0))
        .push("is_sar_filed", Col::bool(|i| truth[i].1));
    t.write(path, threads)?.0.commit()?;
    Ok(n)
}
