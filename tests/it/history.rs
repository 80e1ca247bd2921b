//! Address-history features on generated data: the run's caches, their agreement with the
//! exported (training) matrix, and which caches a change to one date's alerts rewrites.

use crate::common::*;
use aml_pipeline::config::RunConfig;
use aml_pipeline::dates::parse_date;
use aml_pipeline::features::{ALERT_HISTORY_FEATURES, HISTORY_FEATURES, WINDOW_SHAPE_FEATURES};
use aml_pipeline::history;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Decimal128Type, Float64Type};
use std::collections::HashMap;
use std::time::SystemTime;

fn dates() -> Vec<chrono::NaiveDate> {
    aml_pipeline::dates::days(parse_date(FIRST).unwrap(), parse_date(LAST).unwrap())
}

/// `address → feature values` of a history table.
fn by_address(b: &arrow::record_batch::RecordBatch) -> HashMap<String, Vec<f64>> {
    let addr = b.column_by_name("address").unwrap().as_string::<i32>();
    (0..b.num_rows())
        .map(|i| {
            let v = HISTORY_FEATURES
                .iter()
                .map(|f| {
                    b.column_by_name(f)
                        .unwrap()
                        .as_primitive::<Float64Type>()
                        .value(i)
                })
                .collect();
            (addr.value(i).to_string(), v)
        })
        .collect()
}

fn column_names(b: &arrow::record_batch::RecordBatch) -> Vec<String> {
    b.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// A copy of the fixture's input (to edit), with run configs over it, each writing to its own
/// output.
struct InputCopy {
    tmp: tempfile::TempDir,
    input: std::path::PathBuf,
}

impl InputCopy {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("input");
        copy_tree(&fixture().input, &input);
        Self { tmp, input }
    }

    /// A run config named `name` over the copy, with the fixture's models.
    fn config(&self, name: &str) -> RunConfig {
        let dir = self.tmp.path().join(name);
        let path = write_config(&dir, &self.input, &dir.join("out"), &fixture().models);
        RunConfig::load(&path).unwrap()
    }
}

/// Drops the rows of `dir`'s `file` whose string `column` satisfies `drop` (refreshing
/// META.json); the number dropped.
fn drop_rows(
    dir: &std::path::Path,
    file: &str,
    column: &str,
    drop: &dyn Fn(&str) -> bool,
) -> usize {
    let b = read_parquet(&dir.join(file));
    let values = b.column_by_name(column).unwrap().as_string::<i32>();
    let keep: arrow::array::BooleanArray = (0..b.num_rows())
        .map(|i| Some(!drop(values.value(i))))
        .collect();
    write_parquet(
        &dir.join(file),
        &arrow::compute::filter_record_batch(&b, &keep).unwrap(),
    );
    refresh_meta(dir);
    keep.false_count()
}

/// After an input edit, `date`'s table before it (`old`), recomputed from `cfg`'s state, is what
/// a fresh output gives, and differs from `old`.
fn follows_the_edit(
    copy: &InputCopy,
    cfg: &RunConfig,
    date: chrono::NaiveDate,
    flows: bool,
    old: &[u8],
) {
    let table = |c: &RunConfig| std::fs::read(history::cache_path(c, date)).unwrap();
    history::prepare(cfg, &[date], flows).unwrap();
    let fresh = copy.config("c");
    history::prepare(&fresh, &[date], flows).unwrap();
    assert!(table(cfg) == table(&fresh));
    assert!(table(cfg) != old);
}

#[test]
fn run_caches_history_that_the_exported_matrix_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg_path = fixture_config(tmp.path());
    ok(pipeline(&[
        "run",
        cfg_path.to_str().unwrap(),
        "--workers",
        "2",
    ]));
    let cfg = RunConfig::load(&cfg_path).unwrap();
    let matrix = tmp.path().join("matrix.parquet");
    ok(pipeline(&[
        "features",
        cfg_path.to_str().unwrap(),
        "--out",
        matrix.to_str().unwrap(),
    ]));
    let m = read_parquet(&matrix);
    let m_date = m
        .column_by_name("processing_date")
        .unwrap()
        .as_string::<i32>();
    let m_addr = m.column_by_name("address").unwrap().as_string::<i32>();
    let mut with_history = 0;
    for date in dates() {
        let path = history::cache_path(&cfg, date);
        let h = read_parquet(&path);
        let names = column_names(&h);
        assert_eq!(names[0], "address");
        assert_eq!(&names[1..], HISTORY_FEATURES);
        assert!(h
            .schema()
            .fields()
            .iter()
            .skip(1)
            .all(|f| f.data_type() == &DataType::Float64));
        assert_eq!(
            by_address(&h),
            by_address(&history::load(&cfg, date, true).unwrap())
        );
        // Without the flow history, its columns are not read; the others are the same.
        let alert_only = history::load(&cfg, date, false).unwrap();
        let kept = column_names(&alert_only);
        assert_eq!(kept[0], "address");
        assert_eq!(&kept[1..], ALERT_HISTORY_FEATURES);
        let project = |b: &arrow::record_batch::RecordBatch| {
            b.project(&(0..kept.len()).collect::<Vec<_>>()).unwrap()
        };
        assert_eq!(project(&h), alert_only);
        let cached = by_address(&h);
        // One row per alerted address of the date.
        let alerts = read_parquet(&batch_dir(&cfg.input, &date.to_string()).join("alerts.parquet"));
        let alerted: std::collections::HashSet<&str> = alerts
            .column_by_name("address")
            .unwrap()
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(cached.len(), alerted.len());
        // The first date has no earlier input: no history.
        if date == dates()[0] {
            assert!(cached.values().all(|v| v.iter().all(|&x| x == 0.0)));
        }
        // The matrix (as training builds it) holds the same values.
        for i in 0..m.num_rows() {
            if m_date.value(i) != date.to_string() {
                continue;
            }
            let want = &cached[m_addr.value(i)];
            for (k, f) in HISTORY_FEATURES.iter().enumerate() {
                let got = m.column_by_name(f).unwrap().as_primitive::<Float64Type>();
                assert!(!got.is_null(i));
                assert_eq!(got.value(i).to_bits(), want[k].to_bits(), "{date} {f}");
            }
            with_history += (want[2] > 0.0) as usize;
        }
    }
    assert!(
        with_history > 100,
        "only {with_history} alerts with history"
    );
}

#[test]
fn changing_one_dates_alerts_rewrites_only_the_caches_whose_window_holds_it() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_tree(&f.input, &input);
    let cfg_path = write_config(
        &tmp.path().join("cfg"),
        &input,
        &tmp.path().join("out"),
        &f.models,
    );
    let cfg = RunConfig::load(&cfg_path).unwrap();
    let all = dates();
    history::prepare(&cfg, &all, false).unwrap();
    let state = || -> Vec<(Vec<u8>, SystemTime)> {
        all.iter()
            .map(|&d| {
                let p = history::cache_path(&cfg, d);
                (
                    std::fs::read(&p).unwrap(),
                    std::fs::metadata(&p).unwrap().modified().unwrap(),
                )
            })
            .collect()
    };
    let before = state();
    // Rerunning with nothing changed rewrites nothing.
    history::prepare(&cfg, &all, false).unwrap();
    assert!(before == state());

    // Halve the volume of one alert of the second date, for an address alerted again later.
    let changed = all[1];
    let dir = batch_dir(&input, &changed.to_string());
    let alerts = read_parquet(&dir.join("alerts.parquet"));
    let addr = alerts.column_by_name("address").unwrap().as_string::<i32>();
    let later: Vec<HashMap<String, Vec<f64>>> = all
        .iter()
        .map(|&d| by_address(&history::load(&cfg, d, true).unwrap()))
        .collect();
    let row = (0..alerts.num_rows())
        .find(|&i| later[2..].iter().any(|h| h.contains_key(addr.value(i))))
        .expect("an address alerted again after the second date");
    let target = addr.value(row).to_string();
    let vol_idx = alerts.schema().index_of("volume_usd").unwrap();
    // Edit the decimal in place: a round trip through f64 would move every row's value.
    let vol = alerts.column(vol_idx).as_primitive::<Decimal128Type>();
    let DataType::Decimal128(precision, scale) = *vol.data_type() else {
        panic!("volume_usd is {}, expected a decimal", vol.data_type());
    };
    let mut raw: Vec<i128> = vol.values().to_vec();
    let half = raw[row] / 2;
    raw[row] -= half;
    let delta = -(half as f64) / 10f64.powi(scale.into());
    let new_vol: arrow::array::ArrayRef = std::sync::Arc::new(
        arrow::array::Decimal128Array::from(raw)
            .with_precision_and_scale(precision, scale)
            .unwrap(),
    );
    let mut cols = alerts.columns().to_vec();
    cols[vol_idx] = new_vol;
    let edited = arrow::record_batch::RecordBatch::try_new(alerts.schema(), cols).unwrap();
    write_parquet(&dir.join("alerts.parquet"), &edited);
    refresh_meta(&dir);

    history::prepare(&cfg, &all, false).unwrap();
    let after = state();
    let dependent: Vec<_> = history::dependent_dates(changed).collect();
    for (k, &d) in all.iter().enumerate() {
        let rewritten = before[k] != after[k];
        let expected = d != changed && dependent.contains(&d) && later[k].contains_key(&target);
        assert_eq!(rewritten, expected, "{d}");
        if expected {
            let now = by_address(&history::load(&cfg, d, true).unwrap());
            for (a, v) in &later[k] {
                if a == &target {
                    let want = v[3] + delta;
                    assert!(
                        (now[a][3] - want).abs() <= 1e-9 * want.abs().max(1.0),
                        "{a} on {d}"
                    );
                    assert_eq!((now[a][0], now[a][2], now[a][4]), (v[0], v[2], v[4]));
                } else {
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&now[a]), bits(v), "{a} on {d}");
                }
            }
        }
    }
    assert!(after.iter().zip(&before).any(|(a, b)| a != b));
}

#[test]
fn a_later_run_reads_earlier_dates_from_their_summaries_and_never_from_a_stale_one() {
    let copy = InputCopy::new();
    let (input, config) = (&copy.input, |name: &str| copy.config(name));
    let (cfg, fresh) = (config("a"), config("b"));
    let all = dates();
    let (last, before) = all.split_last().unwrap();
    let table = |cfg: &RunConfig| std::fs::read(history::cache_path(cfg, *last)).unwrap();
    history::prepare(&cfg, before, false).unwrap();
    let days = aml_pipeline::layout::history_days(&cfg.output, &cfg.network, cfg.window_days);
    assert_eq!(std::fs::read_dir(&days).unwrap().count(), before.len());
    history::prepare(&fresh, &[*last], false).unwrap();

    // The earlier dates' files are not read again: zeroed behind the planner's back (same
    // size and mtime), they still give the table computed from them.
    let zeroed = batch_dir(input, &before[2].to_string()).join("alerts.parquet");
    let (original, mtime) = (
        std::fs::read(&zeroed).unwrap(),
        std::fs::metadata(&zeroed).unwrap().modified().unwrap(),
    );
    std::fs::write(&zeroed, vec![0u8; original.len()]).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&zeroed)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    history::prepare(&cfg, &[*last], false).unwrap();
    assert!(table(&cfg) == table(&fresh), "read from the summaries");
    std::fs::write(&zeroed, &original).unwrap();

    // A changed file has a new summary: drop the alerts of the last date's addresses from an
    // earlier date, and the table is what the files alone give.
    let dir = batch_dir(input, &before[3].to_string());
    let wanted = by_address(&history::load(&cfg, *last, true).unwrap());
    let dropped = drop_rows(&dir, "alerts.parquet", "address", &|a| {
        wanted.contains_key(a)
    });
    assert!(dropped > 0, "the last date's addresses were alerted before");
    follows_the_edit(&copy, &cfg, *last, false, &table(&cfg));
}

#[test]
fn flow_history_comes_from_summaries_and_follows_a_changed_flows_file() {
    let copy = InputCopy::new();
    let (input, config) = (&copy.input, |name: &str| copy.config(name));
    let (cfg, fresh) = (config("a"), config("b"));
    let all = dates();
    let (last, before) = all.split_last().unwrap();
    let table = |cfg: &RunConfig| std::fs::read(history::cache_path(cfg, *last)).unwrap();
    history::prepare(&cfg, before, true).unwrap();
    let flows = aml_pipeline::layout::history_days(&cfg.output, &cfg.network, cfg.window_days)
        .join("flows");
    // Every date but the last of the run is in a window of a later one: its flows were read.
    assert_eq!(std::fs::read_dir(&flows).unwrap().count(), before.len() - 1);
    history::prepare(&cfg, &[*last], true).unwrap();
    history::prepare(&fresh, &[*last], true).unwrap();
    assert!(
        table(&cfg) == table(&fresh),
        "summaries give what the files give"
    );
    let rows = by_address(&history::load(&cfg, *last, true).unwrap());
    let col = |name: &str| HISTORY_FEATURES.iter().position(|n| *n == name).unwrap();
    let (sent, days) = (col("hist_out_usd_30d"), col("hist_flow_days_30d"));
    assert!(rows.values().any(|v| v[sent] > 0.0 && v[days] >= 2.0));
    assert!(rows.values().all(|v| v.iter().all(|x| x.is_finite())));
    // The shapes of the week's flow graph are counted (the dataflow leaves them NaN).
    let shapes: Vec<usize> = WINDOW_SHAPE_FEATURES.iter().map(|n| col(n)).collect();
    assert!(rows.values().any(|v| shapes.iter().any(|&i| v[i] > 0.0)));

    // Drop an earlier date's flows sent by the last date's addresses: the table follows.
    let dir = batch_dir(input, &before[3].to_string());
    let dropped = drop_rows(&dir, "money_flows.parquet", "from_address", &|a| {
        rows.contains_key(a)
    });
    assert!(dropped > 0, "the last date's addresses sent before");
    follows_the_edit(&copy, &cfg, *last, true, &table(&cfg));
}
