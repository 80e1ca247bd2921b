//! The day's clusters and the `clusters` table: `same_entity` (an address with ≥ 2 alerts) and
//! `related_network` (alerted addresses trading with each other).

use super::alerts::{severity, Alert};
use super::flows::{Agg, Flow};
use super::writer::{Col, Table};
use super::Day;
use std::collections::{BTreeMap, HashMap};

/// One cluster of alerted addresses.
pub(super) struct Cluster {
    id: String,
    kind: &'static str,
    /// Member address ids; the first is the primary address.
    members: Vec<u32>,
    /// Ids of the members' alerts, ascending.
    related: Vec<String>,
    /// The largest confidence of those alerts.
    conf_max: f64,
    /// Their average confidence.
    conf_avg: f32,
}

/// Root of `x` in the union-find `p`, compressing `x`'s link.
fn find(p: &mut [u32], x: u32) -> u32 {
    let mut r = x;
    while p[r as usize] != r {
        r = p[r as usize];
    }
    p[x as usize] = r;
    r
}

/// The day's clusters: the same-entity ones by address, then the related networks (connected
/// alerted addresses, by their smallest id).
pub(super) fn day_clusters(
    day: &Day,
    alerts: &[Alert],
    alerted: &[u32],
    flows: &[Flow],
) -> Vec<Cluster> {
    let w = day.world;
    let conf_of: HashMap<&str, f64> = alerts.iter().map(|x| (x.id.as_str(), x.conf)).collect();
    let mut by_addr: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (k, x) in alerts.iter().enumerate() {
        by_addr.entry(x.addr).or_default().push(k);
    }
    let mut clusters: Vec<(String, &'static str, Vec<u32>)> = Vec::new();
    for (&a, ks) in &by_addr {
        if ks.len() >= 2 {
            let id = format!("cluster_same_entity_{}_{}", w.addr(a).as_ref(), day.date_s);
            clusters.push((id, "same_entity", vec![a]));
        }
    }
    // Union-find over the ranks of the alerted addresses; a root is its component's smallest.
    let mut rank = vec![u32::MAX; w.len()];
    for (r, &a) in alerted.iter().enumerate() {
        rank[a as usize] = r as u32;
    }
    let mut parent: Vec<u32> = (0..alerted.len() as u32).collect();
    for f in flows {
        let (a, b) = (rank[f.from as usize], rank[f.to as usize]);
        if a != u32::MAX && b != u32::MAX {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent[ra.max(rb) as usize] = ra.min(rb);
            }
        }
    }
    let mut comps: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (r, &a) in alerted.iter().enumerate() {
        let root = find(&mut parent, r as u32);
        comps.entry(root).or_default().push(a);
    }
    for members in comps.into_values().filter(|m| m.len() >= 2) {
        let members: Vec<u32> = members.into_iter().take(6).collect();
        let id = format!(
            "cluster_related_network_{}_{}",
            w.addr(members[0]).as_ref(),
            day.date_s
        );
        clusters.push((id, "related_network", members));
    }
    clusters
        .into_iter()
        .map(|(id, kind, members)| {
            let mut related: Vec<String> = members
                .iter()
                .flat_map(|a| by_addr[a].iter().map(|&k| alerts[k].id.clone()))
                .collect();
            related.sort();
            let conf = |id: &String| conf_of[id.as_str()];
            let conf_max = related.iter().map(conf).fold(0.0, f64::max);
            let conf_avg = (related.iter().map(conf).sum::<f64>() / related.len() as f64) as f32;
            Cluster {
                id,
                kind,
                members,
                related,
                conf_max,
                conf_avg,
            }
        })
        .collect()
}

/// The `clusters` table of the day; without clusters, a table without columns.
pub(super) fn clusters_table<'a>(
    day: &'a Day,
    clusters: &'a [Cluster],
    agg: &'a [Agg],
) -> Table<'a> {
    let (w, window_days, midnight_ms) = (day.world, day.opts.window_days, day.midnight_ms);
    let mut t = Table::new(clusters.len());
    t.encoded(day.encoding);
    if clusters.is_empty() {
        return t;
    }
    t.push("window_days", Col::i64(move |_| window_days as i64))
        .push("processing_date", Col::Date(day.days32))
        .push("cluster_id", Col::str(move |c| &clusters[c].id))
        .push("cluster_type", Col::str(move |c| clusters[c].kind))
        .push(
            "primary_address",
            Col::str(move |c| w.addr(clusters[c].members[0])),
        )
        .push("pattern_id", Col::str(|_| ""))
        .push(
            "primary_alert_id",
            Col::str(move |c| &clusters[c].related[0]),
        )
        .push(
            "related_alert_ids",
            Col::list_str(move |c| &clusters[c].related),
        )
        .push(
            "addresses_involved",
            Col::list_str(move |c| clusters[c].members.iter().map(move |&a| w.addr(a))),
        )
        .push(
            "total_alerts",
            Col::i64(move |c| clusters[c].related.len() as i64),
        )
        .push(
            "total_volume_usd",
            Col::dec(move |c| agg[clusters[c].members[0] as usize].volume() * 0.3),
        )
        .push(
            "severity_max",
            Col::str(move |c| severity(clusters[c].conf_max)),
        )
        .push("confidence_avg", Col::f32(move |c| clusters[c].conf_avg))
        .push("earliest_alert_timestamp", Col::i64(move |_| midnight_ms))
        .push("latest_alert_timestamp", Col::i64(move |_| midnight_ms));
    t
}
