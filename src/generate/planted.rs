//! The planted patterns of a date in the laundering world, by address and date: what tests
//! and notebooks check the money flows against, and the answer key `pipeline generate
//! --patterns` writes.

use super::background::Activity;
use super::patterns::active_on;
use super::profile::{Kind, Laundering};
use super::world::World;
use super::{universe, GenerateOptions};
use anyhow::Result;
use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use std::sync::Arc;

/// One transfer of a planted pattern.
#[derive(Debug, Clone)]
pub struct PlantedHop {
    /// Sending address.
    pub from: String,
    /// Receiving address.
    pub to: String,
    /// Amount in USD.
    pub amount_usd: f64,
    /// Number of transactions.
    pub tx_count: u32,
    /// The processing date whose `money_flows.parquet` holds the transfer (the day after it).
    pub date: NaiveDate,
}

/// One planted pattern instance.
#[derive(Debug, Clone)]
pub struct Planted {
    /// Which of the eight patterns.
    pub kind: Kind,
    /// The processing date of its first possible transfer.
    pub start: NaiveDate,
    /// Its number among the instances of its kind with the same start.
    pub number: usize,
    /// Its transfers, in the order drawn.
    pub hops: Vec<PlantedHop>,
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
}

/// Days since the epoch (the generator's days, and Parquet's date32).
fn days(d: NaiveDate) -> i32 {
    (d - epoch()).num_days() as i32
}

/// The laundering world's pattern instances with a transfer in the money flows of `date`, for
/// the universe, seed and alerts of `opts`.
pub fn planted(opts: &GenerateOptions, cfg: &Laundering, date: NaiveDate) -> Vec<Planted> {
    let n = universe(opts);
    let w = World::laundering(
        opts.seed,
        n,
        cfg.pool_share,
        Activity::new(opts.seed, n).hubs(),
    );
    let date_of = |t: i32| epoch() + chrono::Days::new(t as u64 + 1);
    active_on(&w, cfg, opts.seed, opts.alerts_per_day, days(date) - 1)
        .into_iter()
        .map(|i| Planted {
            kind: i.kind,
            start: date_of(i.start),
            number: i.number,
            hops: i
                .hops
                .iter()
                .map(|h| PlantedHop {
                    from: w.addr(h.from).as_ref().to_string(),
                    to: w.addr(h.to).as_ref().to_string(),
                    amount_usd: h.usd,
                    tx_count: h.tx,
                    date: date_of(h.day()),
                })
                .collect(),
        })
        .collect()
}

/// The answer key of `dates`: one row per planted transfer, in the processing date whose money
/// flows hold it (`processing_date`, `pattern_id` = `{start}/{pattern}/{number}`, `pattern`,
/// `pattern_start`, `from_address`, `to_address`, `amount_usd`, `tx_count`), by date, then
/// instance, then the order drawn.
pub fn answer_key(
    opts: &GenerateOptions,
    cfg: &Laundering,
    dates: &[NaiveDate],
) -> Result<RecordBatch> {
    let (mut date, mut id, mut kind, mut start) = (vec![], vec![], vec![], vec![]);
    let (mut from, mut to, mut usd, mut tx) = (vec![], vec![], vec![], vec![]);
    for &d in dates {
        for p in planted(opts, cfg, d) {
            for h in p.hops.iter().filter(|h| h.date == d) {
                date.push(days(d));
                id.push(format!("{}/{}/{}", p.start, p.kind.name(), p.number));
                kind.push(p.kind.name());
                start.push(days(p.start));
                from.push(h.from.clone());
                to.push(h.to.clone());
                usd.push(h.amount_usd);
                tx.push(h.tx_count as i64);
            }
        }
    }
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("processing_date", Arc::new(Date32Array::from(date))),
        ("pattern_id", Arc::new(StringArray::from(id))),
        ("pattern", Arc::new(StringArray::from(kind))),
        ("pattern_start", Arc::new(Date32Array::from(start))),
        ("from_address", Arc::new(StringArray::from(from))),
        ("to_address", Arc::new(StringArray::from(to))),
        ("amount_usd", Arc::new(Float64Array::from(usd))),
        ("tx_count", Arc::new(Int64Array::from(tx))),
    ];
    let schema = Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), false))
            .collect::<Vec<_>>(),
    );
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        cols.into_iter().map(|(_, a)| a).collect(),
    )?)
}
