//! The day's clusters and the `clusters` table: `same_entity` (an address with ≥ 2 alerts) and
//! `related_network` (alerted addresses trading with each other).

use super::alerts::{severity, Alert};
use super::flows::{Agg, Flows};
use super::writer::{Col, Table};
use super::Day;
use std::collections::{BTreeMap, HashMap};

/// One cluster of alerted addresses.
struct Cluster {
    id: String,
    kind: &'static str,
    /// Member address ids; the first is the primary address.
    members: Vec<u32>,
}

/// Root of `x` in the union-find `p`, compressing `x`'s link.
fn find(p: &mut BTreeMap<u32, u32>, x: u32) -> u32 {
    let mut r = x;
    while p[&r] != r {
        r = p[&r];
    }
    p.insert(x, r);
    r
}

/// The `clusters` table of the day; without clusters, a table without columns.
pub(super) fn clusters_table(
    day: &Day,
    alerts: &[Alert],
    alerted: &[u32],
    flows: &Flows,
    agg: &[Agg],
) -> Table {
    let w = day.world;
    let mut by_addr: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (k, x) in alerts.iter().enumerate() {
        by_addr.entry(x.addr).or_default().push(k);
    }
    let mut clusters: Vec<Cluster> = Vec::new();
    for (&a, ks) in &by_addr {
        if ks.len() >= 2 {
            clusters.push(Cluster {
                id: format!("cluster_same_entity_{}_{}", w.addr[a as usize], day.date_s),
                kind: "same_entity",
                members: vec![a],
            });
        }
    }
    let mut parent: BTreeMap<u32, u32> = alerted.iter().map(|&a| (a, a)).collect();
    for &((a, b), _) in flows {
        if parent.contains_key(&a) && parent.contains_key(&b) {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent.insert(ra.max(rb), ra.min(rb));
            }
        }
    }
    let mut comps: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &a in alerted {
        let r = find(&mut parent, a);
        comps.entry(r).or_default().push(a);
    }
    for members in comps.into_values().filter(|m| m.len() >= 2) {
        let members: Vec<u32> = members.into_iter().take(6).collect();
        clusters.push(Cluster {
            id: format!(
                "cluster_related_network_{}_{}",
                w.addr[members[0] as usize], day.date_s
            ),
            kind: "related_network",
            members,
        });
    }
    let nc = clusters.len();
    let related: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            let mut ids: Vec<String> = c
                .members
                .iter()
                .flat_map(|a| by_addr[a].iter().map(|&k| alerts[k].id.clone()))
                .collect();
            ids.sort();
            ids
        })
        .collect();
    let conf_of: HashMap<&str, f64> = alerts.iter().map(|x| (x.id.as_str(), x.conf)).collect();
    let mut t = Table::new();
    if nc > 0 {
        t.push(
            "window_days",
            Col::I64(vec![day.opts.window_days as i64; nc]),
        )
        .push("processing_date", Col::Date(day.days32, nc))
        .push(
            "cluster_id",
            Col::Str(clusters.iter().map(|c| c.id.clone()).collect()),
        )
        .push(
            "cluster_type",
            Col::Str(clusters.iter().map(|c| c.kind.to_string()).collect()),
        )
        .push(
            "primary_address",
            Col::Str(
                clusters
                    .iter()
                    .map(|c| w.addr[c.members[0] as usize].clone())
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
                    .map(|c| {
                        c.members
                            .iter()
                            .map(|&a| w.addr[a as usize].clone())
                            .collect()
                    })
                    .collect(),
            ),
        )
        .push(
            "total_alerts",
            Col::I64(related.iter().map(|r| r.len() as i64).collect()),
        )
        .push(
            "total_volume_usd",
            Col::Dec(
                clusters
                    .iter()
                    .map(|c| agg[c.members[0] as usize].volume() * 0.3)
                    .collect(),
            ),
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
        .push(
            "earliest_alert_timestamp",
            Col::I64(vec![day.midnight_ms; nc]),
        )
        .push(
            "latest_alert_timestamp",
            Col::I64(vec![day.midnight_ms; nc]),
        );
    }
    t
}
