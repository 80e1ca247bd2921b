//! The planted patterns of a date in the laundering world, by address and date: what tests
//! and notebooks check the money flows against.

use super::background::Activity;
use super::patterns::active_on;
use super::profile::{Kind, Laundering};
use super::world::World;
use super::{universe, GenerateOptions};
use chrono::NaiveDate;

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
    /// Its transfers, in the order drawn.
    pub hops: Vec<PlantedHop>,
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
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let days = |d: NaiveDate| (d - epoch).num_days() as i32;
    let date_of = |t: i32| epoch + chrono::Days::new(t as u64 + 1);
    active_on(&w, cfg, opts.seed, opts.alerts_per_day, days(date) - 1)
        .into_iter()
        .map(|i| Planted {
            kind: i.kind,
            start: date_of(i.start),
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
