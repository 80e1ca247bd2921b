//! The flattened forest evaluator against LightGBM's own predict, bit for bit, and its TreeSHAP
//! against LightGBM's `predict_contrib` (within 1e-9, the bias bit for bit): on the shipped
//! models with generated days (and those rows with missing, zero, tiny and extreme values
//! injected), and on small models trained here on random data with NaNs, zeros, negative
//! values, categorical features, several missing-value settings and objectives.

use aml_pipeline::forest::Forest;
use aml_pipeline::model::{train_lightgbm, Model, ModelKind, TrainSet};
use lightgbm3::Booster;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Values that exercise LightGBM's missing-value and zero rules.
const SPECIAL: [f64; 11] = [
    f64::NAN,
    0.0,
    -0.0,
    1e-36,
    -1e-36,
    1e-35f32 as f64,
    -(1e-35f32 as f64),
    1e-30,
    f64::INFINITY,
    f64::NEG_INFINITY,
    -1e300,
];

/// Asserts `got` and `want` are equal bit for bit; `what` names the comparison.
fn assert_bits(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let bad: Vec<(usize, f64, f64)> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, w))| g.to_bits() != w.to_bits())
        .map(|(i, (g, w))| (i, *g, *w))
        .take(5)
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} of {} predictions differ from LightGBM's, e.g. (row, forest, lightgbm) {bad:?}",
        got.iter()
            .zip(want)
            .filter(|(g, w)| g.to_bits() != w.to_bits())
            .count(),
        got.len()
    );
}

/// The thresholds of a text model: as feature values they test `<=` at its edge.
fn thresholds(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("threshold="))
        .flat_map(|l| l.split(' ').filter_map(|w| w.parse().ok()))
        .collect()
}

/// `rows` with a share of values replaced by special values and the model's thresholds.
fn perturb(rows: &[f64], text: &str, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let thr = thresholds(text);
    rows.iter()
        .map(|&v| match rng.gen_range(0..10) {
            0 => SPECIAL[rng.gen_range(0..SPECIAL.len())],
            1 if !thr.is_empty() => thr[rng.gen_range(0..thr.len())],
            _ => v,
        })
        .collect()
}

/// Compares the forest with LightGBM on `rows`, whole and as a single row, with 1 and 3 threads.
fn compare(text: &str, rows: &[f64], what: &str) -> usize {
    let forest = Forest::parse(text).unwrap();
    let booster = Booster::from_string(text).unwrap();
    let nf = forest.num_features();
    let want = booster.predict(rows, nf as i32, true).unwrap();
    let raw = booster.raw_scores(rows, nf as i32, true).unwrap();
    for threads in [1, 3] {
        assert_bits(
            &forest.predict(rows, threads).unwrap(),
            &want,
            &format!("{what}, {threads} threads"),
        );
    }
    assert_bits(
        &forest.predict_raw(rows, 2).unwrap(),
        &raw,
        &format!("{what}, raw"),
    );
    let first = &rows[..nf];
    assert_bits(
        &forest.predict(first, 1).unwrap(),
        &booster.predict(first, nf as i32, true).unwrap(),
        &format!("{what}, one row"),
    );
    want.len()
}

/// Largest difference allowed between a TreeSHAP contribution and LightGBM's.
const SHAP_TOLERANCE: f64 = 1e-9;

/// Compares the forest's TreeSHAP with LightGBM's `predict_contrib` on `rows`: every value
/// within [`SHAP_TOLERANCE`], the bias bit for bit, the same bits with 1 and 3 threads, and each
/// row summing to the raw score. Returns the largest difference.
fn compare_shap(text: &str, rows: &[f64], what: &str) -> f64 {
    let forest = Forest::parse(text).unwrap();
    let booster = Booster::from_string(text).unwrap();
    let nf = forest.num_features();
    let want = booster.predict_contrib(rows, nf as i32, true).unwrap();
    let got = forest.contributions(rows, 1).unwrap();
    assert_bits(
        &forest.contributions(rows, 3).unwrap(),
        &got,
        &format!("{what}, TreeSHAP with 3 threads"),
    );
    assert_eq!(got.len(), want.len(), "{what}: TreeSHAP lengths differ");
    // Rows go through the trees 4 at a time, the rest one by one: the same bits either way.
    for r in [0, 5.min(rows.len() / nf - 1)] {
        assert_bits(
            &forest
                .contributions(&rows[r * nf..(r + 1) * nf], 1)
                .unwrap(),
            &got[r * (nf + 1)..(r + 1) * (nf + 1)],
            &format!("{what}, TreeSHAP of row {r} alone"),
        );
    }
    let mut max = 0.0f64;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let (row, f) = (i / (nf + 1), i % (nf + 1));
        let d = (g - w).abs();
        assert!(
            d <= SHAP_TOLERANCE,
            "{what}: row {row}, feature {f}: TreeSHAP {g}, LightGBM {w}"
        );
        if f == nf {
            assert_eq!(g.to_bits(), w.to_bits(), "{what}: row {row}: bias");
        }
        max = max.max(d);
    }
    // As LightGBM's, they add up to the raw score (the sum of the trees, also for a random
    // forest, whose prediction averages them).
    let raw = forest.predict_raw(rows, 1).unwrap();
    for (r, (c, w)) in got.chunks(nf + 1).zip(&raw).enumerate() {
        let s: f64 = c.iter().sum();
        assert!(
            (s - w).abs() <= 1e-9 * (1.0 + w.abs()),
            "{what}: row {r}: contributions sum to {s}, the raw score is {w}"
        );
    }
    max
}

/// `explain_json` from our TreeSHAP against the same from LightGBM's contributions: the same
/// top-5 features in the same order, impacts within [`SHAP_TOLERANCE`]. Returns how many
/// strings are byte-identical.
fn compare_explain(model: &Model, x: &[f64], what: &str) -> usize {
    let scores = model.predict(x).unwrap();
    let ours = model.explain(x, &scores).unwrap();
    let theirs = model.explain_lightgbm(x, &scores).unwrap();
    assert_eq!(ours.len(), theirs.len());
    let top = |s: &str| -> Vec<(String, f64)> {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        v["top_features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["feature"].as_str().unwrap().to_string(),
                    t["impact"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    for (r, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let (ta, tb) = (top(a), top(b));
        assert_eq!(ta.len(), 5.min(model.num_features()));
        let names = |t: &[(String, f64)]| t.iter().map(|p| p.0.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&ta),
            names(&tb),
            "{what}: row {r}: top features differ"
        );
        for ((_, ia), (_, ib)) in ta.iter().zip(&tb) {
            assert!(
                (ia - ib).abs() <= SHAP_TOLERANCE,
                "{what}: row {r}: {a} vs {b}"
            );
        }
    }
    ours.iter().zip(&theirs).filter(|(a, b)| a == b).count()
}

#[test]
fn shipped_models_predict_exactly_as_lightgbm_on_generated_days() {
    let tmp = tempfile::tempdir().unwrap();
    let date = chrono::NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
    aml_pipeline::generate::generate(
        &aml_pipeline::generate::GenerateOptions {
            out: tmp.path().join("input"),
            network: "torus".into(),
            dates: vec![date],
            window_days: 195,
            alerts_per_day: 3000,
            seed: 5,
        },
        &mut |_| {},
    )
    .unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let models = manifest.join("trained_models");
    let cfg = tmp.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "pipeline = {:?}\nnetwork = \"torus\"\nwindow_days = 195\ninput = {:?}\noutput = {:?}\nmodels = {:?}\n",
            manifest.join("pipelines/daily.toml"),
            tmp.path().join("input"),
            tmp.path().join("output"),
            models
        ),
    )
    .unwrap();
    let cfg = aml_pipeline::config::RunConfig::load(&cfg).unwrap();
    let m = aml_pipeline::train::date_matrix(&cfg, date).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut compared = 0;
    let mut shap_max = 0.0f64;
    let (mut identical, mut explained) = (0, 0);
    let both = [models.clone(), models.join("graph")];
    let installed = both
        .iter()
        .flat_map(|d| aml_pipeline::model::installed(d).unwrap());
    for (path, meta) in installed {
        let kind = meta.model_type;
        let table = match kind {
            ModelKind::AlertScorer | ModelKind::AlertRanker => &m.alerts,
            ModelKind::ClusterScorer => &m.clusters,
        };
        let model = Model::load(&path, kind).unwrap();
        let x = aml_pipeline::features::row_major(table, &model.meta.feature_names).unwrap();
        assert!(x.len() >= 100 * model.num_features(), "too few rows");
        let what = path.display().to_string();
        assert_bits(
            &model.predict(&x).unwrap(),
            &model.predict_lightgbm(&x).unwrap(),
            &what,
        );
        let text = std::fs::read_to_string(&path).unwrap();
        compared += compare(&text, &x, &what);
        shap_max = shap_max.max(compare_shap(&text, &x, &what));
        let noisy = perturb(&x, &text, &mut rng);
        assert!(noisy.iter().any(|v| v.is_nan()));
        compared += compare(&text, &noisy, &format!("{what} with special values"));
        shap_max = shap_max.max(compare_shap(
            &text,
            &noisy,
            &format!("{what} with special values"),
        ));
        // Random rows: negative values, zeros and NaNs in every feature.
        let random = random_rows(&mut rng, 500, model.num_features());
        shap_max = shap_max.max(compare_shap(
            &text,
            &random,
            &format!("{what}, random rows"),
        ));
        identical += compare_explain(&model, &x, &what);
        explained += x.len() / model.num_features();
    }
    assert!(compared > 0, "no shipped models in {}", models.display());
    eprintln!(
        "shipped models: {compared} rows compared bit for bit; TreeSHAP within {shap_max:e} of \
         LightGBM's; explain_json byte-identical for {identical} of {explained} rows"
    );
}

/// A random matrix: `nf` features, feature 0 categorical-like (small integers), the others
/// mixing normal values, negatives, zeros and NaNs.
fn random_rows(rng: &mut ChaCha8Rng, n: usize, nf: usize) -> Vec<f64> {
    let mut x = Vec::with_capacity(n * nf);
    for _ in 0..n {
        for f in 0..nf {
            let v = match (f, rng.gen_range(0..20)) {
                (0, 0) => f64::NAN,
                (0, _) => rng.gen_range(0..12) as f64,
                (_, 0..=2) => f64::NAN,
                (_, 3..=6) => 0.0,
                (_, 7) => rng.gen_range(-1e-34..1e-34),
                (_, _) => rng.gen_range(-5.0..5.0) * (f as f64),
            };
            x.push(v);
        }
    }
    x
}

/// A label that depends on the features (NaN and zeros included) so trees use them.
fn signal(row: &[f64]) -> f64 {
    let c = if row[0].is_nan() { 5.0 } else { row[0] };
    let a = if row[1].is_nan() { 3.0 } else { row[1] };
    let b = if row[2] == 0.0 {
        -2.0
    } else {
        row[2].max(-3.0)
    };
    (c as i64 % 3) as f64 + a * 0.5 - b * 0.3 + if row[3].is_nan() { 1.0 } else { 0.0 }
}

/// Trains a model on random data with `params`; labels from `label`.
fn train(
    rng: &mut ChaCha8Rng,
    params: &str,
    label: impl Fn(f64, &mut ChaCha8Rng) -> f32,
    groups: bool,
) -> String {
    let (n, nf) = (2000, 6);
    let x = random_rows(rng, n, nf);
    let y: Vec<f32> = x.chunks(nf).map(|r| label(signal(r), rng)).collect();
    let names: Vec<String> = (0..nf).map(|i| format!("f{i}")).collect();
    let g = vec![20i32; n / 20];
    let set = TrainSet {
        x: &x,
        names: &names,
        label: &y,
        weight: &vec![1.0; n],
        groups: groups.then_some(&g[..]),
    };
    train_lightgbm(
        &set,
        &format!("{params} num_leaves=15 min_data_in_leaf=5 verbosity=-1 num_threads=2"),
        40,
        None,
    )
    .unwrap()
    .text
}

#[test]
fn random_models_predict_exactly_as_lightgbm() {
    let binary = |s: f64, r: &mut ChaCha8Rng| (s + r.gen_range(-1.0..1.0) > 1.0) as u8 as f32;
    let regression = |s: f64, r: &mut ChaCha8Rng| (s + r.gen_range(-0.5..0.5)) as f32;
    let count = |s: f64, r: &mut ChaCha8Rng| (s.abs() + r.gen_range(0.0..1.0)).floor() as f32;
    let grade =
        |s: f64, r: &mut ChaCha8Rng| (s + r.gen_range(-1.0..1.0)).clamp(0.0, 3.0).floor() as f32;
    let share =
        |s: f64, r: &mut ChaCha8Rng| (1.0 / (1.0 + (-s + r.gen_range(-1.0..1.0)).exp())) as f32;
    type Label = fn(f64, &mut ChaCha8Rng) -> f32;
    let cases: Vec<(&str, Label, bool)> = vec![
        ("objective=binary", binary, false),
        ("objective=binary categorical_feature=0", binary, false),
        (
            "objective=binary sigmoid=0.7 zero_as_missing=true",
            binary,
            false,
        ),
        ("objective=binary use_missing=false", binary, false),
        (
            "objective=binary categorical_feature=0 zero_as_missing=true max_cat_to_onehot=2",
            binary,
            false,
        ),
        ("objective=regression", regression, false),
        (
            "objective=regression categorical_feature=0 use_missing=false",
            regression,
            false,
        ),
        (
            "objective=regression reg_sqrt=true zero_as_missing=true",
            regression,
            false,
        ),
        ("objective=huber categorical_feature=0", regression, false),
        ("objective=poisson", count, false),
        ("objective=cross_entropy", share, false),
        ("objective=lambdarank categorical_feature=0", grade, true),
        (
            "objective=binary boosting=rf bagging_freq=1 bagging_fraction=0.7",
            binary,
            false,
        ),
        (
            "objective=regression boosting=dart drop_rate=0.2",
            regression,
            false,
        ),
    ];
    let mut models = 0;
    let mut rows = 0;
    let mut shap_max = 0.0f64;
    for seed in 0..3u64 {
        for (params, label, groups) in &cases {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let text = train(&mut rng, &format!("{params} seed={seed}"), label, *groups);
            if params.contains("categorical_feature") && seed == 0 {
                assert!(
                    text.lines()
                        .any(|l| l.starts_with("num_cat=") && l != "num_cat=0"),
                    "{params}: no categorical split"
                );
            }
            let x = random_rows(&mut rng, 3000, 6);
            let mut x = perturb(&x, &text, &mut rng);
            // Categories: negative, fractional, beyond the bitsets, huge.
            for (i, v) in [-1.0, -0.5, 2.7, 1000.0, 1e12, -1e12, 31.0, 32.0, 64.0]
                .into_iter()
                .enumerate()
            {
                x[i * 6] = v;
            }
            rows += compare(&text, &x, &format!("{params} seed={seed}"));
            shap_max = shap_max.max(compare_shap(&text, &x, &format!("{params} seed={seed}")));
            models += 1;
        }
    }
    assert_eq!(models, 42);
    eprintln!(
        "random models: {models} models, {rows} rows compared bit for bit; TreeSHAP within \
         {shap_max:e} of LightGBM's"
    );
    assert!(rows >= 42 * 3000);
}

#[test]
fn treeshap_handles_single_leaf_trees() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (n, nf) = (300, 6);
    let x = random_rows(&mut rng, n, nf);
    let y: Vec<f32> = x
        .chunks(nf)
        .map(|r| (signal(r) > 1.0) as u8 as f32)
        .collect();
    let names: Vec<String> = (0..nf).map(|i| format!("f{i}")).collect();
    let set = TrainSet {
        x: &x,
        names: &names,
        label: &y,
        weight: &vec![1.0; n],
        groups: None,
    };
    // No split can have 1000 rows on each side: LightGBM keeps one single-leaf tree.
    let stump = train_lightgbm(
        &set,
        "objective=binary min_data_in_leaf=1000 verbosity=-1 num_threads=2",
        5,
        None,
    )
    .unwrap()
    .text;
    assert!(stump.contains("num_leaves=1\n"), "{stump}");
    let rows = random_rows(&mut rng, 200, nf);
    compare_shap(&stump, &rows, "a single-leaf model");
    // A single-leaf tree among ordinary ones: its block spliced in place of tree 1.
    let text = train(
        &mut rng,
        "objective=binary categorical_feature=0",
        |s, r| (s + r.gen_range(-1.0..1.0) > 1.0) as u8 as f32,
        false,
    );
    let block = |t: &str, id: usize| -> String {
        let start = t.find(&format!("Tree={id}\n")).unwrap();
        let end = start + t[start..].find("\n\n\n").unwrap() + 3;
        t[start..end].to_string()
    };
    let leaf = block(&stump, 0).replace("Tree=0", "Tree=1");
    let mixed: String = text
        .replace(&block(&text, 1), &leaf)
        .lines()
        .filter(|l| !l.starts_with("tree_sizes="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(mixed.contains("num_leaves=1\n") && mixed.contains("num_leaves=15\n"));
    compare_shap(&mixed, &rows, "a model with a single-leaf tree");
}

#[test]
fn unsupported_models_are_refused_clearly() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let linear = train(
        &mut rng,
        "objective=regression linear_tree=true",
        |s, _| s as f32,
        false,
    );
    let e = format!("{:#}", Forest::parse(&linear).unwrap_err());
    assert!(
        e.contains("linear trees") && e.contains("linear_tree"),
        "{e}"
    );
    let multi = train(
        &mut rng,
        "objective=multiclass num_class=3",
        |s, _| (s.abs().floor() as u32 % 3) as f32,
        false,
    );
    let e = format!("{:#}", Forest::parse(&multi).unwrap_err());
    assert!(
        e.contains("3 classes") && e.contains("not supported"),
        "{e}"
    );
    let e = format!("{:#}", Forest::parse("tree\nversion=v4\n").unwrap_err());
    assert!(e.contains("not a LightGBM text model"), "{e}");
    let bin = train(
        &mut rng,
        "objective=binary",
        |s, _| (s > 1.0) as u8 as f32,
        false,
    );
    let forest = Forest::parse(&bin).unwrap();
    let e = forest.predict(&[1.0; 7], 1).unwrap_err().to_string();
    assert!(e.contains("6 features"), "{e}");
}
