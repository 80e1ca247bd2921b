//! Training through LightGBM's C API: a [`TrainSet`] becomes a LightGBM dataset, boosted
//! with early stopping on an optional validation set, and saved as model text ([`Trained`]).

use anyhow::{anyhow, bail, Result};
use std::ffi::{c_char, c_void, CStr, CString};

fn last_error() -> String {
    // SAFETY: LightGBM returns a pointer to a thread-local, NUL-terminated message.
    unsafe {
        CStr::from_ptr(lightgbm3_sys::LGBM_GetLastError())
            .to_string_lossy()
            .into_owned()
    }
}

fn check(code: i32, what: &str) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(anyhow!("LightGBM {what} failed: {}", last_error()))
    }
}

/// Training data for one model: row-major features and per-row label, weight and query group.
pub struct TrainSet<'a> {
    /// Row-major features.
    pub x: &'a [f64],
    /// Feature names (columns of `x`).
    pub names: &'a [String],
    /// Labels (0/1, or integer relevance grades for the ranker).
    pub label: &'a [f32],
    /// Sample weights.
    pub weight: &'a [f32],
    /// Query group sizes (ranker only).
    pub groups: Option<&'a [i32]>,
}

/// A LightGBM dataset handle, freed on drop.
struct Dataset(lightgbm3_sys::DatasetHandle);

impl Drop for Dataset {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_DatasetCreateFromMat and is freed once.
        unsafe { lightgbm3_sys::LGBM_DatasetFree(self.0) };
    }
}

/// A LightGBM booster handle, freed on drop.
struct Handle(lightgbm3_sys::BoosterHandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_BoosterCreate and is freed once.
        unsafe { lightgbm3_sys::LGBM_BoosterFree(self.0) };
    }
}

fn dataset(set: &TrainSet, params: &CString, reference: Option<&Dataset>) -> Result<Dataset> {
    let ncol = set.names.len();
    let nrow = set.label.len();
    if nrow == 0 || set.x.len() != nrow * ncol {
        bail!("no training rows (or a malformed matrix)");
    }
    let mut handle: lightgbm3_sys::DatasetHandle = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the sizes given; the handle is owned by `Dataset`.
    unsafe {
        check(
            lightgbm3_sys::LGBM_DatasetCreateFromMat(
                set.x.as_ptr() as *const c_void,
                lightgbm3_sys::C_API_DTYPE_FLOAT64 as i32,
                nrow as i32,
                ncol as i32,
                1,
                params.as_ptr(),
                reference.map_or(std::ptr::null_mut(), |r| r.0),
                &mut handle,
            ),
            "dataset creation",
        )?;
    }
    let ds = Dataset(handle);
    let set_field = |name: &str, ptr: *const c_void, n: usize, ty: u32| {
        let f = CString::new(name).expect("static name");
        // SAFETY: `ptr` points at `n` values of type `ty` that outlive the call.
        check(
            unsafe {
                lightgbm3_sys::LGBM_DatasetSetField(ds.0, f.as_ptr(), ptr, n as i32, ty as i32)
            },
            name,
        )
    };
    set_field(
        "label",
        set.label.as_ptr() as _,
        nrow,
        lightgbm3_sys::C_API_DTYPE_FLOAT32,
    )?;
    set_field(
        "weight",
        set.weight.as_ptr() as _,
        nrow,
        lightgbm3_sys::C_API_DTYPE_FLOAT32,
    )?;
    if let Some(g) = set.groups {
        set_field(
            "group",
            g.as_ptr() as _,
            g.len(),
            lightgbm3_sys::C_API_DTYPE_INT32,
        )?;
    }
    let cnames: Vec<CString> = set
        .names
        .iter()
        .map(|n| CString::new(n.as_str()))
        .collect::<Result<_, _>>()?;
    let mut ptrs: Vec<*const c_char> = cnames.iter().map(|c| c.as_ptr()).collect();
    // SAFETY: `ptrs` holds valid C strings for the duration of the call.
    check(
        unsafe {
            lightgbm3_sys::LGBM_DatasetSetFeatureNames(ds.0, ptrs.as_mut_ptr(), ptrs.len() as i32)
        },
        "feature names",
    )?;
    Ok(ds)
}

/// A trained model: its text and, with a validation set, where early stopping settled.
pub struct Trained {
    /// The model in LightGBM's text format.
    pub text: String,
    /// Iterations kept (the best one on the validation set, or all).
    pub best_iteration: usize,
    /// The validation metric at `best_iteration` (AUC for binary, NDCG@10 for the ranker).
    pub valid_metric: Option<f64>,
}

/// Trains with LightGBM for at most `iterations` rounds. With a validation set, the first
/// metric in `params` is evaluated on it after every round, training stops after
/// `early_stopping` rounds without improvement, and the best iteration is kept.
pub fn train_lightgbm(
    set: &TrainSet,
    params: &str,
    iterations: usize,
    valid: Option<(&TrainSet, usize)>,
) -> Result<Trained> {
    let p = CString::new(params)?;
    let ds = dataset(set, &p, None)?;
    let vds = valid.map(|(v, _)| dataset(v, &p, Some(&ds))).transpose()?;
    let mut raw: lightgbm3_sys::BoosterHandle = std::ptr::null_mut();
    // SAFETY: `ds` is a valid dataset; the booster is owned by `Handle`.
    check(
        unsafe { lightgbm3_sys::LGBM_BoosterCreate(ds.0, p.as_ptr(), &mut raw) },
        "booster creation",
    )?;
    let bst = Handle(raw);
    if let Some(v) = &vds {
        // SAFETY: both handles are valid; the dataset outlives the booster's use of it.
        check(
            unsafe { lightgbm3_sys::LGBM_BoosterAddValidData(bst.0, v.0) },
            "validation data",
        )?;
    }
    let mut best = (0usize, f64::NEG_INFINITY);
    let mut done = 0;
    for it in 1..=iterations {
        let mut finished = 0;
        // SAFETY: valid booster handle.
        check(
            unsafe { lightgbm3_sys::LGBM_BoosterUpdateOneIter(bst.0, &mut finished) },
            "training iteration",
        )?;
        done = it;
        if let Some((_, rounds)) = valid {
            let mut n = 0;
            // SAFETY: valid booster handle; the buffer is sized by LGBM_BoosterGetEvalCounts.
            check(
                unsafe { lightgbm3_sys::LGBM_BoosterGetEvalCounts(bst.0, &mut n) },
                "evaluation",
            )?;
            let mut vals = vec![0.0f64; n.max(1) as usize];
            let mut len = 0;
            check(
                unsafe {
                    lightgbm3_sys::LGBM_BoosterGetEval(bst.0, 1, &mut len, vals.as_mut_ptr())
                },
                "evaluation",
            )?;
            if vals[0] > best.1 {
                best = (it, vals[0]);
            } else if it - best.0 >= rounds {
                break;
            }
        }
        if finished != 0 {
            break;
        }
    }
    let keep = if valid.is_some() { best.0.max(1) } else { done };
    let mut len: i64 = 0;
    // SAFETY: valid booster; the second call writes at most `len` bytes into `buf`.
    check(
        unsafe {
            lightgbm3_sys::LGBM_BoosterSaveModelToString(
                bst.0,
                0,
                keep as i32,
                0,
                0,
                &mut len,
                std::ptr::null_mut(),
            )
        },
        "model export",
    )?;
    let mut buf = vec![0u8; len as usize];
    check(
        unsafe {
            lightgbm3_sys::LGBM_BoosterSaveModelToString(
                bst.0,
                0,
                keep as i32,
                0,
                len,
                &mut len,
                buf.as_mut_ptr() as *mut c_char,
            )
        },
        "model export",
    )?;
    buf.truncate(len as usize - 1);
    Ok(Trained {
        text: String::from_utf8(buf)?,
        best_iteration: keep,
        valid_metric: valid.map(|_| best.1),
    })
}
