//! Reading LightGBM's text model format: the trees' fields and the objective line.

use super::Convert;
use anyhow::{anyhow, bail, Context, Result};

/// One tree as LightGBM's text format describes it.
pub(super) struct TextTree {
    pub(super) num_leaves: usize,
    pub(super) split_feature: Vec<i64>,
    pub(super) threshold: Vec<f64>,
    pub(super) decision_type: Vec<i64>,
    pub(super) left: Vec<i64>,
    pub(super) right: Vec<i64>,
    pub(super) leaf_value: Vec<f64>,
    pub(super) cat_boundaries: Vec<i64>,
    pub(super) cat_threshold: Vec<u32>,
    pub(super) num_cat: usize,
    /// Training rows that reached each leaf (`leaf_count`), empty if the model has none.
    pub(super) leaf_count: Vec<f64>,
    /// Training rows that reached each internal node (`internal_count`), empty if none.
    pub(super) internal_count: Vec<f64>,
}

/// The output conversion of the model's `objective=` line.
pub(super) fn objective(line: &str) -> Result<Convert> {
    let mut words = line.split(' ');
    let name = words.next().unwrap_or_default();
    let rest: Vec<&str> = words.collect();
    Ok(match name {
        "regression" | "regression_l1" | "quantile" | "huber" | "fair" | "mape" => {
            if rest.contains(&"sqrt") {
                Convert::SignedSquare
            } else {
                Convert::Identity
            }
        }
        "lambdarank" | "rank_xendcg" | "custom" => Convert::Identity,
        "poisson" | "gamma" | "tweedie" => Convert::Exp,
        "cross_entropy" => Convert::Logistic,
        "cross_entropy_lambda" => Convert::Log1pExp,
        "binary" => {
            let s = rest
                .iter()
                .find_map(|w| w.strip_prefix("sigmoid:"))
                .map(legacy_atof)
                .unwrap_or(-1.0);
            if s.is_nan() || s <= 0.0 {
                bail!("objective `{line}`: the sigmoid must be greater than zero");
            }
            Convert::Sigmoid(s)
        }
        other => bail!(
            "objective `{other}` is not supported by the forest evaluator: only binary, regression and ranking models are"
        ),
    })
}

/// LightGBM's `Common::Atof`, which parses the objective's parameters (not correctly rounded,
/// so reproduced operation for operation).
pub(super) fn legacy_atof(s: &str) -> f64 {
    fn pow(base: f64, power: i32) -> f64 {
        if power < 0 {
            1.0 / pow(base, -power)
        } else if power == 0 {
            1.0
        } else if power % 2 == 0 {
            pow(base * base, power / 2)
        } else if power % 3 == 0 {
            pow(base * base * base, power / 3)
        } else {
            base * pow(base, power - 1)
        }
    }
    let b = s.trim_start_matches(' ').as_bytes();
    let mut p = 0;
    let mut sign = 1.0;
    if b.first() == Some(&b'-') {
        sign = -1.0;
        p += 1;
    } else if b.first() == Some(&b'+') {
        p += 1;
    }
    let digit = |p: usize| {
        b.get(p)
            .filter(|c| c.is_ascii_digit())
            .map(|c| (c - b'0') as f64)
    };
    if !matches!(b.get(p), Some(c) if c.is_ascii_digit() || *c == b'.' || *c == b'e' || *c == b'E')
    {
        return f64::NAN;
    }
    let mut value = 0.0;
    while let Some(d) = digit(p) {
        value = value * 10.0 + d;
        p += 1;
    }
    if b.get(p) == Some(&b'.') {
        p += 1;
        let (mut right, mut nn) = (0.0, 0);
        while let Some(d) = digit(p) {
            right = d + right * 10.0;
            nn += 1;
            p += 1;
        }
        value += right / pow(10.0, nn);
    }
    let (mut frac, mut scale) = (false, 1.0);
    if matches!(b.get(p), Some(b'e' | b'E')) {
        p += 1;
        if b.get(p) == Some(&b'-') {
            frac = true;
            p += 1;
        } else if b.get(p) == Some(&b'+') {
            p += 1;
        }
        let mut expon: u32 = 0;
        while let Some(d) = digit(p) {
            expon = expon.wrapping_mul(10).wrapping_add(d as u32);
            p += 1;
        }
        expon = expon.min(308);
        while expon >= 50 {
            scale *= 1e50;
            expon -= 50;
        }
        while expon >= 8 {
            scale *= 1e8;
            expon -= 8;
        }
        while expon > 0 {
            scale *= 10.0;
            expon -= 1;
        }
    }
    sign * if frac { value / scale } else { value * scale }
}

impl TextTree {
    pub(super) fn from_fields(kv: &std::collections::HashMap<&str, &str>) -> Result<Self> {
        let int = |k: &str| -> Result<i64> {
            kv.get(k)
                .ok_or_else(|| anyhow!("no `{k}` field"))?
                .trim()
                .parse()
                .with_context(|| format!("`{k}` is not an integer"))
        };
        let num_leaves = int("num_leaves")?;
        if num_leaves < 1 {
            bail!("num_leaves {num_leaves} is not positive");
        }
        let num_leaves = num_leaves as usize;
        let num_cat = int("num_cat")?.max(0) as usize;
        if kv.get("is_linear").is_some_and(|v| v.trim() != "0") {
            bail!(
                "linear trees (`linear_tree=true`) are not supported by the forest evaluator; train without linear_tree"
            );
        }
        fn list<T: std::str::FromStr>(
            kv: &std::collections::HashMap<&str, &str>,
            k: &str,
            n: usize,
        ) -> Result<Vec<T>> {
            let v: Vec<T> = kv
                .get(k)
                .ok_or_else(|| anyhow!("no `{k}` field"))?
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(|w| {
                    w.parse()
                        .map_err(|_| anyhow!("`{k}` has a malformed value {w:?}"))
                })
                .collect::<Result<_>>()?;
            if v.len() != n {
                bail!("`{k}` has {} values, expected {n}", v.len());
            }
            Ok(v)
        }
        let leaf_value = list(kv, "leaf_value", num_leaves)?;
        // The node counts TreeSHAP weighs by: optional, as LightGBM reads them.
        let counts = |k: &str, n: usize| -> Result<Vec<f64>> {
            if !kv.contains_key(k) {
                return Ok(vec![]);
            }
            let v: Vec<i64> = list(kv, k, n)?;
            Ok(v.into_iter().map(|c| c as f64).collect())
        };
        let leaf_count = counts("leaf_count", num_leaves)?;
        if num_leaves == 1 {
            return Ok(Self {
                num_leaves,
                split_feature: vec![],
                threshold: vec![],
                decision_type: vec![],
                left: vec![],
                right: vec![],
                leaf_value,
                cat_boundaries: vec![],
                cat_threshold: vec![],
                num_cat,
                leaf_count,
                internal_count: vec![],
            });
        }
        let m = num_leaves - 1;
        let decision_type = if kv.contains_key("decision_type") {
            list(kv, "decision_type", m)?
        } else {
            vec![0; m]
        };
        let (cat_boundaries, cat_threshold) = if num_cat > 0 {
            let b: Vec<i64> = list(kv, "cat_boundaries", num_cat + 1)?;
            let n = *b.last().expect("num_cat + 1 values");
            (b, list(kv, "cat_threshold", n.max(0) as usize)?)
        } else {
            (vec![], vec![])
        };
        Ok(Self {
            num_leaves,
            split_feature: list(kv, "split_feature", m)?,
            threshold: list(kv, "threshold", m)?,
            decision_type,
            left: list(kv, "left_child", m)?,
            right: list(kv, "right_child", m)?,
            leaf_value,
            cat_boundaries,
            cat_threshold,
            num_cat,
            leaf_count,
            internal_count: counts("internal_count", m)?,
        })
    }
}
