//! `pipeline generate`: seeded synthetic batches in exactly the upstream format.
//!
//! Two worlds ([`Profile`]): `laundering`, described in `docs/generator.md`, hides AMLworld's
//! eight laundering patterns in the money flows among a heavy-tailed background, with about 3%
//! of alerts SAR-filed; `classic`, the default, is the original world described here.
//!
//! A fixed universe of addresses (about ten per alert) holds a latent set of illicit
//! addresses (3%), the same on every date. Each date gets benign money flows (random pairs,
//! exchange hubs) plus planted typologies around the illicit addresses: fan-in, fan-out, peel
//! chains, cycles, structuring just under 10,000 USD, mixing. Address features are computed
//! from the day's flows plus noise, shifted moderately for illicit addresses; alerts come from
//! noisy detectors (about half of the illicit addresses are alerted on a date, and benign
//! false positives lean toward hubs and high volumes). Labels cover a fraction of addresses
//! and alerts, with a little noise. Types imitate pandas-written files: int64, float32 for
//! ClickHouse Float32 columns, `decimal128(p, 18)` amounts with data-dependent precision,
//! `processing_date` as date32 (a string in money flows), and a table without rows as a
//! 0-row, 0-column file.
//!
//! In both worlds every date depends only on the seed and the date, never on the other dates
//! generated, and the bytes written never depend on the number of threads. Tables are streamed
//! to Parquet a row group at a time (see [`writer`]), so memory stays far below the size of a
//! date's data.

mod alerts;
mod background;
mod chunk;
mod clusters;
mod detect;
mod features;
mod flows;
mod labels;
mod par;
mod patterns;
mod planted;
mod profile;
mod world;
mod writer;

pub use planted::{answer_key, planted, Planted, PlantedHop};
pub use profile::{Kind, Laundering, PatternMix, Profile};

use crate::layout;
use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use alerts::{alerts_table, day_alerts};
use background::Activity;
use clusters::{clusters_table, day_clusters};
use features::{feature_table, Noise};
use flows::{flows_table, sorted_day_flows, Agg, Flow};
use labels::{write_labels, write_truth, LabelNoise};
use world::{fnv, mix, unit, World};
use writer::{write_meta, Encoding};

/// Options of `pipeline generate`.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Input root to write into.
    pub out: std::path::PathBuf,
    /// Network name, e.g. `torus`.
    pub network: String,
    /// Processing dates, ascending.
    pub dates: Vec<NaiveDate>,
    /// Window of each batch, in days.
    pub window_days: u32,
    /// Alerts per date (the address universe is about ten times larger).
    pub alerts_per_day: usize,
    /// Random seed.
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct GenerateSummary {
    /// Dates written.
    pub dates: usize,
    /// Alert rows.
    pub alerts: usize,
    /// Feature rows.
    pub features: usize,
    /// Cluster rows.
    pub clusters: usize,
    /// Money-flow rows.
    pub money_flows: usize,
    /// Rows of address_labels.parquet.
    pub labelled_addresses: usize,
    /// Rows of ground_truth.parquet.
    pub ground_truth: usize,
}

/// Writes the requested dates of the classic world and the labels, with as many threads as
/// there are cores; `progress` is called after each date.
pub fn generate(
    opts: &GenerateOptions,
    progress: &mut dyn FnMut(NaiveDate),
) -> Result<GenerateSummary> {
    generate_profile(opts, &Profile::Classic, None, progress)
}

/// [`generate`] for the world of `profile`, with up to `threads` threads working at once (all
/// cores if `None`; the output is the same).
pub fn generate_profile(
    opts: &GenerateOptions,
    profile: &Profile,
    threads: Option<usize>,
    progress: &mut dyn FnMut(NaiveDate),
) -> Result<GenerateSummary> {
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let n_addr = universe(opts);
    let (world, activity, label_noise, (cover, missed, weak)) = match profile {
        Profile::Classic => (
            World::new(opts.seed, n_addr),
            None,
            LabelNoise::CLASSIC,
            (0.5, 0.03, 0.03),
        ),
        Profile::Laundering(l) => {
            l.check()?;
            let act = Activity::new(opts.seed, n_addr);
            let noise = LabelNoise {
                alerted: l.label_coverage,
                other: l.background_label_coverage,
                missed: l.label_missed,
                false_alarm: l.label_false,
            };
            let w = World::laundering(opts.seed, n_addr, l.pool_share, act.hubs());
            let truth = (l.truth_coverage, l.missed_sar, l.weak_sar);
            (w, Some(act), noise, truth)
        }
    };
    let laundering = match profile {
        Profile::Laundering(l) => Some(l),
        Profile::Classic => None,
    };
    let mut summary = GenerateSummary::default();
    let mut alerted: BTreeSet<u32> = BTreeSet::new();
    let mut truth: BTreeMap<String, bool> = BTreeMap::new();
    for &date in &opts.dates {
        let ctx = (&world, laundering.zip(activity.as_ref()));
        let day = generate_date(opts, ctx, date, threads)?;
        summary.dates += 1;
        summary.alerts += day.alerts;
        summary.features += day.features;
        summary.clusters += day.clusters;
        summary.money_flows += day.flows;
        alerted.extend(day.alerted);
        for (id, bad) in day.alert_ids {
            if unit(mix(opts.seed ^ 0x6774 ^ fnv(&id))) < cover {
                let u = unit(mix(opts.seed ^ 0x6e6f ^ fnv(&id)));
                truth.insert(id, if bad { u >= missed } else { u < weak });
            }
        }
        progress(date);
    }
    let net_dir = layout::network_dir(&opts.out, &opts.network);
    std::fs::create_dir_all(&net_dir)
        .with_context(|| format!("cannot create {}", net_dir.display()))?;
    summary.labelled_addresses = write_labels(
        opts,
        &world,
        &alerted,
        &label_noise,
        &net_dir.join(layout::ADDRESS_LABELS),
        threads,
    )?;
    summary.ground_truth = write_truth(truth, &net_dir.join(layout::GROUND_TRUTH), threads)?;
    Ok(summary)
}

/// Number of addresses in the universe: about ten per alert.
fn universe(opts: &GenerateOptions) -> usize {
    (opts.alerts_per_day * 10).max(200)
}

/// What every table of one date is built from.
struct Day<'a> {
    opts: &'a GenerateOptions,
    world: &'a World,
    date: NaiveDate,
    /// `date` as `YYYY-MM-DD`.
    date_s: String,
    /// Seed of the date, from the seed and the date only.
    dseed: u64,
    /// `date` in days since the epoch.
    days32: i32,
    /// Midnight of `date`, in milliseconds since the epoch.
    midnight_ms: i64,
    /// The window, in milliseconds.
    window_ms: i64,
    /// The laundering profile's knobs; `None` in the classic world.
    laundering: Option<&'a Laundering>,
    /// How the tables are encoded.
    encoding: Encoding,
}

/// What one date wrote.
struct DayCounts {
    alerts: usize,
    features: usize,
    clusters: usize,
    flows: usize,
    /// Alerted address ids, ascending.
    alerted: Vec<u32>,
    /// Every alert's id, and whether its address was laundering (the truth before noise).
    alert_ids: Vec<(String, bool)>,
}

/// Logs how long a stage of a date took.
fn lap(t: &mut Instant, date: NaiveDate, stage: &str) {
    tracing::debug!(%date, stage, ms = t.elapsed().as_millis() as u64, "generate");
    *t = Instant::now();
}

/// The day's flows and the addresses laundering that day: the classic world's from the date's
/// random stream; the laundering world's background from its own blocks and the patterns from
/// their instances, which leaves the date's stream to the alerts and features.
fn day_flows(
    w: &World,
    laundering: Option<(&Laundering, &Activity)>,
    opts: &GenerateOptions,
    day: &Day,
    rng: &mut ChaCha8Rng,
    threads: usize,
) -> (Vec<Flow>, BTreeMap<u32, profile::Kind>) {
    let Some((cfg, act)) = laundering else {
        return (sorted_day_flows(w, rng, threads), BTreeMap::new());
    };
    let mut draws = background::background(w, act, day.dseed, threads);
    let transfer_day = day.days32 - 1;
    let instances = patterns::active_on(w, cfg, opts.seed, opts.alerts_per_day, transfer_day);
    let launderers = patterns::plant(&instances, transfer_day, &mut draws);
    tracing::debug!(
        date = %day.date,
        instances = instances.len(),
        launderers = launderers.len(),
        "laundering patterns"
    );
    (flows::sorted(draws.0, threads), launderers)
}

/// Writes one date's batch: its four tables and `META.json`. The date's random stream is
/// drawn by the flows, then the alerts, then the features, in that order; the tables are
/// committed together once all are written.
fn generate_date(
    opts: &GenerateOptions,
    (w, laundering): (&World, Option<(&Laundering, &Activity)>),
    date: NaiveDate,
    threads: usize,
) -> Result<DayCounts> {
    let mut t = Instant::now();
    let dseed = mix(opts.seed ^ mix(date.num_days_from_ce() as u64));
    let mut rng = ChaCha8Rng::seed_from_u64(dseed);
    let days32 = (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32;
    let day = Day {
        opts,
        world: w,
        date,
        date_s: date.format("%Y-%m-%d").to_string(),
        dseed,
        days32,
        midnight_ms: days32 as i64 * 86_400_000,
        window_ms: opts.window_days as i64 * 86_400_000,
        laundering: laundering.map(|l| l.0),
        encoding: match laundering {
            None => Encoding::Pandas,
            Some(_) => Encoding::Fast,
        },
    };

    let (flows, launderers) = day_flows(w, laundering, opts, &day, &mut rng, threads);
    lap(&mut t, date, "flows");
    let dir = layout::batch_dir(&opts.out, &opts.network, date, opts.window_days);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = |name: &str| dir.join(name);
    let t_flows = flows_table(&day, &flows);
    // The money flows are written while everything else is drawn and written.
    let (files, counts) = std::thread::scope(|s| {
        let flows_file = s.spawn(|| t_flows.write(&file("money_flows.parquet"), threads));
        let agg = Agg::of_flows(w.len(), &flows, threads);
        let active: Vec<u32> = (0..w.len() as u32)
            .filter(|&a| agg[a as usize].degree() > 0)
            .collect();
        let alerts = match laundering {
            None => day_alerts(&day, &agg, &active, &mut rng),
            Some((cfg, act)) => {
                detect::day_alerts(&day, cfg, act, &agg, &active, &launderers, &mut rng)
            }
        };
        let alerted: Vec<u32> = alerts
            .iter()
            .map(|x| x.addr)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let clusters = day_clusters(&day, &alerts, &alerted, &flows);
        lap(&mut t, date, "aggregates, alerts and clusters");
        let noise = match laundering {
            None => Noise::new(rng, active.len()),
            Some(_) => Noise::seeded(mix(dseed ^ 0x6e6f_6973), active.len()),
        };
        let t_features = feature_table(&day, &agg, &active, &noise);
        noise.prepare();
        lap(&mut t, date, "features' noise");
        let t_clusters = clusters_table(&day, &clusters, &agg);
        let files = [
            alerts_table(&day, &alerts, &agg).write(&file("alerts.parquet"), threads),
            t_features.write(&file("features.parquet"), threads),
            t_clusters.write(&file("clusters.parquet"), threads),
            flows_file.join().expect("money flows writer"),
        ];
        let counts = DayCounts {
            alerts: alerts.len(),
            features: active.len(),
            clusters: t_clusters.rows(),
            flows: flows.len(),
            alerted,
            alert_ids: alerts
                .into_iter()
                .map(|x| match laundering {
                    None => (x.id, w.illicit[x.addr as usize]),
                    Some(_) => (x.id, launderers.contains_key(&x.addr)),
                })
                .collect(),
        };
        (files, counts)
    });
    lap(&mut t, date, "tables written");
    let names = [
        "alerts.parquet",
        "features.parquet",
        "clusters.parquet",
        "money_flows.parquet",
    ];
    let files = files.into_iter().collect::<Result<Vec<_>>>()?;
    let mut sums = Vec::new();
    for (name, (tmp, sum)) in names.into_iter().zip(files) {
        tmp.commit()?;
        sums.push((name, sum));
    }
    write_meta(&day, &dir, &sums, &counts)?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{sha256_file, ParquetSource};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DataType;
    use std::path::Path;

    fn opts(out: &Path, dates: &[&str], alerts: usize) -> GenerateOptions {
        GenerateOptions {
            out: out.to_path_buf(),
            network: "torus".into(),
            dates: dates
                .iter()
                .map(|d| crate::dates::parse_date(d).unwrap())
                .collect(),
            window_days: 195,
            alerts_per_day: alerts,
            seed: 5,
        }
    }

    fn files(root: &Path, date: &str) -> Vec<Vec<u8>> {
        let dir = root.join("torus").join(date).join("195");
        [
            "alerts.parquet",
            "features.parquet",
            "clusters.parquet",
            "money_flows.parquet",
            "META.json",
        ]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect()
    }

    #[test]
    fn deterministic_and_independent_of_other_dates() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        generate(
            &opts(a.path(), &["2025-10-01", "2025-10-02"], 80),
            &mut |_| {},
        )
        .unwrap();
        generate(&opts(b.path(), &["2025-10-02"], 80), &mut |_| {}).unwrap();
        assert!(files(a.path(), "2025-10-02") == files(b.path(), "2025-10-02"));
        let c = tempfile::tempdir().unwrap();
        generate(
            &opts(c.path(), &["2025-10-01", "2025-10-02"], 80),
            &mut |_| {},
        )
        .unwrap();
        assert!(files(a.path(), "2025-10-01") == files(c.path(), "2025-10-01"));
        assert_eq!(
            std::fs::read(a.path().join("torus/ground_truth.parquet")).unwrap(),
            std::fs::read(c.path().join("torus/ground_truth.parquet")).unwrap()
        );
    }

    #[test]
    fn upstream_types_checksums_clusters_and_drift() {
        let d = tempfile::tempdir().unwrap();
        generate(
            &opts(d.path(), &["2025-11-13", "2025-11-14"], 120),
            &mut |_| {},
        )
        .unwrap();
        let dir = |date: &str| d.path().join("torus").join(date).join("195");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir("2025-11-13").join("META.json")).unwrap())
                .unwrap();
        for (f, sum) in meta["sha256"].as_object().unwrap() {
            assert_eq!(
                sha256_file(&dir("2025-11-13").join(f)).unwrap(),
                sum.as_str().unwrap()
            );
        }
        let schema = |date: &str, f: &str| {
            let s = ParquetSource::open(&dir(date).join(f)).unwrap();
            s.schema().clone()
        };
        let flows = schema("2025-11-13", "money_flows.parquet");
        assert_eq!(
            flows
                .field_with_name("processing_date")
                .unwrap()
                .data_type(),
            &DataType::Utf8
        );
        let alerts = schema("2025-11-13", "alerts.parquet");
        assert_eq!(
            alerts
                .field_with_name("processing_date")
                .unwrap()
                .data_type(),
            &DataType::Date32
        );
        match alerts.field_with_name("volume_usd").unwrap().data_type() {
            DataType::Decimal128(p, 18) => assert!((19..=38).contains(p)),
            t => panic!("volume_usd is {t}"),
        }
        assert!(schema("2025-11-13", "features.parquet")
            .field_with_name("behavioral_anomaly_score")
            .is_ok());
        let late = schema("2025-11-14", "features.parquet");
        assert!(
            late.field_with_name("behavioral_anomaly_score").is_err()
                && late.field_with_name("is_whale").is_err()
        );
        assert!(late.field_with_name("is_new_address").is_ok());
        // Every related alert id exists among the day's alerts.
        let src = ParquetSource::open(&dir("2025-11-13").join("alerts.parquet")).unwrap();
        let a = src.read_all(&["alert_id"]).unwrap();
        let ids: std::collections::HashSet<String> = a
            .column(0)
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect();
        let c = ParquetSource::open(&dir("2025-11-13").join("clusters.parquet"))
            .unwrap()
            .read_all(&["related_alert_ids"])
            .unwrap();
        assert!(c.num_rows() > 0);
        let rel = c.column(0).as_list::<i32>();
        for i in 0..rel.len() {
            for id in rel.value(i).as_string::<i32>().iter() {
                assert!(ids.contains(id.unwrap()));
            }
        }
    }

    #[test]
    fn the_bytes_do_not_depend_on_the_thread_count() {
        // Enough flows for two row groups and several chunks per column.
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        generate_profile(
            &opts(a.path(), &["2025-10-01"], 30_000),
            &Profile::Classic,
            Some(1),
            &mut |_| {},
        )
        .unwrap();
        generate_profile(
            &opts(b.path(), &["2025-10-01"], 30_000),
            &Profile::Classic,
            Some(3),
            &mut |_| {},
        )
        .unwrap();
        let flows = a.path().join("torus/2025-10-01/195/money_flows.parquet");
        let file = std::fs::File::open(flows).unwrap();
        let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
        use parquet::file::reader::FileReader;
        assert!(reader.metadata().num_row_groups() >= 2);
        assert!(files(a.path(), "2025-10-01") == files(b.path(), "2025-10-01"));
        for f in ["address_labels.parquet", "ground_truth.parquet"] {
            let read = |d: &Path| std::fs::read(d.join("torus").join(f)).unwrap();
            assert!(read(a.path()) == read(b.path()));
        }
    }

    #[test]
    fn a_day_without_clusters_is_a_zero_column_file() {
        let d = tempfile::tempdir().unwrap();
        generate(&opts(d.path(), &["2025-10-01"], 0), &mut |_| {}).unwrap();
        let s =
            ParquetSource::open(&d.path().join("torus/2025-10-01/195/clusters.parquet")).unwrap();
        assert_eq!((s.num_rows(), s.schema().fields().len()), (0, 0));
    }
}
