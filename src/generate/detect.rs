//! The laundering profile's noisy detectors: a few alerts on the addresses laundering that day,
//! as many as the SAR rate asks for, and false positives on the rest, leaning toward busy
//! addresses, exchanges and legitimate structuring.

use super::alerts::{alert_id, typology_count, Alert};
use super::background::Activity;
use super::flows::Agg;
use super::profile::{Kind, Laundering};
use super::Day;
use crate::features::TYPOLOGIES;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::collections::{BTreeMap, BTreeSet};

/// The typologies a detector reports for a pattern, most often the first.
fn typologies_of(kind: Kind) -> [&'static str; 2] {
    match kind {
        Kind::FanOut => ["RAPID_FANOUT", "MOTIF_FANOUT"],
        Kind::FanIn => ["MOTIF_FANIN", "SMURFING_NETWORK"],
        Kind::GatherScatter => ["SMURFING_NETWORK", "MOTIF_FANIN"],
        Kind::ScatterGather => ["MOTIF_FANOUT", "LAYERING_PATH"],
        Kind::Cycle => ["CYCLE_DETECTION", "PING_PONG"],
        Kind::RandomWalk => ["PEEL_CHAIN", "LAYERING_PATH"],
        Kind::Bipartite => ["MIXING_BEHAVIOR", "SMURFING_NETWORK"],
        Kind::Stack => ["LAYERING_PATH", "MIXING_BEHAVIOR"],
    }
}

fn typology(name: &str) -> usize {
    TYPOLOGIES
        .iter()
        .position(|t| *t == name)
        .expect("a known typology")
}

/// Detector confidence: weakly higher on laundering addresses.
fn confidence(rng: &mut ChaCha8Rng, laundering: bool) -> f64 {
    let base: f64 = if laundering { 0.61 } else { 0.58 };
    (base + Normal::new(0.0, 0.15).expect("valid").sample(rng)).clamp(0.05, 0.99)
}

/// Appends 1 to 3 alerts on `a` (distinct typologies); the first is `hint` with probability
/// `p_hint`, the others uniform.
fn alert_address(
    day: &Day,
    rng: &mut ChaCha8Rng,
    a: u32,
    hint: Option<(&[&str], f64)>,
    laundering: bool,
    out: &mut Vec<Alert>,
) {
    let k = typology_count(rng);
    let mut used = BTreeSet::new();
    for j in 0..k {
        let t = match hint {
            Some((names, p)) if j == 0 && rng.gen_bool(p) => {
                typology(names[rng.gen_range(0..names.len())])
            }
            _ => rng.gen_range(0..TYPOLOGIES.len()),
        };
        if used.insert(t) {
            let conf = confidence(rng, laundering);
            out.push(Alert {
                id: alert_id(day, a, t),
                addr: a,
                typology: t,
                conf,
            });
        }
    }
}

/// The day's alerts, by id descending: alerts on `launderers` (addresses laundering that day,
/// in random order) until their share of `alerts_per_day` is the one the SAR rate asks for,
/// then false positives among the other `active` addresses.
pub(super) fn day_alerts(
    day: &Day,
    cfg: &Laundering,
    act: &Activity,
    agg: &[Agg],
    active: &[u32],
    launderers: &BTreeMap<u32, Kind>,
    rng: &mut ChaCha8Rng,
) -> Vec<Alert> {
    let w = day.world;
    let target = day.opts.alerts_per_day;
    let mut alerts = Vec::new();
    let want = (target as f64 * cfg.laundering_alert_share()).round() as usize;
    let mut order: Vec<(u32, Kind)> = launderers.iter().map(|(&a, &k)| (a, k)).collect();
    order.shuffle(rng);
    for (a, kind) in order {
        if alerts.len() >= want {
            break;
        }
        let names = typologies_of(kind);
        alert_address(day, rng, a, Some((&names, 0.4)), true, &mut alerts);
    }
    let vmax = active
        .iter()
        .map(|&a| agg[a as usize].volume())
        .fold(1.0, f64::max)
        .ln_1p();
    let (mut tries, mut chosen) = (0, BTreeSet::new());
    while alerts.len() < target && tries < target * 200 && !active.is_empty() {
        tries += 1;
        let a = active[rng.gen_range(0..active.len())];
        if launderers.contains_key(&a) || chosen.contains(&a) {
            continue;
        }
        let (hub, structurer) = (w.hub[a as usize], act.structurer(a));
        let weight = 0.15
            + 0.6 * (agg[a as usize].volume().ln_1p() / vmax).powi(2)
            + if hub { 0.5 } else { 0.0 }
            + if structurer { 0.5 } else { 0.0 };
        if rng.gen::<f64>() < weight {
            chosen.insert(a);
            let hint: Option<(&[&str], f64)> = match (structurer, hub) {
                (true, _) => Some((&["STRUCTURING", "INTRADAY_STRUCTURING"], 0.5)),
                (_, true) => Some((&["HUB_ANOMALY", "FRESH_TO_EXCHANGE"], 0.4)),
                _ => None,
            };
            alert_address(day, rng, a, hint, false, &mut alerts);
        }
    }
    alerts.sort_by(|x, y| y.id.cmp(&x.id));
    alerts
}
