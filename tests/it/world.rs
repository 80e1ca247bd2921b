//! The generator's laundering world: deterministic whatever the thread count, its SAR rate and
//! label coverage as configured, AMLworld's eight patterns in the money flows (checked
//! structurally), and `pipeline run` with the shipped models on it.

use crate::common::*;
use aml_pipeline::generate::{
    generate_profile, planted, GenerateOptions, Kind, Laundering, Planted, Profile,
};
use arrow::array::{Array, AsArray};
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::OnceLock;

const SEED: u64 = 3;
const DATES: [&str; 6] = [
    "2025-10-01",
    "2025-10-02",
    "2025-10-03",
    "2025-10-04",
    "2025-10-05",
    "2025-10-06",
];

fn date(s: &str) -> NaiveDate {
    aml_pipeline::dates::parse_date(s).unwrap()
}

fn opts(out: &Path, dates: &[&str], alerts: usize) -> GenerateOptions {
    GenerateOptions {
        out: out.to_path_buf(),
        network: NETWORK.into(),
        dates: dates.iter().map(|d| date(d)).collect(),
        window_days: WINDOW,
        alerts_per_day: alerts,
        seed: SEED,
    }
}

fn laundering() -> Profile {
    Profile::Laundering(Laundering::default())
}

/// Six laundering dates of 1,000 alerts, generated once for the tests that only read them.
fn world() -> &'static Path {
    static W: OnceLock<tempfile::TempDir> = OnceLock::new();
    W.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        generate_profile(
            &opts(d.path(), &DATES, 1000),
            &laundering(),
            None,
            &mut |_| {},
        )
        .unwrap();
        d
    })
    .path()
}

/// Every file under `root`, by relative path.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(root)
        .into_iter()
        .map(|(p, b)| (p.display().to_string(), b))
        .collect()
}

#[test]
fn laundering_world_is_deterministic_across_thread_counts_and_dates() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let two = ["2025-10-01", "2025-10-02"];
    // 2,000 alerts a day: 20,000 addresses, two background blocks, several chunks per column.
    let p = laundering();
    generate_profile(&opts(dirs[0].path(), &two, 2000), &p, Some(1), &mut |_| {}).unwrap();
    generate_profile(&opts(dirs[1].path(), &two, 2000), &p, Some(3), &mut |_| {}).unwrap();
    let (a, b) = (tree(dirs[0].path()), tree(dirs[1].path()));
    assert_eq!(a.len(), 2 * 5 + 2);
    assert!(a == b, "the bytes depend on the thread count");
    // A date alone is the same date as within a range.
    generate_profile(
        &opts(dirs[2].path(), &two[1..], 2000),
        &p,
        Some(2),
        &mut |_| {},
    )
    .unwrap();
    let c = tree(dirs[2].path());
    for (f, bytes) in &c {
        if f.contains("2025-10-02") {
            assert!(a[f] == *bytes, "{f} depends on the other dates generated");
        }
    }
}

/// (alert id, SAR filed) of `root`'s ground truth.
fn truth(root: &Path) -> Vec<(String, bool)> {
    let b = read_parquet(&root.join(NETWORK).join("ground_truth.parquet"));
    let (ids, sar) = (b.column(0).as_string::<i32>(), b.column(1).as_boolean());
    (0..b.num_rows())
        .map(|i| (ids.value(i).to_string(), sar.value(i)))
        .collect()
}

fn sar_rate(root: &Path) -> f64 {
    let t = truth(root);
    t.iter().filter(|x| x.1).count() as f64 / t.len() as f64
}

#[test]
fn sar_rate_and_label_coverage_are_as_configured() {
    let rate = sar_rate(world());
    assert!((0.02..=0.05).contains(&rate), "SAR rate {rate}");
    // Alerted addresses and their labels.
    let mut alerted = BTreeSet::new();
    for d in DATES {
        let a = read_parquet(&batch_dir(world(), d).join("alerts.parquet"));
        let addr = a.column_by_name("address").unwrap().as_string::<i32>();
        alerted.extend(addr.iter().map(|x| x.unwrap().to_string()));
    }
    let labels = read_parquet(&world().join(NETWORK).join("address_labels.parquet"));
    let addr = labels.column_by_name("address").unwrap().as_string::<i32>();
    let risk = labels
        .column_by_name("risk_level")
        .unwrap()
        .as_string::<i32>();
    let levels: BTreeSet<&str> = risk.iter().map(|x| x.unwrap()).collect();
    assert!(levels.is_subset(&["low", "medium", "high", "critical"].into()));
    let covered =
        addr.iter().filter(|a| alerted.contains(a.unwrap())).count() as f64 / alerted.len() as f64;
    assert!((0.25..=0.35).contains(&covered), "label coverage {covered}");
    // Another configured rate.
    let d = tempfile::tempdir().unwrap();
    let p = Profile::Laundering(Laundering {
        sar_rate: 0.1,
        pool_share: 0.05,
        ..Laundering::default()
    });
    generate_profile(&opts(d.path(), &DATES[..3], 1000), &p, None, &mut |_| {}).unwrap();
    let rate = sar_rate(d.path());
    assert!((0.08..=0.12).contains(&rate), "SAR rate {rate} for 0.1");
}

/// The (from, to) pairs of `date`'s money flows.
fn flow_pairs(root: &Path, date: &str) -> HashSet<(String, String)> {
    let b = read_parquet(&batch_dir(root, date).join("money_flows.parquet"));
    let (f, t) = (
        b.column_by_name("from_address").unwrap().as_string::<i32>(),
        b.column_by_name("to_address").unwrap().as_string::<i32>(),
    );
    (0..b.num_rows())
        .map(|i| (f.value(i).to_string(), t.value(i).to_string()))
        .collect()
}

type Edges = Vec<(String, String)>;

fn nodes<'a>(e: &'a Edges, side: impl Fn(&'a (String, String)) -> &'a String) -> BTreeSet<&'a str> {
    e.iter().map(|x| side(x).as_str()).collect()
}

/// Checks that `edges` (in the order drawn) have the shape of `kind`.
fn check_shape(kind: Kind, edges: &Edges) {
    let (src, dst) = (nodes(edges, |e| &e.0), nodes(edges, |e| &e.1));
    let both: BTreeSet<&str> = src.intersection(&dst).copied().collect();
    let out_of = |a: &str| edges.iter().filter(|e| e.0 == a).count();
    let into = |a: &str| edges.iter().filter(|e| e.1 == a).count();
    match kind {
        Kind::FanOut => assert!(src.len() == 1 && dst.len() == edges.len() && dst.len() >= 4),
        Kind::FanIn => assert!(dst.len() == 1 && src.len() == edges.len() && src.len() >= 4),
        Kind::GatherScatter | Kind::ScatterGather => {
            // One hub between the two sides; the gather-scatter hub is in the middle, the
            // scatter-gather's ends are the source and the sink around the intermediaries.
            if kind == Kind::GatherScatter {
                assert_eq!(both.len(), 1, "{edges:?}");
                let hub = *both.iter().next().unwrap();
                assert!(into(hub) >= 3 && out_of(hub) >= 3);
                assert!(edges.iter().all(|e| e.0 == hub || e.1 == hub));
            } else {
                let (s, t): (Vec<&str>, Vec<&str>) = (
                    src.difference(&dst).copied().collect(),
                    dst.difference(&src).copied().collect(),
                );
                assert!(s.len() == 1 && t.len() == 1, "{edges:?}");
                assert!(both.len() >= 3 && out_of(s[0]) == both.len() && into(t[0]) == both.len());
            }
        }
        Kind::Cycle => {
            assert!(edges.len() >= 3 && src == dst && src.len() == edges.len());
            for w in edges.windows(2) {
                assert_eq!(w[0].1, w[1].0, "not a chain");
            }
            assert_eq!(
                edges.last().unwrap().1,
                edges[0].0,
                "the cycle does not close"
            );
        }
        Kind::RandomWalk => {
            assert!(edges.len() >= 3 && src.len() == edges.len() && dst.len() == edges.len());
            for w in edges.windows(2) {
                assert_eq!(w[0].1, w[1].0, "not a chain");
            }
            assert_ne!(edges.last().unwrap().1, edges[0].0, "a walk is open");
        }
        Kind::Bipartite => {
            assert!(both.is_empty() && src.len() >= 2 && dst.len() >= 2);
        }
        Kind::Stack => {
            // Three layers: sources, a middle that receives and sends, sinks.
            let first: BTreeSet<&str> = src.difference(&dst).copied().collect();
            let last: BTreeSet<&str> = dst.difference(&src).copied().collect();
            assert!(
                first.len() >= 2 && both.len() >= 2 && last.len() >= 2,
                "{edges:?}"
            );
            for (a, b) in edges {
                let (a, b) = (a.as_str(), b.as_str());
                assert!(
                    (first.contains(a) && both.contains(b))
                        || (both.contains(a) && last.contains(b))
                );
            }
        }
    }
}

#[test]
fn the_eight_patterns_are_in_the_flows() {
    let root = world();
    let cfg = Laundering::default();
    let o = opts(root, &DATES, 1000);
    let last = date(DATES[5]);
    let pairs: BTreeMap<NaiveDate, HashSet<(String, String)>> = DATES
        .iter()
        .map(|d| (date(d), flow_pairs(root, d)))
        .collect();
    // The instances with a transfer on any of the dates, each once.
    let mut seen = HashSet::new();
    let instances: Vec<Planted> = DATES
        .iter()
        .flat_map(|d| planted(&o, &cfg, date(d)))
        .filter(|i| {
            seen.insert((
                i.kind,
                i.start,
                i.hops[0].from.clone(),
                i.hops[0].to.clone(),
            ))
        })
        .collect();
    let mut on_last = BTreeSet::new();
    let mut whole = BTreeSet::new();
    for i in &instances {
        // Every transfer up to the last date is in the flows of its date.
        let mut edges = Vec::new();
        for h in i.hops.iter().filter(|h| h.date <= last) {
            if let Some(p) = pairs.get(&h.date) {
                let e = (h.from.clone(), h.to.clone());
                assert!(
                    p.contains(&e),
                    "{:?} transfer missing on {}",
                    i.kind,
                    h.date
                );
                if h.date == last {
                    on_last.insert(i.kind);
                }
                edges.push(e);
            }
        }
        // Instances entirely within the generated dates have their pattern's shape.
        if i.start >= date(DATES[0]) && i.hops.iter().all(|h| h.date <= last) {
            assert_eq!(edges.len(), i.hops.len());
            check_shape(i.kind, &edges);
            whole.insert(i.kind);
        }
    }
    for k in Kind::ALL {
        assert!(
            on_last.contains(&k),
            "no {} in the flows of {last}",
            k.name()
        );
        assert!(whole.contains(&k), "no whole {} checked", k.name());
    }
    // Some patterns span several dates.
    assert!(instances
        .iter()
        .any(|i| i.hops.iter().map(|h| h.date).collect::<BTreeSet<_>>().len() >= 3));
}

/// The default world is the laundering one, and its answer key names transfers that are in
/// the flows of their date, one pattern per instance.
#[test]
fn the_shipped_models_run_on_a_laundering_date() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    let key = tmp.path().join("patterns.parquet");
    ok(pipeline(&[
        "generate",
        "--out",
        input.to_str().unwrap(),
        "--dates",
        "2025-10-01",
        "--alerts-per-day",
        "500",
        "--seed",
        "5",
        "--patterns",
        key.to_str().unwrap(),
    ]));
    let k = read_parquet(&key);
    assert!(k.num_rows() > 0, "an empty answer key");
    let pairs = flow_pairs(&input, "2025-10-01");
    let col = |n: &str| k.column_by_name(n).unwrap().as_string::<i32>().clone();
    let (from, to, id, kind) = (
        col("from_address"),
        col("to_address"),
        col("pattern_id"),
        col("pattern"),
    );
    let mut kinds: BTreeMap<&str, &str> = BTreeMap::new();
    for i in 0..k.num_rows() {
        let e = (from.value(i).to_string(), to.value(i).to_string());
        assert!(
            pairs.contains(&e),
            "{} transfer {e:?} not in the flows",
            id.value(i)
        );
        let first = kinds.entry(id.value(i)).or_insert(kind.value(i));
        assert_eq!(*first, kind.value(i), "{} has two patterns", id.value(i));
        assert!(id.value(i).contains(kind.value(i)));
    }
    let classic = pipeline(&[
        "generate",
        "--profile",
        "classic",
        "--out",
        input.to_str().unwrap(),
        "--dates",
        "2025-10-02",
        "--patterns",
        key.to_str().unwrap(),
    ]);
    assert!(!classic.status.success());
    assert!(
        String::from_utf8_lossy(&classic.stderr).contains("--patterns needs --profile laundering")
    );
    // The default models, and those of configs/graph.toml, which use the graph features.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("trained_models");
    let graph = aml_pipeline::config::RunConfig::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/graph.toml"),
    )
    .unwrap()
    .models;
    for (name, models) in [("shipped", &shipped), ("graph", &graph)] {
        let out_dir = tmp.path().join(name);
        let cfg = write_config(tmp.path(), &input, &out_dir, models);
        let out = ok(pipeline(&["run", cfg.to_str().unwrap()]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 of 1 dates completed"));
        let scores = read_parquet(&batch_dir(&out_dir, "2025-10-01").join("alert_scores.parquet"));
        let alerts = read_parquet(&batch_dir(&input, "2025-10-01").join("alerts.parquet"));
        assert_eq!(scores.num_rows(), alerts.num_rows());
        assert!(scores.column_by_name("score").unwrap().null_count() == 0);
    }
    let metas = aml_pipeline::model::installed(&graph).unwrap();
    assert_eq!(metas.len(), 3, "three models in {}", graph.display());
    for (path, meta) in metas {
        assert!(
            aml_pipeline::features::graph_features_needed([meta.feature_names.as_slice()]),
            "{} uses no graph feature",
            path.display()
        );
    }
}
