//! `pipeline generate`: seeded synthetic batches in exactly the upstream format.
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
//! Every date depends only on the seed and the date, never on the other dates generated.

use crate::io::{sha256_file, ParquetSource, TempFile};
use anyhow::{Context, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int64Array, ListArray, StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use crate::features::TYPOLOGIES;

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

/// Date from which upstream dropped the anomaly scores and most `is_*` flags.
fn drift_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 11, 14).expect("valid date")
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The latent world: addresses and which are illicit, fixed by the seed.
struct World {
    addr: Vec<String>,
    illicit: Vec<bool>,
    home: Vec<u8>,
    hub: Vec<bool>,
    mixer: Vec<bool>,
    illicit_ids: Vec<u32>,
    hubs: Vec<u32>,
    mixers: Vec<u32>,
}

impl World {
    fn new(seed: u64, n: usize) -> Self {
        let mut w = World {
            addr: Vec::with_capacity(n),
            illicit: Vec::with_capacity(n),
            home: Vec::with_capacity(n),
            hub: Vec::with_capacity(n),
            mixer: Vec::with_capacity(n),
            illicit_ids: Vec::new(),
            hubs: Vec::new(),
            mixers: Vec::new(),
        };
        for i in 0..n as u64 {
            let h = mix(seed ^ mix(i));
            w.addr.push(format!(
                "0x{:016x}{:016x}{:08x}",
                mix(h),
                mix(h ^ 1),
                mix(h ^ 2) as u32
            ));
            let ill = unit(mix(h ^ 3)) < 0.03;
            let home = (mix(h ^ 4) % TYPOLOGIES.len() as u64) as u8;
            let hub = !ill && unit(mix(h ^ 5)) < 0.002;
            let mixer = ill && TYPOLOGIES[home as usize] == "MIXING_BEHAVIOR";
            w.illicit.push(ill);
            w.home.push(home);
            w.hub.push(hub);
            w.mixer.push(mixer);
            if ill {
                w.illicit_ids.push(i as u32);
            }
            if hub {
                w.hubs.push(i as u32);
            }
            if mixer {
                w.mixers.push(i as u32);
            }
        }
        if w.hubs.is_empty() {
            let first_benign = (0..n as u32).find(|&i| !w.illicit[i as usize]).unwrap_or(0);
            w.hub[first_benign as usize] = true;
            w.hubs.push(first_benign);
        }
        w
    }
}

/// One aggregated money flow (an address pair in the window).
#[derive(Clone, Copy, Default)]
struct Flow {
    usd: f64,
    tx: u32,
}

/// Writes the requested dates and the labels; `progress` is called after each date.
pub fn generate(
    opts: &GenerateOptions,
    progress: &mut dyn FnMut(NaiveDate),
) -> Result<GenerateSummary> {
    let n_addr = (opts.alerts_per_day * 10).max(200);
    let world = World::new(opts.seed, n_addr);
    let mut summary = GenerateSummary::default();
    let mut alerted: BTreeSet<u32> = BTreeSet::new();
    let mut truth: BTreeMap<String, bool> = BTreeMap::new();
    for &date in &opts.dates {
        let day = generate_date(opts, &world, date)?;
        summary.dates += 1;
        summary.alerts += day.alerts;
        summary.features += day.features;
        summary.clusters += day.clusters;
        summary.money_flows += day.flows;
        alerted.extend(day.alerted);
        for (id, a) in day.alert_ids {
            if unit(mix(opts.seed ^ 0x6774 ^ fnv(&id))) < 0.5 {
                let noisy = unit(mix(opts.seed ^ 0x6e6f ^ fnv(&id))) < 0.03;
                truth.insert(id, world.illicit[a as usize] ^ noisy);
            }
        }
        progress(date);
    }
    let net_dir = opts.out.join(&opts.network);
    std::fs::create_dir_all(&net_dir)
        .with_context(|| format!("cannot create {}", net_dir.display()))?;
    summary.labelled_addresses = write_labels(
        opts,
        &world,
        &alerted,
        &net_dir.join("address_labels.parquet"),
    )?;
    summary.ground_truth = write_truth(truth, &net_dir.join("ground_truth.parquet"))?;
    Ok(summary)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

struct DayCounts {
    alerts: usize,
    features: usize,
    clusters: usize,
    flows: usize,
    alerted: Vec<u32>,
    alert_ids: Vec<(String, u32)>,
}

fn add_flow(flows: &mut HashMap<(u32, u32), Flow>, from: u32, to: u32, usd: f64, tx: u32) {
    if from == to {
        return;
    }
    let f = flows.entry((from, to)).or_default();
    f.usd += usd;
    f.tx += tx;
}

fn pick(rng: &mut ChaCha8Rng, v: &[u32]) -> u32 {
    v[rng.gen_range(0..v.len())]
}

/// The day's flows: benign traffic plus the planted typologies.
fn day_flows(w: &World, rng: &mut ChaCha8Rng) -> HashMap<(u32, u32), Flow> {
    let n = w.addr.len() as u32;
    let mut flows: HashMap<(u32, u32), Flow> = HashMap::with_capacity(n as usize * 4);
    let amount = LogNormal::new(6.0, 1.6).expect("valid");
    let benign = (n as f64 * 3.4) as usize;
    for _ in 0..benign {
        let from = rng.gen_range(0..n);
        let to = if rng.gen_bool(0.3) {
            pick(rng, &w.hubs)
        } else {
            rng.gen_range(0..n)
        };
        let tx = 1 + (rng.gen::<f64>().powi(3) * 20.0) as u32;
        add_flow(&mut flows, from, to, amount.sample(rng) * tx as f64, tx);
    }
    let any = |rng: &mut ChaCha8Rng| rng.gen_range(0..n);
    for &i in &w.illicit_ids {
        let size = rng.gen_range(6..20);
        let typ = TYPOLOGIES[w.home[i as usize] as usize];
        match typ {
            "MOTIF_FANIN" | "SMURFING_NETWORK" | "STRUCTURING" | "INTRADAY_STRUCTURING" => {
                for _ in 0..size {
                    let tx = rng.gen_range(1..6);
                    let usd = if typ.contains("STRUCTURING") {
                        rng.gen_range(9000.0..9990.0)
                    } else {
                        amount.sample(rng) * 3.0
                    };
                    add_flow(&mut flows, any(rng), i, usd * tx as f64, tx);
                }
                add_flow(
                    &mut flows,
                    i,
                    pick(rng, &w.hubs),
                    amount.sample(rng) * 20.0,
                    3,
                );
            }
            "MOTIF_FANOUT" | "RAPID_FANOUT" => {
                for _ in 0..size {
                    let tx = rng.gen_range(1..4);
                    add_flow(
                        &mut flows,
                        i,
                        any(rng),
                        amount.sample(rng) * 2.0 * tx as f64,
                        tx,
                    );
                }
            }
            "PEEL_CHAIN" | "LAYERING_PATH" => {
                let mut cur = i;
                let mut usd = amount.sample(rng) * 50.0;
                for _ in 0..size / 2 {
                    let next = if rng.gen_bool(0.4) {
                        pick(rng, &w.illicit_ids)
                    } else {
                        any(rng)
                    };
                    add_flow(&mut flows, cur, next, usd, 1);
                    add_flow(&mut flows, cur, any(rng), usd * 0.05, 1);
                    usd *= 0.9;
                    cur = next;
                }
            }
            "CYCLE_DETECTION" | "PING_PONG" => {
                let j = pick(rng, &w.illicit_ids);
                let k = pick(rng, &w.illicit_ids);
                let usd = amount.sample(rng) * 10.0;
                add_flow(&mut flows, i, j, usd, 4);
                add_flow(&mut flows, j, k, usd * 0.97, 4);
                add_flow(&mut flows, k, i, usd * 0.94, 4);
                add_flow(&mut flows, j, i, usd * 0.5, 2);
            }
            "MIXING_BEHAVIOR" => {
                let mixer = if w.mixers.is_empty() {
                    i
                } else {
                    pick(rng, &w.mixers)
                };
                for _ in 0..size {
                    add_flow(
                        &mut flows,
                        any(rng),
                        mixer,
                        1000.0 * rng.gen_range(0.98..1.02),
                        1,
                    );
                    add_flow(
                        &mut flows,
                        mixer,
                        any(rng),
                        1000.0 * rng.gen_range(0.97..1.0),
                        1,
                    );
                }
                add_flow(&mut flows, i, mixer, amount.sample(rng) * 10.0, 5);
            }
            _ => {
                for _ in 0..size / 2 {
                    add_flow(
                        &mut flows,
                        i,
                        pick(rng, &w.hubs),
                        amount.sample(rng) * 8.0,
                        rng.gen_range(2..12),
                    );
                    add_flow(
                        &mut flows,
                        pick(rng, &w.illicit_ids),
                        i,
                        amount.sample(rng) * 4.0,
                        2,
                    );
                }
            }
        }
    }
    flows
}

/// Per-address aggregates of the day's flows.
#[derive(Default, Clone)]
struct Agg {
    din: u32,
    dout: u32,
    inu: f64,
    outu: f64,
    intx: u32,
    outtx: u32,
    max: f64,
    min: f64,
    structuring: u32,
    sq: f64,
}

/// (degree in, degree out, in usd, out usd, tx in, tx out, max, min, structuring share, amount² sum).
type AggRow = (f64, f64, f64, f64, f64, f64, f64, f64, f64, f64);

impl Agg {
    fn row(&self) -> AggRow {
        let deg = (self.din + self.dout).max(1) as f64;
        let min = if self.min.is_finite() { self.min } else { 0.0 };
        (
            self.din as f64,
            self.dout as f64,
            self.inu,
            self.outu,
            self.intx as f64,
            self.outtx as f64,
            self.max,
            min,
            self.structuring as f64 / deg,
            self.sq,
        )
    }
}

/// A column being built for a table.
enum Col {
    I64(Vec<i64>),
    F64(Vec<f64>),
    F32(Vec<f32>),
    Dec(Vec<f64>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    Date(i32, usize),
    ListI64(Vec<u32>, usize),
    ListStr(Vec<Vec<String>>),
}

/// A table written in row chunks with one schema; decimal precision is set by the data, as pandas does.
struct Table {
    cols: Vec<(&'static str, Col)>,
}

fn dec_precision(v: &[f64]) -> u8 {
    let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let digits = if max < 1.0 {
        1
    } else {
        max.log10().floor() as u8 + 1
    };
    (18 + digits).clamp(19, 38)
}

fn to_dec(v: f64) -> i128 {
    (v * 1e6).round() as i128 * 1_000_000_000_000
}

impl Table {
    fn new() -> Self {
        Table { cols: Vec::new() }
    }

    fn push(&mut self, name: &'static str, c: Col) -> &mut Self {
        self.cols.push((name, c));
        self
    }

    fn rows(&self) -> usize {
        match self.cols.first().map(|c| &c.1) {
            None => 0,
            Some(Col::I64(v)) => v.len(),
            Some(Col::F64(v)) | Some(Col::Dec(v)) => v.len(),
            Some(Col::F32(v)) => v.len(),
            Some(Col::Bool(v)) => v.len(),
            Some(Col::Str(v)) => v.len(),
            Some(Col::Date(_, n)) => *n,
            Some(Col::ListI64(v, w)) => v.len() / w,
            Some(Col::ListStr(v)) => v.len(),
        }
    }

    fn slice(&self, a: usize, b: usize, precisions: &[u8]) -> Result<RecordBatch> {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for ((name, c), &p) in self.cols.iter().zip(precisions) {
            let arr: ArrayRef = match c {
                Col::I64(v) => Arc::new(Int64Array::from(v[a..b].to_vec())),
                Col::F64(v) => Arc::new(Float64Array::from(v[a..b].to_vec())),
                Col::F32(v) => Arc::new(Float32Array::from(v[a..b].to_vec())),
                Col::Dec(v) => Arc::new(
                    Decimal128Array::from_iter_values(v[a..b].iter().map(|&x| to_dec(x)))
                        .with_precision_and_scale(p, 18)?,
                ),
                Col::Bool(v) => Arc::new(BooleanArray::from(v[a..b].to_vec())),
                Col::Str(v) => Arc::new(StringArray::from_iter_values(v[a..b].iter())),
                Col::Date(d, _) => Arc::new(Date32Array::from(vec![*d; b - a])),
                Col::ListI64(v, w) => {
                    let values =
                        Int64Array::from_iter_values(v[a * w..b * w].iter().map(|&x| x as i64));
                    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(*w, b - a));
                    Arc::new(ListArray::new(
                        Arc::new(Field::new("element", DataType::Int64, true)),
                        offsets,
                        Arc::new(values),
                        None,
                    ))
                }
                Col::ListStr(v) => {
                    let rows = &v[a..b];
                    let values: StringArray = rows.iter().flatten().map(Some).collect();
                    let offsets = OffsetBuffer::from_lengths(rows.iter().map(|r| r.len()));
                    Arc::new(ListArray::new(
                        Arc::new(Field::new("element", DataType::Utf8, true)),
                        offsets,
                        Arc::new(values),
                        None,
                    ))
                }
            };
            fields.push(Field::new(*name, arr.data_type().clone(), true));
            arrays.push(arr);
        }
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
    }

    /// Writes the table to a temporary file beside `path` (renamed by the caller).
    fn write(&self, path: &Path) -> Result<TempFile> {
        let n = self.rows();
        let precisions: Vec<u8> = self
            .cols
            .iter()
            .map(|(_, c)| {
                if let Col::Dec(v) = c {
                    dec_precision(v)
                } else {
                    0
                }
            })
            .collect();
        let first = if n == 0 {
            RecordBatch::new_empty(Arc::new(Schema::empty()))
        } else {
            self.slice(0, n.min(1), &precisions)?
        };
        TempFile::write(path, |w| {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build();
            let mut writer = ArrowWriter::try_new(w, first.schema(), Some(props))?;
            const CHUNK: usize = 131_072;
            let mut a = 0;
            while a < n {
                let b = (a + CHUNK).min(n);
                writer.write(&self.slice(a, b, &precisions)?)?;
                a = b;
            }
            writer.close()?;
            Ok(())
        })
    }
}

fn severity(conf: f64) -> &'static str {
    match conf {
        c if c >= 0.9 => "critical",
        c if c >= 0.75 => "high",
        c if c >= 0.6 => "medium",
        _ => "low",
    }
}

fn generate_date(opts: &GenerateOptions, w: &World, date: NaiveDate) -> Result<DayCounts> {
    let dseed = mix(opts.seed ^ mix(date.num_days_from_ce() as u64));
    let mut rng = ChaCha8Rng::seed_from_u64(dseed);
    let n = w.addr.len();
    let date_s = date.format("%Y-%m-%d").to_string();
    let days32 = (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32;
    let midnight_ms = days32 as i64 * 86_400_000;
    let window_ms = opts.window_days as i64 * 86_400_000;

    // Money flows, deterministic order: by USD descending, then pair.
    let flows = day_flows(w, &mut rng);
    let mut flows: Vec<((u32, u32), Flow)> = flows.into_iter().collect();
    flows.sort_unstable_by(|a, b| b.1.usd.total_cmp(&a.1.usd).then(a.0.cmp(&b.0)));
    let pair_set: std::collections::HashSet<(u32, u32)> = flows.iter().map(|f| f.0).collect();

    // Per-address aggregates.
    let mut agg = vec![
        Agg {
            min: f64::INFINITY,
            ..Agg::default()
        };
        n
    ];
    for &((f, t), fl) in &flows {
        let avg = fl.usd / fl.tx as f64;
        for (a, incoming) in [(f, false), (t, true)] {
            let g = &mut agg[a as usize];
            if incoming {
                g.din += 1;
                g.inu += fl.usd;
                g.intx += fl.tx;
            } else {
                g.dout += 1;
                g.outu += fl.usd;
                g.outtx += fl.tx;
            }
            g.max = g.max.max(avg);
            g.min = g.min.min(avg);
            g.sq += avg * avg;
            g.structuring += (9000.0..10000.0).contains(&avg) as u32;
        }
    }
    let active: Vec<u32> = (0..n as u32)
        .filter(|&a| agg[a as usize].din + agg[a as usize].dout > 0)
        .collect();

    // Alerts from noisy detectors.
    let target = opts.alerts_per_day;
    let noise = Normal::new(0.0, 0.15).expect("valid");
    let mut alerts: Vec<(String, u32, usize, f64)> = Vec::new();
    let alert_typologies = |rng: &mut ChaCha8Rng,
                            a: u32,
                            home: Option<usize>,
                            out: &mut Vec<(String, u32, usize, f64)>| {
        let k = match rng.gen::<f64>() {
            x if x < 0.75 => 1,
            x if x < 0.93 => 2,
            _ => 3,
        };
        let mut used = BTreeSet::new();
        for j in 0..k {
            let t = match (j, home) {
                (0, Some(h)) if rng.gen_bool(0.7) => h,
                _ => rng.gen_range(0..TYPOLOGIES.len()),
            };
            if !used.insert(t) {
                continue;
            }
            let ill = w.illicit[a as usize];
            let base: f64 = if ill { 0.66 } else { 0.58 };
            let conf = (base + noise.sample(rng)).clamp(0.05, 0.99);
            let id = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_DNS,
                format!("{}-{}-{}", w.addr[a as usize], TYPOLOGIES[t], date_s).as_bytes(),
            )
            .to_string();
            out.push((id, a, t, conf));
        }
    };
    for &a in &w.illicit_ids {
        if target > 0 && agg[a as usize].din + agg[a as usize].dout > 0 && rng.gen_bool(0.5) {
            alert_typologies(&mut rng, a, Some(w.home[a as usize] as usize), &mut alerts);
        }
    }
    let vmax = active
        .iter()
        .map(|&a| agg[a as usize].inu + agg[a as usize].outu)
        .fold(1.0, f64::max)
        .ln_1p();
    let mut tries = 0;
    let mut chosen = BTreeSet::new();
    while alerts.len() < target && tries < target * 200 && !active.is_empty() {
        tries += 1;
        let a = active[rng.gen_range(0..active.len())];
        let g = &agg[a as usize];
        if w.illicit[a as usize] || chosen.contains(&a) {
            continue;
        }
        let weight = 0.15
            + 0.6 * ((g.inu + g.outu).ln_1p() / vmax).powi(2)
            + if w.hub[a as usize] { 0.5 } else { 0.0 };
        if rng.gen::<f64>() < weight {
            chosen.insert(a);
            alert_typologies(&mut rng, a, None, &mut alerts);
        }
    }
    alerts.sort_by(|x, y| y.0.cmp(&x.0));
    let alerted: Vec<u32> = alerts
        .iter()
        .map(|x| x.1)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let dir = crate::config::batch_dir(&opts.out, &opts.network, date, opts.window_days);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let na = alerts.len();
    let vol_of = |a: u32| agg[a as usize].inu + agg[a as usize].outu;
    let mut t_alerts = Table::new();
    t_alerts
        .push("window_days", Col::I64(vec![opts.window_days as i64; na]))
        .push("processing_date", Col::Date(days32, na))
        .push(
            "alert_id",
            Col::Str(alerts.iter().map(|x| x.0.clone()).collect()),
        )
        .push(
            "address",
            Col::Str(
                alerts
                    .iter()
                    .map(|x| w.addr[x.1 as usize].clone())
                    .collect(),
            ),
        )
        .push(
            "typology_type",
            Col::Str(alerts.iter().map(|x| TYPOLOGIES[x.2].to_string()).collect()),
        )
        .push("pattern_id", Col::Str(vec![String::new(); na]))
        .push("pattern_type", Col::Str(vec![String::new(); na]))
        .push(
            "severity",
            Col::Str(alerts.iter().map(|x| severity(x.3).to_string()).collect()),
        )
        .push(
            "suspected_address_type",
            Col::Str(
                alerts
                    .iter()
                    .map(|x| {
                        let a = x.1 as usize;
                        let h = mix(dseed ^ a as u64);
                        match () {
                            _ if w.hub[a] => "exchange",
                            _ if w.mixer[a] && h.is_multiple_of(2) => "mixer",
                            _ => {
                                ["wallet", "merchant", "institutional", "unknown"][(h % 4) as usize]
                            }
                        }
                        .to_string()
                    })
                    .collect(),
            ),
        )
        .push(
            "suspected_address_subtype",
            Col::Str(vec![String::new(); na]),
        )
        .push(
            "alert_confidence_score",
            Col::F32(alerts.iter().map(|x| x.3 as f32).collect()),
        )
        .push(
            "description",
            Col::Str(
                alerts
                    .iter()
                    .map(|x| format!("{} pattern detected", TYPOLOGIES[x.2]))
                    .collect(),
            ),
        )
        .push(
            "volume_usd",
            Col::Dec(
                alerts
                    .iter()
                    .map(|x| vol_of(x.1) * (0.05 + 0.45 * unit(mix(fnv(&x.0)))))
                    .collect(),
            ),
        )
        .push(
            "evidence_json",
            Col::Str(
                alerts
                    .iter()
                    .map(|x| {
                        json!({"degree": agg[x.1 as usize].din + agg[x.1 as usize].dout})
                            .to_string()
                    })
                    .collect(),
            ),
        )
        .push(
            "risk_indicators",
            Col::ListStr(
                alerts
                    .iter()
                    .map(|x| {
                        let k = (mix(fnv(&x.0) ^ 9) % 5) as usize;
                        [
                            "high_volume",
                            "new_counterparties",
                            "rapid_movement",
                            "round_amounts",
                        ][..k.min(4)]
                            .iter()
                            .map(|s| s.to_string())
                            .collect()
                    })
                    .collect(),
            ),
        );

    // Address features.
    let features = feature_table(
        w,
        &active
            .iter()
            .map(|&a| agg[a as usize].row())
            .collect::<Vec<_>>(),
        &active,
        days32,
        opts,
        date,
        &mut rng,
        midnight_ms,
        window_ms,
    );

    // Clusters: same_entity (an address with ≥ 2 alerts) and related_network (alerted addresses trading with each other).
    let mut by_addr: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (k, x) in alerts.iter().enumerate() {
        by_addr.entry(x.1).or_default().push(k);
    }
    let mut clusters: Vec<(String, &'static str, Vec<u32>)> = Vec::new();
    for (&a, ks) in &by_addr {
        if ks.len() >= 2 {
            clusters.push((
                format!("cluster_same_entity_{}_{}", w.addr[a as usize], date_s),
                "same_entity",
                vec![a],
            ));
        }
    }
    let mut parent: BTreeMap<u32, u32> = alerted.iter().map(|&a| (a, a)).collect();
    fn find(p: &mut BTreeMap<u32, u32>, x: u32) -> u32 {
        let mut r = x;
        while p[&r] != r {
            r = p[&r];
        }
        p.insert(x, r);
        r
    }
    for &((a, b), _) in &flows {
        if parent.contains_key(&a) && parent.contains_key(&b) {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent.insert(ra.max(rb), ra.min(rb));
            }
        }
    }
    let mut comps: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &a in &alerted {
        let r = find(&mut parent, a);
        comps.entry(r).or_default().push(a);
    }
    for members in comps.into_values().filter(|m| m.len() >= 2) {
        let members: Vec<u32> = members.into_iter().take(6).collect();
        clusters.push((
            format!(
                "cluster_related_network_{}_{}",
                w.addr[members[0] as usize], date_s
            ),
            "related_network",
            members,
        ));
    }
    let nc = clusters.len();
    let related: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            let mut ids: Vec<String> =
                c.2.iter()
                    .flat_map(|a| by_addr[a].iter().map(|&k| alerts[k].0.clone()))
                    .collect();
            ids.sort();
            ids
        })
        .collect();
    let conf_of: HashMap<&str, f64> = alerts.iter().map(|x| (x.0.as_str(), x.3)).collect();
    let mut t_clusters = Table::new();
    if nc > 0 {
        t_clusters
            .push("window_days", Col::I64(vec![opts.window_days as i64; nc]))
            .push("processing_date", Col::Date(days32, nc))
            .push(
                "cluster_id",
                Col::Str(clusters.iter().map(|c| c.0.clone()).collect()),
            )
            .push(
                "cluster_type",
                Col::Str(clusters.iter().map(|c| c.1.to_string()).collect()),
            )
            .push(
                "primary_address",
                Col::Str(
                    clusters
                        .iter()
                        .map(|c| w.addr[c.2[0] as usize].clone())
                        .collect(),
                ),
            )
            .push("pattern_id", Col::Str(vec![String::new(); nc]))
            .push(
                "primary_alert_id",
                Col::Str(related.iter().map(|r| r[0].clone()).collect()),
            )
            .push("related_alert_ids", Col::ListStr(related.clone()))
            .push(
                "addresses_involved",
                Col::ListStr(
                    clusters
                        .iter()
                        .map(|c| c.2.iter().map(|&a| w.addr[a as usize].clone()).collect())
                        .collect(),
                ),
            )
            .push(
                "total_alerts",
                Col::I64(related.iter().map(|r| r.len() as i64).collect()),
            )
            .push(
                "total_volume_usd",
                Col::Dec(clusters.iter().map(|c| vol_of(c.2[0]) * 0.3).collect()),
            )
            .push(
                "severity_max",
                Col::Str(
                    related
                        .iter()
                        .map(|r| {
                            severity(r.iter().map(|id| conf_of[id.as_str()]).fold(0.0, f64::max))
                                .to_string()
                        })
                        .collect(),
                ),
            )
            .push(
                "confidence_avg",
                Col::F32(
                    related
                        .iter()
                        .map(|r| {
                            (r.iter().map(|id| conf_of[id.as_str()]).sum::<f64>() / r.len() as f64)
                                as f32
                        })
                        .collect(),
                ),
            )
            .push("earliest_alert_timestamp", Col::I64(vec![midnight_ms; nc]))
            .push("latest_alert_timestamp", Col::I64(vec![midnight_ms; nc]));
    }

    // Money flows.
    let nf = flows.len();
    let mut hourly = Vec::with_capacity(nf * 24);
    let mut weekly = Vec::with_capacity(nf * 7);
    for (k, f) in flows.iter().enumerate() {
        let h = mix(dseed ^ k as u64);
        let mut hrs = [0u32; 24];
        let mut wk = [0u32; 7];
        for j in 0..f.1.tx.min(3) {
            let share = f.1.tx / f.1.tx.min(3) + u32::from(j < f.1.tx % f.1.tx.min(3));
            hrs[((h >> (j * 5)) % 24) as usize] += share;
            wk[((h >> (j * 3 + 20)) % 7) as usize] += share;
        }
        hourly.extend_from_slice(&hrs);
        weekly.extend_from_slice(&wk);
    }
    let recip: Vec<f32> = flows
        .iter()
        .map(|((a, b), f)| match pair_set.contains(&(*b, *a)) {
            true => 0.5f32.min(f.usd as f32 / (f.usd as f32 + 1.0)),
            false => 0.0,
        })
        .collect();
    let mut t_flows = Table::new();
    t_flows
        .push(
            "from_address",
            Col::Str(
                flows
                    .iter()
                    .map(|f| w.addr[f.0 .0 as usize].clone())
                    .collect(),
            ),
        )
        .push(
            "to_address",
            Col::Str(
                flows
                    .iter()
                    .map(|f| w.addr[f.0 .1 as usize].clone())
                    .collect(),
            ),
        )
        .push(
            "tx_count",
            Col::I64(flows.iter().map(|f| f.1.tx as i64).collect()),
        )
        .push(
            "amount_sum",
            Col::Dec(flows.iter().map(|f| f.1.usd / 1.7).collect()),
        )
        .push(
            "amount_usd_sum",
            Col::Dec(flows.iter().map(|f| f.1.usd).collect()),
        )
        .push(
            "first_seen_timestamp",
            Col::I64(
                flows
                    .iter()
                    .enumerate()
                    .map(|(k, _)| {
                        midnight_ms - window_ms
                            + (mix(dseed ^ k as u64 ^ 7) % window_ms as u64 / 2) as i64
                    })
                    .collect(),
            ),
        )
        .push(
            "last_seen_timestamp",
            Col::I64(
                flows
                    .iter()
                    .enumerate()
                    .map(|(k, _)| {
                        midnight_ms - (mix(dseed ^ k as u64 ^ 8) % window_ms as u64 / 2) as i64
                    })
                    .collect(),
            ),
        )
        .push(
            "active_days",
            Col::I64(
                flows
                    .iter()
                    .map(|f| f.1.tx.min(opts.window_days) as i64)
                    .collect(),
            ),
        )
        .push(
            "avg_tx_size_usd",
            Col::Dec(flows.iter().map(|f| f.1.usd / f.1.tx as f64).collect()),
        )
        .push(
            "unique_assets",
            Col::I64(flows.iter().map(|f| 1 + (f.1.tx > 5) as i64).collect()),
        )
        .push(
            "dominant_asset",
            Col::Str(
                flows
                    .iter()
                    .map(|f| if f.1.usd > 5000.0 { "USDT" } else { "TOR" }.to_string())
                    .collect(),
            ),
        )
        .push("hourly_pattern", Col::ListI64(hourly, 24))
        .push("weekly_pattern", Col::ListI64(weekly, 7))
        .push("reciprocity_ratio", Col::F32(recip.clone()))
        .push(
            "is_bidirectional",
            Col::Bool(recip.iter().map(|&r| r > 0.0).collect()),
        )
        .push("processing_date", Col::Str(vec![date_s.clone(); nf]))
        .push("window_days", Col::I64(vec![opts.window_days as i64; nf]));

    // The four files are encoded in parallel, then moved into place.
    let tables = [
        ("alerts.parquet", &t_alerts),
        ("features.parquet", &features),
        ("clusters.parquet", &t_clusters),
        ("money_flows.parquet", &t_flows),
    ];
    let temps: Vec<(&str, TempFile)> = std::thread::scope(|s| {
        let handles: Vec<_> = tables
            .iter()
            .map(|&(name, t)| {
                let path = dir.join(name);
                s.spawn(move || t.write(&path).map(|f| (name, f)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect::<Result<Vec<_>>>()
    })?;
    let mut sums = serde_json::Map::new();
    for (name, tmp) in temps {
        tmp.commit()?;
        sums.insert(name.to_string(), json!(sha256_file(&dir.join(name))?));
    }
    let meta = json!({
        "schema_version": "1.0.0",
        "batch_id": format!("{}-{}-{}d", opts.network, date_s, opts.window_days),
        "network": opts.network,
        "processing_date": date_s,
        "window_days": opts.window_days,
        "generated_at": format!("{date_s}T00:00:00Z"),
        "counts": {"alerts": na, "features": active.len(), "clusters": nc, "money_flows": nf, "address_labels": 0},
        "sha256": sums,
    });
    crate::io::write_json(&dir.join("META.json"), &meta)?;
    Ok(DayCounts {
        alerts: na,
        features: active.len(),
        clusters: nc,
        flows: nf,
        alerted,
        alert_ids: alerts.into_iter().map(|x| (x.0, x.1)).collect(),
    })
}

#[allow(clippy::too_many_arguments)]
fn feature_table(
    w: &World,
    rows: &[AggRow],
    active: &[u32],
    days32: i32,
    opts: &GenerateOptions,
    date: NaiveDate,
    rng: &mut ChaCha8Rng,
    midnight_ms: i64,
    window_ms: i64,
) -> Table {
    let n = active.len();
    let drift = date >= drift_date();
    let ill: Vec<bool> = active.iter().map(|&a| w.illicit[a as usize]).collect();
    let noise = Normal::new(0.0, 0.18).expect("valid");
    let mut score = |base: f64, shift: f64| -> Vec<f32> {
        (0..n)
            .map(|i| {
                (base + noise.sample(rng) + if ill[i] { shift } else { 0.0 }).clamp(0.0, 1.0) as f32
            })
            .collect()
    };
    let col = |f: &dyn Fn(&AggRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let din = col(&|r| r.0);
    let dout = col(&|r| r.1);
    let inu = col(&|r| r.2);
    let outu = col(&|r| r.3);
    let txin = col(&|r| r.4);
    let txout = col(&|r| r.5);
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let mut t = Table::new();
    let ints = |v: &[f64]| Col::I64(v.iter().map(|&x| x as i64).collect());
    let total: Vec<f64> = (0..n).map(|i| inu[i] + outu[i]).collect();
    let txt: Vec<f64> = (0..n).map(|i| txin[i] + txout[i]).collect();
    let mean_amt: Vec<f64> = (0..n).map(|i| div(total[i], txt[i])).collect();
    let var: Vec<f64> = (0..n)
        .map(|i| (div(rows[i].9, din[i] + dout[i]) - mean_amt[i] * mean_amt[i]).abs())
        .collect();
    let hash = |i: usize, k: u64| unit(mix(mix(active[i] as u64 ^ opts.seed) ^ k ^ days32 as u64));
    t.push("window_days", Col::I64(vec![opts.window_days as i64; n]))
        .push("processing_date", Col::Date(days32, n))
        .push(
            "address",
            Col::Str(active.iter().map(|&a| w.addr[a as usize].clone()).collect()),
        )
        .push("degree_in", ints(&din))
        .push("degree_out", ints(&dout))
        .push(
            "degree_total",
            ints(&(0..n).map(|i| din[i] + dout[i]).collect::<Vec<_>>()),
        )
        .push(
            "unique_counterparties",
            ints(&(0..n).map(|i| din[i] + dout[i]).collect::<Vec<_>>()),
        )
        .push("total_in_usd", Col::Dec(inu.clone()))
        .push("total_out_usd", Col::Dec(outu.clone()))
        .push(
            "net_flow_usd",
            Col::Dec((0..n).map(|i| inu[i] - outu[i]).collect()),
        )
        .push("total_volume_usd", Col::Dec(total.clone()))
        .push(
            "avg_tx_in_usd",
            Col::Dec((0..n).map(|i| div(inu[i], txin[i])).collect()),
        )
        .push(
            "avg_tx_out_usd",
            Col::Dec((0..n).map(|i| div(outu[i], txout[i])).collect()),
        )
        .push(
            "median_tx_in_usd",
            Col::Dec(
                (0..n)
                    .map(|i| div(inu[i], txin[i]) * (0.6 + 0.4 * hash(i, 1)))
                    .collect(),
            ),
        )
        .push(
            "median_tx_out_usd",
            Col::Dec(
                (0..n)
                    .map(|i| div(outu[i], txout[i]) * (0.6 + 0.4 * hash(i, 2)))
                    .collect(),
            ),
        )
        .push("max_tx_usd", Col::Dec(col(&|r| r.6)))
        .push("min_tx_usd", Col::Dec(col(&|r| r.7)))
        .push("amount_variance", Col::F64(var.clone()))
        .push(
            "amount_skewness",
            Col::F64((0..n).map(|i| (hash(i, 3) - 0.5) * 4.0).collect()),
        )
        .push(
            "amount_kurtosis",
            Col::F64((0..n).map(|i| hash(i, 4) * 10.0).collect()),
        )
        .push(
            "volume_std",
            Col::F64(var.iter().map(|v| v.sqrt()).collect()),
        )
        .push(
            "volume_cv",
            Col::F64((0..n).map(|i| div(var[i].sqrt(), mean_amt[i])).collect()),
        )
        .push(
            "flow_concentration",
            Col::F64((0..n).map(|i| div(rows[i].6, total[i]).min(1.0)).collect()),
        )
        .push("tx_in_count", ints(&txin))
        .push("tx_out_count", ints(&txout))
        .push("tx_total_count", ints(&txt))
        .push(
            "activity_days",
            Col::I64(
                txt.iter()
                    .map(|&x| (x as i64).min(opts.window_days as i64))
                    .collect(),
            ),
        )
        .push(
            "activity_span_days",
            Col::I64(
                (0..n)
                    .map(|i| (hash(i, 5) * opts.window_days as f64) as i64)
                    .collect(),
            ),
        )
        .push(
            "avg_daily_volume_usd",
            Col::Dec(total.iter().map(|v| v / opts.window_days as f64).collect()),
        )
        .push(
            "peak_hour",
            Col::I64((0..n).map(|i| (hash(i, 6) * 24.0) as i64).collect()),
        )
        .push(
            "peak_day",
            Col::I64((0..n).map(|i| (hash(i, 7) * 7.0) as i64).collect()),
        )
        .push("regularity_score", Col::F32(score(0.5, -0.1)))
        .push("burst_factor", Col::F32(score(0.3, 0.2)))
        .push("reciprocity_ratio", Col::F32(score(0.2, 0.1)))
        .push("flow_diversity", Col::F32(score(0.5, 0.0)))
        .push(
            "counterparty_concentration",
            Col::F32((0..n).map(|i| div(1.0, din[i] + dout[i]) as f32).collect()),
        )
        .push("concentration_ratio", Col::F32(score(0.4, 0.05)))
        .push("velocity_score", Col::F32(score(0.35, 0.2)))
        .push(
            "structuring_score",
            Col::F32(
                (0..n)
                    .map(|i| (rows[i].8 * 0.7 + 0.1 * hash(i, 8)) as f32)
                    .collect(),
            ),
        )
        .push(
            "unique_assets_in",
            Col::I64((0..n).map(|i| 1 + (hash(i, 9) * 3.0) as i64).collect()),
        )
        .push(
            "unique_assets_out",
            Col::I64((0..n).map(|i| 1 + (hash(i, 10) * 3.0) as i64).collect()),
        )
        .push("dominant_asset_in", Col::Str(vec!["TOR".to_string(); n]))
        .push("dominant_asset_out", Col::Str(vec!["TOR".to_string(); n]))
        .push("asset_diversity_score", Col::F32(score(0.3, 0.0)));
    let hourly: Vec<u32> = (0..n * 24)
        .map(|k| (mix(active[k / 24] as u64 ^ k as u64 ^ days32 as u64) % 4) as u32)
        .collect();
    let daily: Vec<u32> = (0..n * 7)
        .map(|k| (mix(active[k / 7] as u64 ^ k as u64 ^ 77) % 6) as u32)
        .collect();
    t.push("hourly_activity", Col::ListI64(hourly, 24))
        .push("daily_activity", Col::ListI64(daily, 7))
        .push(
            "peak_activity_hour",
            Col::I64((0..n).map(|i| (hash(i, 11) * 24.0) as i64).collect()),
        )
        .push(
            "peak_activity_day",
            Col::I64((0..n).map(|i| (hash(i, 12) * 7.0) as i64).collect()),
        )
        .push("hourly_entropy", Col::F32(score(0.6, -0.1)))
        .push("daily_entropy", Col::F32(score(0.6, 0.0)))
        .push("weekend_transaction_ratio", Col::F32(score(0.28, 0.0)))
        .push("night_transaction_ratio", Col::F32(score(0.2, 0.12)))
        .push("small_transaction_ratio", Col::F32(score(0.4, 0.1)))
        .push("consistency_score", Col::F32(score(0.5, -0.1)))
        .push(
            "pagerank",
            Col::F32(
                (0..n)
                    .map(|i| ((din[i] + 1.0) / 1e4 * (0.5 + hash(i, 13))) as f32)
                    .collect(),
            ),
        )
        .push(
            "betweenness",
            Col::F32(
                (0..n)
                    .map(|i| (hash(i, 14) * 0.01 * (din[i] + dout[i]).sqrt()) as f32)
                    .collect(),
            ),
        )
        .push("closeness", Col::F32(score(0.3, 0.05)))
        .push("clustering_coefficient", Col::F32(score(0.1, 0.05)))
        .push(
            "kcore",
            Col::I64(
                (0..n)
                    .map(|i| (din[i] + dout[i]).min(1.0 + hash(i, 15) * 8.0) as i64)
                    .collect(),
            ),
        )
        .push(
            "community_id",
            Col::I64((0..n).map(|i| (hash(i, 16) * 1000.0) as i64).collect()),
        )
        .push("centrality_score", Col::F32(score(0.2, 0.08)))
        .push(
            "khop1_count",
            ints(&(0..n).map(|i| din[i] + dout[i]).collect::<Vec<_>>()),
        )
        .push(
            "khop2_count",
            ints(
                &(0..n)
                    .map(|i| (din[i] + dout[i]) * (3.0 + hash(i, 17) * 4.0))
                    .collect::<Vec<_>>(),
            ),
        )
        .push(
            "khop3_count",
            ints(
                &(0..n)
                    .map(|i| (din[i] + dout[i]) * (10.0 + hash(i, 18) * 20.0))
                    .collect::<Vec<_>>(),
            ),
        )
        .push("khop1_volume_usd", Col::Dec(total.clone()))
        .push(
            "khop2_volume_usd",
            Col::Dec(
                total
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * (2.0 + hash(i, 19) * 3.0))
                    .collect(),
            ),
        )
        .push(
            "khop3_volume_usd",
            Col::Dec(
                total
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * (5.0 + hash(i, 20) * 10.0))
                    .collect(),
            ),
        )
        .push("flow_reciprocity_entropy", Col::F32(score(0.3, 0.05)))
        .push("counterparty_stability", Col::F32(score(0.5, -0.15)))
        .push("flow_burstiness", Col::F32(score(0.3, 0.15)))
        .push("transaction_regularity", Col::F32(score(0.5, -0.1)))
        .push("amount_predictability", Col::F32(score(0.4, 0.1)));
    if !drift {
        t.push("behavioral_anomaly_score", Col::F32(score(0.25, 0.2)))
            .push("graph_anomaly_score", Col::F32(score(0.25, 0.15)))
            .push("neighborhood_anomaly_score", Col::F32(score(0.25, 0.1)))
            .push("global_anomaly_score", Col::F32(score(0.25, 0.18)))
            .push(
                "outlier_transactions",
                Col::I64(
                    (0..n)
                        .map(|i| (hash(i, 21) * if ill[i] { 8.0 } else { 4.0 }) as i64)
                        .collect(),
                ),
            )
            .push("suspicious_pattern_score", Col::F32(score(0.2, 0.2)))
            .push(
                "is_exchange_like",
                Col::Bool(active.iter().map(|&a| w.hub[a as usize]).collect()),
            )
            .push(
                "is_whale",
                Col::Bool(total.iter().map(|&v| v > 1e6).collect()),
            )
            .push(
                "is_mixer_like",
                Col::Bool(
                    (0..n)
                        .map(|i| w.mixer[active[i] as usize] && hash(i, 22) < 0.7)
                        .collect(),
                ),
            )
            .push(
                "is_contract_like",
                Col::Bool((0..n).map(|i| hash(i, 23) < 0.05).collect()),
            );
    }
    t.push(
        "is_new_address",
        Col::Bool(
            (0..n)
                .map(|i| hash(i, 24) < if ill[i] { 0.25 } else { 0.1 })
                .collect(),
        ),
    )
    .push(
        "is_dormant_reactivated",
        Col::Bool(
            (0..n)
                .map(|i| hash(i, 25) < if ill[i] { 0.1 } else { 0.03 })
                .collect(),
        ),
    );
    if !drift {
        t.push(
            "is_high_volume_trader",
            Col::Bool(total.iter().map(|&v| v > 2e5).collect()),
        )
        .push(
            "is_hub_address",
            Col::Bool(active.iter().map(|&a| w.hub[a as usize]).collect()),
        )
        .push(
            "is_retail_active",
            Col::Bool((0..n).map(|i| txt[i] > 5.0 && total[i] < 5e4).collect()),
        )
        .push(
            "is_whale_inactive",
            Col::Bool((0..n).map(|i| hash(i, 26) < 0.01).collect()),
        )
        .push(
            "is_retail_inactive",
            Col::Bool((0..n).map(|i| txt[i] <= 2.0).collect()),
        )
        .push(
            "is_regular_user",
            Col::Bool((0..n).map(|i| hash(i, 27) < 0.5).collect()),
        );
    }
    t.push("unique_recipients_count", ints(&dout))
        .push("unique_senders_count", ints(&din))
        .push("completeness_score", Col::F32(score(0.8, 0.0)))
        .push("quality_score", Col::F32(score(0.7, 0.0)))
        .push("outlier_score", Col::F32(score(0.2, 0.15)))
        .push("confidence_score", Col::F32(score(0.6, 0.0)))
        .push(
            "first_activity_timestamp",
            Col::I64(
                (0..n)
                    .map(|i| midnight_ms - (hash(i, 28) * window_ms as f64) as i64)
                    .collect(),
            ),
        )
        .push(
            "last_activity_timestamp",
            Col::I64(
                (0..n)
                    .map(|i| midnight_ms - (hash(i, 29) * 86_400_000.0) as i64)
                    .collect(),
            ),
        );
    t
}

fn write_labels(
    opts: &GenerateOptions,
    w: &World,
    alerted: &BTreeSet<u32>,
    path: &Path,
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
    for a in 0..w.addr.len() as u32 {
        let h = mix(opts.seed ^ 0x6c61_6265 ^ mix(a as u64));
        let p = if alerted.contains(&a) { 0.3 } else { 0.01 };
        if unit(h) >= p {
            continue;
        }
        let flip = unit(mix(h ^ 1)) < 0.03;
        let bad = w.illicit[a as usize] ^ flip;
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
            w.addr[a as usize].clone(),
            (
                label.into(),
                risk.into(),
                (0.5 + 0.5 * unit(mix(h ^ 3))) as f32,
            ),
        );
    }
    let n = rows.len();
    let mut t = Table::new();
    t.push("network", Col::Str(vec![opts.network.clone(); n]))
        .push("network_type", Col::Str(vec!["substrate".into(); n]))
        .push("address", Col::Str(rows.keys().cloned().collect()))
        .push(
            "label",
            Col::Str(rows.values().map(|r| r.0.clone()).collect()),
        )
        .push(
            "address_type",
            Col::Str(
                rows.values()
                    .map(|r| {
                        if r.0 == "exchange" {
                            "exchange"
                        } else {
                            "wallet"
                        }
                        .into()
                    })
                    .collect(),
            ),
        )
        .push("address_subtype", Col::Str(vec![String::new(); n]))
        .push("trust_level", Col::Str(vec!["verified".into(); n]))
        .push("source", Col::Str(vec!["synthetic".into(); n]))
        .push(
            "risk_level",
            Col::Str(rows.values().map(|r| r.1.clone()).collect()),
        )
        .push(
            "confidence_score",
            Col::F32(rows.values().map(|r| r.2).collect()),
        )
        .push("created_timestamp", Col::I64(vec![0; n]))
        .push("updated_timestamp", Col::I64(vec![0; n]));
    t.write(path)?.commit()?;
    Ok(n)
}

fn write_truth(mut truth: BTreeMap<String, bool>, path: &Path) -> Result<usize> {
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
    let mut t = Table::new();
    t.push("alert_id", Col::Str(truth.keys().cloned().collect()))
        .push("is_sar_filed", Col::Bool(truth.values().copied().collect()));
    t.write(path)?.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::ParquetSource;

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
    fn a_day_without_clusters_is_a_zero_column_file() {
        let d = tempfile::tempdir().unwrap();
        generate(&opts(d.path(), &["2025-10-01"], 0), &mut |_| {}).unwrap();
        let s =
            ParquetSource::open(&d.path().join("torus/2025-10-01/195/clusters.parquet")).unwrap();
        assert_eq!((s.num_rows(), s.schema().fields().len()), (0, 0));
    }
}
