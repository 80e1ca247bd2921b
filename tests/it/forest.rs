//! The flattened forest evaluator against LightGBM's own predict, bit for bit: on the shipped
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
    for (path, meta) in aml_pipeline::model::installed(&models).unwrap() {
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
        let noisy = perturb(&x, &text, &mut rng);
        assert!(noisy.iter().any(|v| v.is_nan()));
        compared += compare(&text, &noisy, &format!("{what} with special values"));
    }
    assert!(compared > 0, "no shipped models in {}", models.display());
    eprintln!("shipped models: {compared} rows compared bit for bit");
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
            models += 1;
        }
    }
    assert_eq!(models, 42);
    eprintln!("random models: {models} models, {rows} rows compared bit for bit");
    assert!(rows >= 42 * 3000);
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
