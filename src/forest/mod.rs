//! A flattened evaluator for LightGBM text models whose predictions are bit-identical to
//! LightGBM's own (`LGBM_BoosterPredictForMat` on `f64` rows), and several times faster.
//!
//! LightGBM's rules, reproduced: the C API turns inputs with `|x| <= kZeroThreshold` into 0; a
//! numerical node sends NaN the default way if its missing type is NaN, and otherwise treats
//! NaN as 0; one of missing type Zero sends 0 (and so NaN) the default way; else a row goes left
//! when `x <= threshold`. A categorical node sends NaN, negative values and categories whose bit
//! is not set in its bitset right. Each row's tree outputs are summed in tree order in `f64`
//! from 0, then averaged (random forests) and converted by the objective (e.g. the sigmoid).
//!
//! How it is fast: the trees are one array of 16-byte nodes in pre-order (a node's left child
//! is the next node). Rows are predicted in blocks of 64, tree by tree, so a tree's nodes stay
//! in cache. For a block, every value is written twice as a *key*: rounded as LightGBM rounds
//! it, once with NaN kept and once with NaN as -inf. A node of a tree without categorical or
//! Zero-type splits reads the key that sends NaN its way, so its whole decision is one
//! `key <= threshold`; 8 rows walk such a tree in lockstep with branch-free steps (a reached
//! leaf is its own right child and nothing is `<=` its NaN value), so their walks overlap
//! instead of stalling on mispredicted branches. Other trees are walked row by row.

mod shap;
mod text;

use anyhow::{anyhow, bail, Context, Result};
use text::{objective, TextTree};

/// LightGBM's `kZeroThreshold` (`1e-35f`, a float widened to double).
const K_ZERO: f64 = 1e-35f32 as f64;
/// Node flag: a leaf; `value` is a NaN whose low 32 bits index its output in `leaf_values`
/// (no value compares `<=` NaN, so a walk that reached a leaf never goes left).
const LEAF: u32 = 1 << 31;
/// Node flag: a categorical split; `value` holds the bitset's offset and length.
const CAT: u32 = 1 << 30;
/// Node flag: NaN goes left.
const NAN_LEFT: u32 = 1 << 29;
/// Node flag: zero (|x| <= kZeroThreshold) goes left (trees with missing type Zero only).
const ZERO_LEFT: u32 = 1 << 28;
/// The feature index bits.
const FEATURE: u32 = (1 << 28) - 1;
/// Rows per block: a block is predicted tree by tree.
const BLOCK: usize = 64;
/// Rows that walk a tree together.
const LANES: usize = 8;
/// Fewest rows worth a thread of their own.
const MIN_ROWS_PER_THREAD: usize = 4096;

/// One node: 16 bytes, left child at the next index.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Node {
    /// Threshold, leaf reference, or (categorical) bitset offset << 32 | length as bits.
    value: f64,
    /// Feature index and flags.
    meta: u32,
    /// Index of the right child.
    right: u32,
}

/// Where a numerical split of LightGBM `decision_type` `dt` and threshold `thr` sends zeros
/// and NaN: `(zeros go left, NaN goes left)`, by its missing type.
fn missing_left(dt: i64, thr: f64) -> (bool, bool) {
    let default_left = dt & 2 != 0;
    match (dt >> 2) & 3 {
        // Zero: zeros (and NaN, which becomes 0) go the default way.
        1 => (default_left, default_left),
        // NaN: NaN goes the default way, zeros are compared.
        2 => (0.0 <= thr, default_left),
        // None: NaN becomes 0, compared like any value.
        _ => (0.0 <= thr, 0.0 <= thr),
    }
}

/// How raw scores become predictions: LightGBM's `ObjectiveFunction::ConvertOutput`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Convert {
    /// Raw score (regression, ranking, or no objective).
    Identity,
    /// `sign(x) * x * x` (regression with `reg_sqrt`).
    SignedSquare,
    /// `1 / (1 + exp(-sigmoid * x))` (binary).
    Sigmoid(f64),
    /// `1 / (1 + exp(-x))` (cross_entropy).
    Logistic,
    /// `exp(x)` (poisson, gamma, tweedie).
    Exp,
    /// `log1p(exp(x))` (cross_entropy_lambda).
    Log1pExp,
}

/// A LightGBM model flattened for fast, exact prediction.
#[derive(Debug, Clone)]
pub struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// Per tree: numerical splits only, none of missing type Zero, no NaN threshold. Its nodes
    /// read a row's keys (see `predict_chunk`): `meta` is the key's index, `2 * feature + 1`
    /// when NaN goes left, and a row goes left when `key <= threshold`; its leaves have `meta`
    /// 0. Other trees keep LightGBM's rules as they are, with the flags in `meta`.
    simple: Vec<bool>,
    leaf_values: Vec<f64>,
    cat_bits: Vec<u32>,
    num_features: usize,
    average: bool,
    convert: Convert,
    /// Per tree, its TreeSHAP data (`shap`); `None` when the model has no node counts.
    shap: Option<Vec<shap::ShapTree>>,
}

impl Forest {
    /// Parses a LightGBM text model. Refuses what it cannot reproduce exactly: linear trees,
    /// multiclass models and unknown objectives.
    pub fn parse(text: &str) -> Result<Self> {
        let mut header = std::collections::HashMap::new();
        let mut lines = text.lines().peekable();
        while let Some(l) = lines.peek() {
            if l.starts_with("Tree=") {
                break;
            }
            // A key without a value (`average_output`) is a flag.
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            header.insert(k.trim(), v.trim());
            lines.next();
        }
        let get = |k: &str| {
            header
                .get(k)
                .copied()
                .ok_or_else(|| anyhow!("not a LightGBM text model: no `{k}` line"))
        };
        let num_class: i64 = get("num_class")?.parse().context("num_class")?;
        let per_iter: i64 = header
            .get("num_tree_per_iteration")
            .map_or(Ok(num_class), |v| v.parse())
            .context("num_tree_per_iteration")?;
        if num_class != 1 || per_iter != 1 {
            bail!(
                "a model with {num_class} classes ({per_iter} trees per iteration) is not supported by the forest evaluator: only binary, regression and ranking models are"
            );
        }
        let max_feature_idx: i64 = get("max_feature_idx")?.parse().context("max_feature_idx")?;
        if !(0..FEATURE as i64).contains(&max_feature_idx) {
            bail!("max_feature_idx {max_feature_idx} is out of range");
        }
        let convert = match header.get("objective") {
            None => Convert::Identity,
            Some(o) => objective(o)?,
        };
        let mut forest = Forest {
            nodes: Vec::new(),
            roots: Vec::new(),
            simple: Vec::new(),
            leaf_values: Vec::new(),
            cat_bits: Vec::new(),
            num_features: max_feature_idx as usize + 1,
            average: header.contains_key("average_output"),
            convert,
            shap: Some(Vec::new()),
        };
        while let Some(l) = lines.next() {
            let Some(id) = l.strip_prefix("Tree=") else {
                if l.starts_with("end of trees") {
                    break;
                }
                continue;
            };
            let mut kv = std::collections::HashMap::new();
            for l in lines.by_ref() {
                let l = l.trim_end_matches('\r');
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once('=') {
                    kv.insert(k, v);
                }
            }
            let tree = TextTree::from_fields(&kv).with_context(|| format!("tree {id}"))?;
            forest.push(&tree).with_context(|| format!("tree {id}"))?;
        }
        if forest.roots.is_empty() {
            bail!("the model has no trees");
        }
        Ok(forest)
    }

    /// Number of features a row must have.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Number of trees.
    pub fn num_trees(&self) -> usize {
        self.roots.len()
    }

    /// Predictions for row-major rows (`num_features` values each) with up to `threads`
    /// threads: what LightGBM's predict returns (probabilities for binary models).
    pub fn predict(&self, rows: &[f64], threads: usize) -> Result<Vec<f64>> {
        self.run(rows, threads, true)
    }

    /// Raw scores for row-major rows: the sums of the trees, before averaging (random forests)
    /// and the objective's conversion, as LightGBM's raw-score predict.
    pub fn predict_raw(&self, rows: &[f64], threads: usize) -> Result<Vec<f64>> {
        self.run(rows, threads, false)
    }

    fn run(&self, rows: &[f64], threads: usize, convert: bool) -> Result<Vec<f64>> {
        let chunk = |x: &[f64], o: &mut [f64]| self.predict_chunk(x, o, convert);
        self.by_row_blocks(rows, threads, MIN_ROWS_PER_THREAD, 1, chunk)
    }

    /// Splits `rows` (row-major, whole rows) into at most `threads` blocks of at least
    /// `min_rows` rows and runs `chunk` on each, on its own thread, with the block's share of
    /// the output (`width` values a row, zeroed); returns the output.
    fn by_row_blocks(
        &self,
        rows: &[f64],
        threads: usize,
        min_rows: usize,
        width: usize,
        chunk: impl Fn(&[f64], &mut [f64]) + Sync,
    ) -> Result<Vec<f64>> {
        let nf = self.num_features;
        if !rows.len().is_multiple_of(nf) {
            bail!(
                "{} values are not whole rows of the model's {nf} features",
                rows.len()
            );
        }
        let n = rows.len() / nf;
        let mut out = vec![0.0; n * width];
        let threads = threads.clamp(1, n.div_ceil(min_rows).max(1));
        let per = n.div_ceil(threads).max(1);
        if threads == 1 {
            chunk(rows, &mut out);
        } else {
            let chunk = &chunk;
            std::thread::scope(|s| {
                for (x, o) in rows.chunks(per * nf).zip(out.chunks_mut(per * width)) {
                    s.spawn(move || chunk(x, o));
                }
            });
        }
        Ok(out)
    }

    /// Predicts `rows` into `out` (zeroed), a block of rows at a time, tree by tree.
    fn predict_chunk(&self, rows: &[f64], out: &mut [f64], convert: bool) {
        let nf = self.num_features;
        let mut keys = vec![0.0; BLOCK * 2 * nf];
        for (x, o) in rows.chunks(BLOCK * nf).zip(out.chunks_mut(BLOCK)) {
            // Each value twice, as simple trees read it: rounded like LightGBM's input, NaN
            // kept (it goes right: nothing is `<=` NaN), and with NaN as -inf (it goes left).
            for (k, &v) in keys.chunks_exact_mut(2).zip(x) {
                let r = if v.abs() <= K_ZERO { 0.0 } else { v };
                k[0] = r;
                k[1] = if v.is_nan() { f64::NEG_INFINITY } else { r };
            }
            let keys = &keys[..x.len() * 2];
            let lanes = o.len() / LANES * LANES;
            for (&root, &simple) in self.roots.iter().zip(&self.simple) {
                if !simple {
                    for (sum, row) in o.iter_mut().zip(x.chunks_exact(nf)) {
                        *sum += self.leaf_value(root as usize, row);
                    }
                    continue;
                }
                for (sums, group) in o[..lanes]
                    .chunks_exact_mut(LANES)
                    .zip(keys.chunks_exact(LANES * 2 * nf))
                {
                    self.add_lanes(root, group, sums);
                }
                for (sum, row) in o[lanes..]
                    .iter_mut()
                    .zip(keys[lanes * 2 * nf..].chunks_exact(2 * nf))
                {
                    *sum += self.simple_leaf_value(root as usize, row);
                }
            }
            // As LightGBM's GBDT::Predict: raw scores are neither averaged nor converted.
            if convert {
                for v in o.iter_mut() {
                    if self.average {
                        *v /= self.roots.len() as f64;
                    }
                    *v = self.convert(*v);
                }
            }
        }
    }

    /// Adds the outputs of the simple tree at `root` for `LANES` rows of keys to their sums.
    /// The rows walk the tree in lockstep, without branches, so their walks overlap; a row
    /// that reached its leaf stays there (a leaf's right child is itself, and no key is `<=`
    /// its NaN value).
    #[inline(always)]
    fn add_lanes(&self, root: u32, keys: &[f64], sums: &mut [f64]) {
        let width = 2 * self.num_features;
        assert!(keys.len() == LANES * width && sums.len() == LANES);
        let mut at = [root; LANES];
        loop {
            let mut moved = 0;
            for (k, i) in at.iter_mut().enumerate() {
                // SAFETY: `push` made every `right` index and every internal node's `i + 1` a
                // node of this tree and every key index of a simple tree's node less than
                // `width`; a leaf's `i + 1` is computed but never followed. Row `k`'s keys are
                // `keys[k * width..(k + 1) * width]`.
                let (n, x) = unsafe {
                    let n = *self.nodes.get_unchecked(*i as usize);
                    (n, *keys.get_unchecked(k * width + n.meta as usize))
                };
                let next = std::hint::select_unpredictable(x <= n.value, *i + 1, n.right);
                moved |= next ^ *i;
                *i = next;
            }
            if moved == 0 {
                break;
            }
        }
        for (sum, &i) in sums.iter_mut().zip(&at) {
            *sum += self.leaf(self.nodes[i as usize]);
        }
    }

    /// The output of leaf node `n`.
    #[inline(always)]
    fn leaf(&self, n: Node) -> f64 {
        self.leaf_values[n.value.to_bits() as u32 as usize]
    }

    /// The output of the leaf that a row's keys reach in the simple tree rooted at `root`.
    fn simple_leaf_value(&self, root: usize, keys: &[f64]) -> f64 {
        let mut i = root;
        loop {
            let n = self.nodes[i];
            if n.right as usize == i {
                return self.leaf(n);
            }
            i = if keys[n.meta as usize] <= n.value {
                i + 1
            } else {
                n.right as usize
            };
        }
    }

    /// The output of the leaf that `row` reaches in the tree rooted at `root`, by LightGBM's
    /// rules as they are.
    fn leaf_value(&self, root: usize, row: &[f64]) -> f64 {
        let mut i = root;
        loop {
            let n = self.nodes[i];
            if n.meta & LEAF != 0 {
                return self.leaf(n);
            }
            let x = row[(n.meta & FEATURE) as usize];
            i = if self.goes_left(n.meta, n.value, x) {
                i + 1
            } else {
                n.right as usize
            };
        }
    }

    /// LightGBM's `Decision` for value `x` at a split of flags `meta` and threshold (or
    /// categorical bitset reference) `value`: whether `x` goes left.
    #[inline(always)]
    fn goes_left(&self, meta: u32, value: f64, x: f64) -> bool {
        if meta & CAT != 0 {
            self.category_left(value.to_bits(), x)
        } else if x.abs() > K_ZERO {
            x <= value
        } else if x.is_nan() {
            meta & NAN_LEFT != 0
        } else {
            meta & ZERO_LEFT != 0
        }
    }

    /// LightGBM's `CategoricalDecision`: NaN and negative categories go right, others left
    /// when their bit is set.
    #[cold]
    fn category_left(&self, bitset: u64, x: f64) -> bool {
        if x.is_nan() {
            return false;
        }
        // C++'s static_cast<int> truncates; out-of-range values land on the right either way.
        let cat = x as i32;
        if cat < 0 {
            return false;
        }
        let (offset, len) = ((bitset >> 32) as usize, (bitset & 0xffff_ffff) as usize);
        let word = cat as usize / 32;
        word < len && (self.cat_bits[offset + word] >> (cat % 32)) & 1 == 1
    }

    fn convert(&self, x: f64) -> f64 {
        match self.convert {
            Convert::Identity => x,
            Convert::SignedSquare => {
                let sign = (x > 0.0) as i32 - (x < 0.0) as i32;
                sign as f64 * x * x
            }
            Convert::Sigmoid(s) => 1.0 / (1.0 + (-s * x).exp()),
            Convert::Logistic => 1.0 / (1.0 + (-x).exp()),
            Convert::Exp => x.exp(),
            Convert::Log1pExp => x.exp().ln_1p(),
        }
    }

    /// Appends a leaf: its own right child, so that a walk that reached it stays.
    fn push_leaf(&mut self, value: f64, simple: bool) {
        let at = self.nodes.len() as u32;
        self.nodes.push(Node {
            value: f64::from_bits(f64::NAN.to_bits() | self.leaf_values.len() as u64),
            meta: if simple { 0 } else { LEAF },
            right: at,
        });
        self.leaf_values.push(value);
    }

    /// Appends one tree in pre-order.
    fn push(&mut self, t: &TextTree) -> Result<()> {
        self.roots.push(self.nodes.len() as u32);
        // LightGBM only tests the categorical bit in trees that have categorical splits.
        let has_cat = t.num_cat > 0;
        let internal = t.num_leaves - 1;
        let simple = (0..internal).all(|i| {
            let dt = t.decision_type[i];
            !(has_cat && dt & 1 != 0) && (dt >> 2) & 3 != 1 && !t.threshold[i].is_nan()
        });
        self.simple.push(simple);
        let cat_base = self.cat_bits.len();
        if t.num_leaves <= 1 {
            self.push_leaf(t.leaf_value[0], true);
            self.push_shap(t, cat_base);
            return Ok(());
        }
        if has_cat {
            self.cat_bits.extend_from_slice(&t.cat_threshold);
        }
        let mut seen = 0usize;
        // (child reference, index of the parent whose `right` to fill)
        let mut stack: Vec<(i64, Option<usize>)> = vec![(0, None)];
        while let Some((child, parent)) = stack.pop() {
            seen += 1;
            if seen > 2 * t.num_leaves {
                bail!("its nodes do not form a tree");
            }
            let at = self.nodes.len();
            if let Some(p) = parent {
                self.nodes[p].right = at as u32;
            }
            if child < 0 {
                let l = !child as usize;
                let v = *t
                    .leaf_value
                    .get(l)
                    .ok_or_else(|| anyhow!("leaf {l} out of range"))?;
                self.push_leaf(v, simple);
                continue;
            }
            let i = child as usize;
            if i >= internal {
                bail!("node {i} out of range");
            }
            let f = t.split_feature[i];
            if !(0..self.num_features as i64).contains(&f) {
                bail!("split feature {f} out of range");
            }
            let dt = t.decision_type[i];
            let mut meta = f as u32;
            let value;
            if has_cat && dt & 1 != 0 {
                let c = t.threshold[i] as i64;
                let (lo, hi) = match (
                    t.cat_boundaries.get(c as usize),
                    t.cat_boundaries.get(c as usize + 1),
                ) {
                    (Some(&lo), Some(&hi)) if c >= 0 && 0 <= lo && lo <= hi => {
                        (lo as usize, hi as usize)
                    }
                    _ => bail!("categorical split {c} has no bitset"),
                };
                if hi > t.cat_threshold.len() {
                    bail!("categorical bitset {c} out of range");
                }
                meta |= CAT;
                value = f64::from_bits((((cat_base + lo) as u64) << 32) | (hi - lo) as u64);
            } else {
                let thr = t.threshold[i];
                let (zero_left, nan_left) = missing_left(dt, thr);
                if simple {
                    meta = 2 * meta + nan_left as u32;
                } else {
                    meta |=
                        if zero_left { ZERO_LEFT } else { 0 } | if nan_left { NAN_LEFT } else { 0 };
                }
                value = thr;
            }
            self.nodes.push(Node {
                value,
                meta,
                right: 0,
            });
            // Pre-order: the left subtree comes right after its parent, then the right one.
            stack.push((t.right[i], Some(at)));
            stack.push((t.left[i], None));
        }
        if seen != 2 * t.num_leaves - 1 {
            bail!("its nodes do not form a tree");
        }
        self.push_shap(t, cat_base);
        Ok(())
    }

    /// Appends the TreeSHAP data of a tree `push` validated.
    fn push_shap(&mut self, t: &TextTree, cat_base: usize) {
        if let Some(trees) = &mut self.shap {
            match shap::ShapTree::new(t, cat_base) {
                Some(s) => trees.push(s),
                None => self.shap = None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::text::legacy_atof;
    use super::*;

    const STUMP: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=1\nobjective=regression\nfeature_names=a b\nfeature_infos=none none\n\nTree=0\nnum_leaves=3\nnum_cat=0\nsplit_feature=0 1\nthreshold=0.5 -1.0000000180025095e-35\ndecision_type=DT0 DT1\nleft_child=-1 -2\nright_child=1 -3\nleaf_value=1 2 4\nshrinkage=1\n\n\nend of trees\n";

    fn stump(dt0: u8, dt1: u8) -> Forest {
        Forest::parse(
            &STUMP
                .replace("DT0", &dt0.to_string())
                .replace("DT1", &dt1.to_string()),
        )
        .unwrap()
    }

    fn one(f: &Forest, a: f64, b: f64) -> f64 {
        f.predict(&[a, b], 1).unwrap()[0]
    }

    #[test]
    fn numerical_rules_and_missing_types() {
        // Missing type None: NaN and tiny values behave like 0.
        let f = stump(0, 0);
        assert_eq!(one(&f, 0.2, 5.0), 1.0);
        assert_eq!(one(&f, 0.7, 5.0), 4.0);
        assert_eq!(one(&f, 0.7, -3.0), 2.0);
        assert_eq!(one(&f, 0.7, f64::NAN), 4.0);
        assert_eq!(one(&f, f64::NAN, 5.0), 1.0);
        // -1e-35 is not above the threshold -1e-35, but LightGBM reads it as 0, which is.
        assert_eq!(one(&f, 0.7, -(1e-35f32 as f64)), 4.0);
        // Missing type Zero: zeros, tiny values and NaN go the default way.
        let f = stump(0, 4);
        assert_eq!(one(&f, 0.7, 0.0), 4.0);
        assert_eq!(one(&f, 0.7, f64::NAN), 4.0);
        assert_eq!(one(&f, 0.7, -3.0), 2.0);
        let f = stump(0, 4 | 2);
        assert_eq!(one(&f, 0.7, 0.0), 2.0);
        assert_eq!(one(&f, 0.7, f64::NAN), 2.0);
        assert_eq!(one(&f, 0.7, 1e-36), 2.0);
        assert_eq!(one(&f, 0.7, 5.0), 4.0);
        // Missing type NaN: NaN goes the default way, zeros are compared.
        let f = stump(0, 8 | 2);
        assert_eq!(one(&f, 0.7, f64::NAN), 2.0);
        assert_eq!(one(&f, 0.7, 3.0), 4.0);
        assert_eq!(one(&f, 0.7, 0.0), 4.0);
        let f = stump(8, 8);
        assert_eq!(one(&f, f64::NAN, 0.0), 4.0);
    }

    #[test]
    fn refuses_what_it_cannot_reproduce() {
        let linear = STUMP
            .replace("DT0", "0")
            .replace("DT1", "0")
            .replace("shrinkage=1", "shrinkage=1\nis_linear=1");
        let e = Forest::parse(&linear).unwrap_err();
        assert!(format!("{e:#}").contains("linear trees"), "{e:#}");
        let multi = STUMP.replace("num_class=1", "num_class=3").replace(
            "num_tree_per_iteration=1",
            "num_tree_per_iteration=3\nobjective=multiclass num_class:3",
        );
        let e = Forest::parse(&multi).unwrap_err();
        assert!(format!("{e:#}").contains("3 classes"), "{e:#}");
        let e = Forest::parse("hello").unwrap_err();
        assert!(
            format!("{e:#}").contains("not a LightGBM text model"),
            "{e:#}"
        );
    }

    #[test]
    fn legacy_atof_matches_lightgbm_on_simple_values() {
        assert_eq!(legacy_atof("1"), 1.0);
        assert_eq!(legacy_atof("0.5"), 0.5);
        assert_eq!(legacy_atof("2e1"), 20.0);
        assert_eq!(legacy_atof("-1.5"), -1.5);
    }
}
