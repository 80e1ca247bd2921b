//! The flattened forest evaluator against LightGBM's predict, both with 2 threads: a binary
//! model of 500 trees (31 leaves, 100 features) trained on generated data, predicting 1M rows
//! (`BENCH_FOREST_ROWS` changes it). The model is trained once into `bench-data/` and reused.
//! Run with `cargo bench --bench forest`.

use aml_pipeline::forest::Forest;
use aml_pipeline::model::{train_lightgbm, TrainSet};
use criterion::{criterion_group, criterion_main, Criterion};
use lightgbm3::Booster;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::time::Duration;

const FEATURES: usize = 100;
const TREES: usize = 500;
const THREADS: usize = 2;

/// Rows of generated features: mostly normal values, some zeros and NaNs.
fn rows(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n * FEATURES)
        .map(|_| match rng.gen_range(0..20) {
            0 => f64::NAN,
            1 | 2 => 0.0,
            _ => rng.gen_range(-3.0..3.0),
        })
        .collect()
}

/// A label from a few features, with noise.
fn label(row: &[f64], rng: &mut ChaCha8Rng) -> f32 {
    let v = |i: usize| if row[i].is_nan() { 0.5 } else { row[i] };
    let s = v(0) + v(1) * v(2) - v(3).abs() + (v(4) > 0.0) as u8 as f64 + 0.3 * v(5) * v(6)
        - 0.2 * v(7)
        + rng.gen_range(-1.0..1.0);
    (s > 0.5) as u8 as f32
}

/// The bench model's text, trained once and cached in `bench-data/`.
fn model() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("bench-data/forest-{TREES}x31x{FEATURES}.txt"));
    if let Ok(text) = std::fs::read_to_string(&path) {
        return text;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = 50_000;
    let x = rows(&mut rng, n);
    let y: Vec<f32> = x.chunks(FEATURES).map(|r| label(r, &mut rng)).collect();
    let names: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
    let set = TrainSet {
        x: &x,
        names: &names,
        label: &y,
        weight: &vec![1.0; n],
        groups: None,
    };
    let text = train_lightgbm(
        &set,
        "objective=binary num_leaves=31 learning_rate=0.05 min_data_in_leaf=20 feature_fraction=0.8 \
         seed=1 deterministic=true num_threads=2 verbosity=-1",
        TREES,
        None,
    )
    .unwrap()
    .text;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &text).unwrap();
    text
}

fn forest(c: &mut Criterion) {
    let n: usize = std::env::var("BENCH_FOREST_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let text = model();
    let booster = Booster::from_string(&text).unwrap();
    let forest = Forest::parse(&text).unwrap();
    assert_eq!(forest.num_trees(), TREES);
    let x = rows(&mut ChaCha8Rng::seed_from_u64(2), n);
    let params = format!("num_threads={THREADS}");
    let lightgbm = || {
        booster
            .predict_with_params(&x, FEATURES as i32, true, &params)
            .unwrap()
    };
    let ours = || forest.predict(&x, THREADS).unwrap();
    let want = lightgbm();
    assert!(
        ours()
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "the evaluator's predictions differ from LightGBM's"
    );

    let mut g = c.benchmark_group(format!("forest_{n}_rows_{TREES}_trees_{THREADS}_threads"));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(20));
    g.bench_function("lightgbm_predict", |b| b.iter(lightgbm));
    g.bench_function("forest_predict", |b| b.iter(ours));
    g.finish();
}

criterion_group!(benches, forest);
criterion_main!(benches);
