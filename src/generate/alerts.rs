//! The day's alerts from noisy detectors, and the `alerts` table.

use super::flows::Agg;
use super::world::{fnv, mix, unit};
use super::writer::{Col, Table};
use super::Day;
use crate::features::TYPOLOGIES;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::json;
use std::collections::BTreeSet;

/// One alert of the day.
pub(super) struct Alert {
    /// UUIDv5 of address, typology and date.
    pub(super) id: String,
    /// Address id.
    pub(super) addr: u32,
    /// Index into [`TYPOLOGIES`].
    pub(super) typology: usize,
    /// Detector confidence.
    pub(super) conf: f64,
}

/// Severity bucket of a confidence.
pub(super) fn severity(conf: f64) -> &'static str {
    match conf {
        c if c >= 0.9 => "critical",
        c if c >= 0.75 => "high",
        c if c >= 0.6 => "medium",
        _ => "low",
    }
}

/// The id of the alert of the day on address `a` for typology `t`, as upstream makes it.
pub(super) fn alert_id(day: &Day, a: u32, t: usize) -> String {
    let text = format!(
        "{}-{}-{}",
        day.world.addr(a).as_ref(),
        TYPOLOGIES[t],
        day.date_s
    );
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, text.as_bytes()).to_string()
}

/// The day's alerts, by id descending: about half of the active illicit addresses, then benign
/// false positives drawn from the `active` addresses, leaning toward hubs and high volumes.
pub(super) fn day_alerts(
    day: &Day,
    agg: &[Agg],
    active: &[u32],
    rng: &mut ChaCha8Rng,
) -> Vec<Alert> {
    let w = day.world;
    let target = day.opts.alerts_per_day;
    let noise = Normal::new(0.0, 0.15).expect("valid");
    let mut alerts: Vec<Alert> = Vec::new();
    let alert_typologies =
        |rng: &mut ChaCha8Rng, a: u32, home: Option<usize>, out: &mut Vec<Alert>| {
            let k = typology_count(rng);
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
                out.push(Alert {
                    id: alert_id(day, a, t),
                    addr: a,
                    typology: t,
                    conf,
                });
            }
        };
    for &a in &w.illicit_ids {
        if target > 0 && agg[a as usize].degree() > 0 && rng.gen_bool(0.5) {
            alert_typologies(rng, a, Some(w.home[a as usize] as usize), &mut alerts);
        }
    }
    let vmax = active
        .iter()
        .map(|&a| agg[a as usize].volume())
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
            + 0.6 * (g.volume().ln_1p() / vmax).powi(2)
            + if w.hub[a as usize] { 0.5 } else { 0.0 };
        if rng.gen::<f64>() < weight {
            chosen.insert(a);
            alert_typologies(rng, a, None, &mut alerts);
        }
    }
    alerts.sort_by(|x, y| y.id.cmp(&x.id));
    alerts
}

/// The `alerts` table of the day.
pub(super) fn alerts_table<'a>(day: &'a Day, alerts: &'a [Alert], agg: &'a [Agg]) -> Table<'a> {
    let (w, dseed, window_days) = (day.world, day.dseed, day.opts.window_days);
    let mut t = Table::new(alerts.len());
    t.encoded(day.encoding);
    t.push("window_days", Col::i64(move |_| window_days as i64))
        .push("processing_date", Col::Date(day.days32))
        .push("alert_id", Col::str(move |i| &alerts[i].id))
        .push("address", Col::str(move |i| w.addr(alerts[i].addr)))
        .push(
            "typology_type",
            Col::str(move |i| TYPOLOGIES[alerts[i].typology]),
        )
        .push("pattern_id", Col::str(|_| ""))
        .push("pattern_type", Col::str(|_| ""))
        .push("severity", Col::str(move |i| severity(alerts[i].conf)))
        .push(
            "suspected_address_type",
            Col::str(move |i| {
                let a = alerts[i].addr as usize;
                let h = mix(dseed ^ a as u64);
                match () {
                    _ if w.hub[a] => "exchange",
                    _ if w.mixer[a] && h.is_multiple_of(2) => "mixer",
                    _ => ["wallet", "merchant", "institutional", "unknown"][(h % 4) as usize],
                }
            }),
        )
        .push("suspected_address_subtype", Col::str(|_| ""))
        .push(
            "alert_confidence_score",
            Col::f32(move |i| alerts[i].conf as f32),
        )
        .push(
            "description",
            Col::str(move |i| format!("{} pattern detected", TYPOLOGIES[alerts[i].typology])),
        )
        .push(
            "volume_usd",
            Col::dec(move |i| {
                let x = &alerts[i];
                agg[x.addr as usize].volume() * (0.05 + 0.45 * unit(mix(fnv(&x.id))))
            }),
        )
        .push(
            "evidence_json",
            Col::str(move |i| json!({"degree": agg[alerts[i].addr as usize].degree()}).to_string()),
        )
        .push(
            "risk_indicators",
            Col::list_str(move |i| {
                let k = (mix(fnv(&alerts[i].id) ^ 9) % 5) as usize;
                &[
                    "high_volume",
                    "new_counterparties",
                    "rapid_movement",
                    "round_amounts",
                ][..k.min(4)]
            }),
        );
    t
}

/// How many typologies one alerted address is flagged with: 1 (75%), 2 (18%) or 3 (7%).
pub(super) fn typology_count(rng: &mut ChaCha8Rng) -> usize {
    match rng.gen::<f64>() {
        x if x < 0.75 => 1,
        x if x < 0.93 => 2,
        _ => 3,
    }
}
