//! Features of the alert itself, of the processing date, and of the day's other alerts.

use super::{
    address_type_code, f64_col, get_f, mean_std, pct_rank, severity_code, str_col, Columns, Day,
    TYPOLOGIES,
};
use anyhow::Result;
use arrow::record_batch::RecordBatch;
use chrono::Datelike;

/// The alert's own fields.
pub(super) fn own(day: &Day, alerts: &RecordBatch, out: &mut Columns) -> Result<()> {
    let n = day.n;
    let sev = str_col(alerts, "severity")?;
    let atype = str_col(alerts, "suspected_address_type")?;
    let nri = f64_col(alerts, "risk_indicator_count")?;
    out.push("alert_confidence_score", day.conf.clone());
    out.push("volume_usd", day.vol.clone());
    out.push(
        "volume_usd_log",
        day.vol.iter().map(|v| v.max(0.0).ln_1p()).collect(),
    );
    out.push(
        "severity_encoded",
        (0..n).map(|i| severity_code(sev.value(i))).collect(),
    );
    out.push(
        "address_type_encoded",
        (0..n).map(|i| address_type_code(atype.value(i))).collect(),
    );
    out.push(
        "typology_code",
        (0..n)
            .map(|i| {
                TYPOLOGIES
                    .iter()
                    .position(|t| *t == day.typ.value(i))
                    .map_or(f64::NAN, |p| p as f64)
            })
            .collect(),
    );
    out.push(
        "risk_indicator_count",
        (0..n).map(|i| get_f(&nri, i)).collect(),
    );
    Ok(())
}

/// The processing date, the same for every alert.
pub(super) fn calendar(day: &Day, out: &mut Columns) {
    let date = day.date;
    let dow = date.weekday().num_days_from_monday() as f64;
    let dom = date.day() as f64;
    for (name, v) in [
        ("day_of_week", dow),
        ("day_of_month", dom),
        ("month", date.month() as f64),
        ("is_weekend", (dow >= 5.0) as u8 as f64),
        ("is_month_end", (dom >= 25.0) as u8 as f64),
    ] {
        out.push(name, vec![v; day.n]);
    }
}

/// Where the alert stands among the day's alerts, and its address's alerts of the day.
pub(super) fn within_day(day: &Day, out: &mut Columns) {
    let n = day.n;
    let finite = |xs: &[f64]| {
        xs.iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect::<Vec<_>>()
    };
    let z = |xs: &[f64]| {
        let (m, s) = mean_std(&finite(xs));
        xs.iter()
            .map(|x| {
                if s > 0.0 && x.is_finite() {
                    (x - m) / s
                } else {
                    0.0
                }
            })
            .collect::<Vec<_>>()
    };
    out.push("volume_zscore", z(&day.vol));
    out.push("volume_percentile", pct_rank(&day.vol));
    out.push("confidence_zscore", z(&day.conf));
    let mut a_count = vec![0.0; n];
    let mut a_typ = vec![0.0; n];
    let mut a_sum = vec![0.0; n];
    let mut a_mean = vec![0.0; n];
    let mut a_std = vec![0.0; n];
    let mut a_max = vec![0.0; n];
    let mut a_cmax = vec![0.0; n];
    // Each address's volumes and typologies, in buffers reused from one address to the next.
    let (mut vs, mut types) = (Vec::new(), Vec::new());
    for rows in day.by_addr.groups() {
        vs.clear();
        vs.extend(rows.iter().map(|&i| day.vol[i]).filter(|v| v.is_finite()));
        let (m, s) = mean_std(&vs);
        types.clear();
        types.extend(rows.iter().map(|&i| day.typ.value(i)));
        types.sort_unstable();
        types.dedup();
        let mx = vs.iter().copied().fold(f64::NAN, f64::max);
        let cmx = rows.iter().map(|&i| day.conf[i]).fold(f64::NAN, f64::max);
        let sum: f64 = vs.iter().sum();
        for &i in rows {
            a_count[i] = rows.len() as f64;
            a_typ[i] = types.len() as f64;
            a_sum[i] = sum;
            a_mean[i] = m;
            a_std[i] = s;
            a_max[i] = mx;
            a_cmax[i] = cmx;
        }
    }
    out.push("addr_alert_count", a_count);
    out.push("addr_typology_count", a_typ);
    out.push("addr_volume_sum", a_sum);
    out.push("addr_volume_mean", a_mean);
    out.push("addr_volume_std", a_std);
    out.push("addr_volume_max", a_max);
    out.push("addr_confidence_max", a_cmax);
}
