//! The forest's TreeSHAP against LightGBM's `predict_contrib` (`LGBM_BoosterPredictForMat`
//! with `C_API_PREDICT_CONTRIB`), both with 2 threads, on the shipped binary models (the alert
//! scorer: 41 trees of 31 leaves, 129 features; the cluster scorer: 18 deeper trees) for 4000
//! random rows (`BENCH_SHAP_ROWS` changes it) with negative values, zeros and NaNs.
//! Run with `cargo bench --bench shap`.

use aml_pipeline::forest::Forest;
use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ffi::{c_void, CString};
use std::path::Path;
use std::time::Duration;

const THREADS: usize = 2;

/// LightGBM's booster, loaded through the C API so that its thread count can be set.
struct Lgbm(lightgbm3_sys::BoosterHandle);

impl Lgbm {
    fn load(text: &str) -> Self {
        let text = CString::new(text).unwrap();
        let (mut handle, mut iters) = (std::ptr::null_mut(), 0);
        // SAFETY: valid C string and out-pointers.
        let rc = unsafe {
            lightgbm3_sys::LGBM_BoosterLoadModelFromString(text.as_ptr(), &mut iters, &mut handle)
        };
        assert_eq!(rc, 0, "LightGBM cannot load the model");
        Self(handle)
    }

    fn contributions(&self, rows: &[f64], nf: usize) -> Vec<f64> {
        let n = rows.len() / nf;
        let mut out = vec![0.0; n * (nf + 1)];
        let mut len = 0i64;
        let params = CString::new(format!("num_threads={THREADS}")).unwrap();
        // SAFETY: `rows` holds `n` rows of `nf` f64s; `out` has room for the contributions.
        let rc = unsafe {
            lightgbm3_sys::LGBM_BoosterPredictForMat(
                self.0,
                rows.as_ptr() as *const c_void,
                lightgbm3_sys::C_API_DTYPE_FLOAT64 as i32,
                n as i32,
                nf as i32,
                1,
                lightgbm3_sys::C_API_PREDICT_CONTRIB as i32,
                0,
                -1,
                params.as_ptr(),
                &mut len,
                out.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "LightGBM's predict_contrib failed");
        assert_eq!(len as usize, out.len());
        out
    }
}

impl Drop for Lgbm {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_BoosterLoadModelFromString and is freed once.
        unsafe { lightgbm3_sys::LGBM_BoosterFree(self.0) };
    }
}

/// Random rows: mostly normal values of several scales, some zeros and NaNs.
fn rows(rng: &mut ChaCha8Rng, n: usize, nf: usize) -> Vec<f64> {
    (0..n * nf)
        .map(|_| match rng.gen_range(0..20) {
            0 => f64::NAN,
            1 | 2 => 0.0,
            3..=9 => rng.gen_range(-3.0..3.0),
            _ => rng.gen_range(0.0..1000.0),
        })
        .collect()
}

fn shap(c: &mut Criterion) {
    let n: usize = std::env::var("BENCH_SHAP_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("trained_models");
    for kind in ["alert_scorer", "cluster_scorer"] {
        let path = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.extension().is_some_and(|x| x == "txt")
                    && p.file_name().unwrap().to_string_lossy().starts_with(kind)
            })
            .unwrap_or_else(|| panic!("no {kind} model in {}", dir.display()));
        let text = std::fs::read_to_string(&path).unwrap();
        let forest = Forest::parse(&text).unwrap();
        let lgbm = Lgbm::load(&text);
        let nf = forest.num_features();
        let x = rows(&mut ChaCha8Rng::seed_from_u64(2), n, nf);
        let lightgbm = || lgbm.contributions(&x, nf);
        let ours = || forest.contributions(&x, THREADS).unwrap();
        let max = ours()
            .iter()
            .zip(&lightgbm())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(max <= 1e-9, "TreeSHAP differs from LightGBM's by {max}");
        eprintln!("{kind}: largest difference from LightGBM {max:e}");

        let mut g = c.benchmark_group(format!(
            "shap_{kind}_{}_trees_{n}_rows_{THREADS}_threads",
            forest.num_trees()
        ));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_secs(10));
        g.bench_function("lightgbm_predict_contrib", |b| b.iter(lightgbm));
        g.bench_function("forest_treeshap", |b| b.iter(ours));
        g.finish();
    }
}

criterion_group!(benches, shap);
criterion_main!(benches);
