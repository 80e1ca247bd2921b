//! Labels for training and validation: ground truth per alert, or address labels by risk level.

use crate::contract::{column, required, to_f64, to_str, to_str_view};
use crate::io::ParquetSource;
use crate::layout;
use anyhow::{bail, Result};
use arrow::array::{Array, AsArray, StringViewArray};
use arrow::datatypes::DataType;
use std::path::Path;

mod map;
pub use map::LabelMap;

/// A label: illicit or not, with a sample weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Label {
    /// Confirmed or believed illicit.
    pub illicit: bool,
    /// Sample weight (the label's confidence; 1 for ground truth).
    pub weight: f32,
}

/// The labels known for a network.
#[derive(Debug, Default)]
pub struct Labels {
    /// `alert_id → is_sar_filed` from `ground_truth.parquet`.
    pub alerts: LabelMap<bool>,
    /// `address → label` from `address_labels.parquet` (high/critical = illicit, low/medium = not).
    pub addresses: LabelMap<Label>,
}

impl Labels {
    /// Reads `{input}/{network}/ground_truth.parquet` and `address_labels.parquet`; either may be absent.
    pub fn load(input: &Path, network: &str) -> Result<Self> {
        let mut out = Labels::default();
        let gt = layout::network_dir(input, network).join(layout::GROUND_TRUTH);
        if gt.exists() {
            out.alerts = Self::ground_truth(&gt, None)?;
        }
        let al = layout::network_dir(input, network).join(layout::ADDRESS_LABELS);
        if al.exists() {
            let f = al.display().to_string();
            let b = ParquetSource::open(&al)?.read_all(&[
                "address",
                "risk_level",
                "confidence_score",
            ])?;
            if b.num_columns() > 0 {
                let addr = to_str(required(&b, &f, "address")?, &f, "address")?;
                let risk = to_str(required(&b, &f, "risk_level")?, &f, "risk_level")?;
                let conf = match column(&b, "confidence_score") {
                    Some(c) => Some(to_f64(c, &f, "confidence_score")?),
                    None => None,
                };
                for i in 0..b.num_rows() {
                    if addr.is_null(i) || risk.is_null(i) {
                        continue;
                    }
                    let illicit = match risk.value(i).to_ascii_lowercase().as_str() {
                        "high" | "critical" => true,
                        "low" | "medium" => false,
                        _ => continue,
                    };
                    let w = conf
                        .as_ref()
                        .filter(|c| c.is_valid(i))
                        .map_or(1.0, |c| c.value(i) as f32);
                    if !(w.is_finite() && w >= 0.0) {
                        bail!("{f}: confidence_score in row {i} is {w}, expected a non-negative weight");
                    }
                    out.addresses
                        .insert(addr.value(i), Label { illicit, weight: w });
                }
            }
        }
        Ok(out)
    }

    /// An address-labels file (`{input}/{network}/address_labels.parquet`) as the subnet
    /// validator joins it for Tier 3A: `address → [illicit, …]`, one entry per row whose
    /// `risk_level` is exactly `low`, `medium` (false), `high` or `critical` (true); an address
    /// with several rows counts several times. Only the addresses of `wanted` when given (the
    /// file is streamed in batches: a network's labels grow with its history, a day's alerts
    /// touch a few of them). Empty when the file is absent.
    pub fn validator_rows(al: &Path, wanted: Option<&LabelMap<()>>) -> Result<LabelMap<Vec<bool>>> {
        if !crate::io::present(al)? {
            return Ok(LabelMap::default());
        }
        let f = al.display().to_string();
        let columns = ["address", "risk_level"];
        let source = ParquetSource::open_with_views(al, &columns)?;
        let mut out = LabelMap::with_capacity(wanted.map_or(source.num_rows(), LabelMap::len), 0);
        for b in source.read(&columns, crate::io::STREAM_ROWS)? {
            let b = b?;
            if b.num_columns() == 0 {
                continue;
            }
            let addr = to_str_view(required(&b, &f, "address")?, &f, "address")?;
            let risk = to_str_view(required(&b, &f, "risk_level")?, &f, "risk_level")?;
            for ((a, r), kept) in addr.iter().zip(risk.iter()).zip(wanted_rows(wanted, &addr)) {
                let (Some(a), Some(r), true) = (a, r, kept) else {
                    continue;
                };
                let illicit = match r {
                    "high" | "critical" => true,
                    "low" | "medium" => false,
                    _ => continue,
                };
                out.get_or_insert_with(a, Vec::new).push(illicit);
            }
        }
        Ok(out)
    }

    /// Reads a ground-truth file (`alert_id, is_sar_filed`) into `alert_id → is_sar_filed`,
    /// keeping only the alerts of `wanted` when given. The file is streamed in batches, so a
    /// network's whole history of labels is never held decoded: with `wanted`, what is kept is
    /// bounded by the alerts asked about, however many days of labels the file has gathered.
    pub fn ground_truth(gt: &Path, wanted: Option<&LabelMap<()>>) -> Result<LabelMap<bool>> {
        let f = gt.display().to_string();
        let source = ParquetSource::open_with_views(gt, &["alert_id"])?;
        let mut out = LabelMap::with_capacity(wanted.map_or(source.num_rows(), LabelMap::len), 0);
        for b in source.read(&["alert_id", "is_sar_filed"], crate::io::STREAM_ROWS)? {
            let b = b?;
            if b.num_columns() == 0 {
                continue;
            }
            let ids = to_str_view(required(&b, &f, "alert_id")?, &f, "alert_id")?;
            let sar = required(&b, &f, "is_sar_filed")?;
            let sar: Vec<Option<bool>> = match sar.data_type() {
                DataType::Boolean => sar.as_boolean().iter().collect(),
                _ => to_f64(sar, &f, "is_sar_filed")?
                    .iter()
                    .map(|s| s.map(|s| s != 0.0))
                    .collect(),
            };
            for ((id, s), kept) in ids.iter().zip(sar).zip(wanted_rows(wanted, &ids)) {
                if let (Some(id), Some(s), true) = (id, s, kept) {
                    out.insert(id, s);
                }
            }
        }
        Ok(out)
    }

    /// The label of an alert: its ground truth if known, else its address's label.
    pub fn of_alert(&self, alert_id: &str, address: &str) -> Option<Label> {
        if let Some(&s) = self.alerts.get(alert_id) {
            return Some(Label {
                illicit: s,
                weight: 1.0,
            });
        }
        self.addresses.get(address).copied()
    }

    /// True when no label of either kind is known.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.addresses.is_empty()
    }
}

/// Whether each row of `keys` is wanted (every row without `wanted`; a null never is): one
/// prefetched pass of lookups ([`LabelMap::contains_each`]), since the files have millions of
/// rows.
fn wanted_rows(wanted: Option<&LabelMap<()>>, keys: &StringViewArray) -> Vec<bool> {
    match wanted {
        Some(w) => w.contains_each(keys),
        None => keys.iter().map(|k| k.is_some()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::decode::make_batch;
    use arrow::array::{BooleanArray, Float32Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn ground_truth_keeps_the_wanted_alerts_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ground_truth.parquet");
        let ids: Vec<Option<String>> = (0..70_000)
            .map(|i| (i % 1000 != 7).then(|| format!("a{i}")))
            .collect();
        let sar: Vec<Option<f64>> = (0..70_000)
            .map(|i| (i % 1000 != 9).then_some((i % 3) as f64))
            .collect();
        let gt = make_batch(vec![
            ("alert_id", Arc::new(StringArray::from(ids))),
            (
                "is_sar_filed",
                Arc::new(arrow::array::Float64Array::from(sar)),
            ),
        ])
        .unwrap();
        crate::io::write_parquet(&path, &gt).unwrap();
        let all = Labels::ground_truth(&path, None).unwrap();
        // Rows with a null id or a null label are left out; a non-zero label is illicit.
        assert_eq!(all.len(), 70_000 - 70 - 70);
        assert_eq!((all.get("a1"), all.get("a3")), (Some(&true), Some(&false)));
        assert_eq!((all.get("a7"), all.get("a9")), (None, None));
        // Wanted ids, across the batches the file is streamed in; those without a row stay out.
        let asked = ["a2", "a9", "a65537", "a69999", "nobody"];
        let wanted: LabelMap<()> = asked.iter().map(|k| (*k, ())).collect();
        let some = Labels::ground_truth(&path, Some(&wanted)).unwrap();
        assert_eq!(some.len(), 3);
        for k in asked {
            assert_eq!(some.get(k), all.get(k), "{k}");
        }
    }

    #[test]
    fn validator_rows_keep_every_row_of_the_wanted_addresses_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("address_labels.parquet");
        assert_eq!(Labels::validator_rows(&path, None).unwrap().len(), 0);
        let levels = ["high", "low", "critical", "medium", "unknown", "High"];
        let addr: Vec<Option<String>> = (0..70_000)
            .map(|i| (i % 1000 != 7).then(|| format!("x{}", i % 20_000)))
            .collect();
        let risk: Vec<Option<&str>> = (0..70_000)
            .map(|i| (i % 1000 != 9).then_some(levels[i % levels.len()]))
            .collect();
        let al = make_batch(vec![
            ("address", Arc::new(StringArray::from(addr))),
            ("risk_level", Arc::new(StringArray::from(risk))),
        ])
        .unwrap();
        crate::io::write_parquet(&path, &al).unwrap();
        let all = Labels::validator_rows(&path, None).unwrap();
        // x0 has rows 0, 20000, 40000, 60000: high, critical, unknown (left out), high; x1
        // low, medium, `High` (not a level the validator knows), low.
        assert_eq!(all.get("x0"), Some(&vec![true, true, true]));
        assert_eq!(all.get("x1"), Some(&vec![false, false, false]));
        // Wanted addresses, whose rows fall in several of the batches the file is streamed in.
        let asked = ["x0", "x7", "x19999", "x12345", "nobody"];
        let wanted: LabelMap<()> = asked.iter().map(|k| (*k, ())).collect();
        let some = Labels::validator_rows(&path, Some(&wanted)).unwrap();
        // x7's rows (7, 20007, …) all have a null address: it has none.
        assert_eq!((some.len(), all.get("x7")), (3, None));
        for k in asked {
            assert_eq!(some.get(k), all.get(k), "{k}");
        }
    }

    #[test]
    fn ground_truth_wins_then_risk_levels_with_confidence_weights() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("torus");
        std::fs::create_dir_all(&net).unwrap();
        let gt = make_batch(vec![
            ("alert_id", Arc::new(StringArray::from(vec!["a1", "a2"]))),
            (
                "is_sar_filed",
                Arc::new(BooleanArray::from(vec![true, false])),
            ),
        ])
        .unwrap();
        crate::io::write_parquet(&net.join("ground_truth.parquet"), &gt).unwrap();
        let al = make_batch(vec![
            (
                "address",
                Arc::new(StringArray::from(vec!["x", "y", "z", "w"])),
            ),
            (
                "risk_level",
                Arc::new(StringArray::from(vec![
                    "critical", "low", "unknown", "HIGH",
                ])),
            ),
            (
                "confidence_score",
                Arc::new(Float32Array::from(vec![0.9, 0.6, 0.7, 0.5])),
            ),
        ])
        .unwrap();
        crate::io::write_parquet(&net.join("address_labels.parquet"), &al).unwrap();
        let l = Labels::load(dir.path(), "torus").unwrap();
        // Ground truth beats the address label, with weight 1.
        assert_eq!(
            l.of_alert("a2", "x"),
            Some(Label {
                illicit: false,
                weight: 1.0
            })
        );
        assert_eq!(
            l.of_alert("a1", "y"),
            Some(Label {
                illicit: true,
                weight: 1.0
            })
        );
        // Address labels: high/critical illicit, low/medium not, others unlabelled; weight = confidence.
        assert_eq!(
            l.of_alert("b", "x"),
            Some(Label {
                illicit: true,
                weight: 0.9
            })
        );
        assert_eq!(
            l.of_alert("b", "y"),
            Some(Label {
                illicit: false,
                weight: 0.6
            })
        );
        assert_eq!(l.of_alert("b", "z"), None);
        assert_eq!(
            l.of_alert("b", "w"),
            Some(Label {
                illicit: true,
                weight: 0.5
            })
        );
        assert_eq!(l.of_alert("b", "nobody"), None);
    }
}
