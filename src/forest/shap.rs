//! Path-dependent TreeSHAP on the flattened forest: per row, one contribution per feature and
//! then the bias, in the model's raw score, as LightGBM's `predict_contrib` (within rounding).
//!
//! What is computed is LightGBM's `Tree::TreeSHAP`: the Shapley values of the game in which a
//! leaf `l` pays `v_l * prod_{j in S} o_j * prod_{j in U \ S} z_j` to a coalition `S` of the
//! features `U` on its path, where `z_j` is the product of the cover ratios
//! (`count(child) / count(node)`, from the text model's `internal_count` and `leaf_count`) of
//! the path's edges that split on `j`, and `o_j` is 1 when the row follows all of them (by the
//! same decision rules as prediction: kZeroThreshold, missing types, categorical bitsets) and 0
//! otherwise. With `f_j(t) = z_j + (o_j - z_j) t` and `P_l = prod_{j in U} f_j`, the Beta
//! integral turns the Shapley weights `|S|! (d-1-|S|)! / d!` into
//!
//! `phi_i += v_l (o_i - z_i) int_0^1 P_l(t) / f_i(t) dt`,
//!
//! a polynomial of degree `d - 1 < D` (`D`: the most features on a path of the tree), so
//! Gauss-Legendre quadrature with `ceil(D / 2)` nodes `t_q` is exact (the observation behind
//! "Linear TreeSHAP", Yu et al. 2022). `(o_i - z_i) / f_i` is `-1 / (1 - t)` when the row does
//! not follow `i`, and `(1 - z_i) / (z_i + (1 - z_i) t)` when it does.
//!
//! Linear in the tree's size per row: every value is a vector over the quadrature nodes. Top
//! down, `P` at a node is its parent's times the factor of the edge between them (a feature
//! split again on the path replaces its factor: the edge's factor is the ratio of the new one
//! to the old one). Bottom up, `T_n = sum_{leaves l under n} v_l P_l` is the sum of the
//! children's. An edge on feature `i` is the last split on `i` for the leaves under it but not
//! under the next splits on `i` below it, so it adds `sum_q w_q (T_child - sum T_next)(t_q)
//! (o_i - z_i) / f_i(t_q)` to `phi_i`. Per row and tree that is `O(nodes * ceil(D / 2))`
//! multiplications and additions, no divisions (all factors and weights are precomputed when
//! the model is parsed), no data-dependent branches, in 4-wide chunks of quadrature nodes (AVX2
//! when the CPU has it, with the same results: no fused operations, fixed summation order).
//! Rows go through a tree 4 at a time (the rest one by one, with the same bits), so that its
//! nodes and tables are read once for the 4 and their independent arithmetic overlaps.
//! LightGBM's recursion costs `O(leaves * D^2)` per row and tree, with dependent divisions.
//!
//! Matching LightGBM: the bias is LightGBM's `ExpectedValue` (`sum_l count_l / count_root *
//! v_l`) computed as it does, summed over the trees in order from 0, so it is bit-identical;
//! the features' values agree to rounding (about 1e-15 relative), not bit for bit. As LightGBM's
//! `GBDT::PredictContrib`, averaged forests (random forest) are not divided by the number of
//! trees. Multiclass models are refused by the forest's parser, as by the evaluator.

use super::text::TextTree;
use super::{Forest, CAT, FEATURE, NAN_LEFT, ZERO_LEFT};
use anyhow::{anyhow, Result};
use std::hint::select_unpredictable;

/// Fewest rows worth a thread of their own.
const MIN_ROWS_PER_THREAD: usize = 64;
/// Rows that go through a tree together.
const ROWS: usize = 4;
/// No node.
const NONE: u32 = u32::MAX;

/// Four quadrature nodes' worth of values.
type Chunk = [f64; 4];

/// One split node: its threshold (or categorical bitset reference) and feature with flags, as
/// the evaluator's non-simple nodes.
#[derive(Debug, Clone, Copy)]
struct Split {
    value: f64,
    meta: u32,
}

/// One node of a tree in pre-order (its left child is the next node), with the edge from its
/// parent.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// The parent's node index.
    parent: u32,
    /// The edge: the parent's split (LightGBM's index) << 1 | 1 if this is its left child.
    edge: u32,
    /// The node below the previous edge on the same feature on the path, or `NONE`.
    prev: u32,
    /// The feature the parent splits on.
    feature: u32,
    /// The right child; 0 for a leaf.
    right: u32,
    /// The next splits on `feature` at or below this node: `excluded` in the tree.
    excluded: (u32, u32),
    /// The leaf value (leaves).
    value: f64,
}

/// One tree's TreeSHAP data.
#[derive(Debug, Clone)]
pub(super) struct ShapTree {
    /// LightGBM's internal nodes, in its order.
    splits: Vec<Split>,
    /// Pre-order; the root first.
    nodes: Vec<Node>,
    excluded: Vec<u32>,
    /// Chunks of quadrature nodes.
    chunks: usize,
    /// Per node, 4 * `chunks` chunks for the edge from its parent: its factor (new `f` over
    /// the feature's old one) when the row followed the feature's earlier splits on the path
    /// (or there are none) and follows this one; when it followed them but not this one; when
    /// it did not follow them (the cover ratio); then the weights `w_q (1 - z) / (z + (1 - z)
    /// t_q)` of a followed feature. Padding nodes have factors 1 and weights 0.
    tables: Vec<Chunk>,
    /// `-w_q / (1 - t_q)`: the weights of a feature not followed.
    not_followed: Vec<Chunk>,
    /// LightGBM's `ExpectedValue`.
    expected: f64,
}

/// Gauss-Legendre nodes and weights on [0, 1] for `n` points (Newton's method on the
/// Legendre polynomial `P_n`, from the usual cosine estimates).
fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
            let mut dp = 1.0;
            for _ in 0..100 {
                // P_{n-1}(x) and P_n(x) by the recurrence, then P_n'(x).
                let (mut p0, mut p1) = (1.0, x);
                for k in 2..=n {
                    let k = k as f64;
                    (p0, p1) = (p1, ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k);
                }
                dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
                let dx = p1 / dp;
                x -= dx;
                if dx.abs() < 1e-16 {
                    break;
                }
            }
            ((x + 1.0) / 2.0, 1.0 / ((1.0 - x * x) * dp * dp))
        })
        .collect()
}

impl ShapTree {
    /// The TreeSHAP data of a validated tree whose categorical bitsets start at `cat_base` in
    /// the forest's; `None` when the model has no node counts.
    pub(super) fn new(t: &TextTree, cat_base: usize) -> Option<Self> {
        let mut tree = ShapTree {
            splits: Vec::new(),
            nodes: Vec::new(),
            excluded: Vec::new(),
            chunks: 0,
            tables: Vec::new(),
            not_followed: Vec::new(),
            expected: t.leaf_value[0],
        };
        if t.num_leaves <= 1 {
            return Some(tree);
        }
        let internal = t.num_leaves - 1;
        if t.leaf_count.len() != t.num_leaves || t.internal_count.len() != internal {
            return None;
        }
        // As LightGBM's ExpectedValue, operation for operation.
        let total = t.internal_count[0];
        tree.expected = 0.0;
        for (c, v) in t.leaf_count.iter().zip(&t.leaf_value) {
            tree.expected += (c / total) * v;
        }
        let has_cat = t.num_cat > 0;
        for i in 0..internal {
            let dt = t.decision_type[i];
            let mut meta = t.split_feature[i] as u32;
            let value = if has_cat && dt & 1 != 0 {
                // `Forest::push` checked the bitset's bounds.
                let c = t.threshold[i] as usize;
                let (lo, hi) = (
                    t.cat_boundaries[c] as usize,
                    t.cat_boundaries[c + 1] as usize,
                );
                meta |= CAT;
                f64::from_bits((((cat_base + lo) as u64) << 32) | (hi - lo) as u64)
            } else {
                let thr = t.threshold[i];
                let (zero_left, nan_left) = super::missing_left(dt, thr);
                meta |= if zero_left { ZERO_LEFT } else { 0 } | if nan_left { NAN_LEFT } else { 0 };
                thr
            };
            tree.splits.push(Split { value, meta });
        }
        let count = |c: i64| {
            if c < 0 {
                t.leaf_count[!c as usize]
            } else {
                t.internal_count[c as usize]
            }
        };
        // Pre-order walk; per node: its split feature (internal nodes), and its edge's cover
        // ratio, z before (of the previous split on the feature) and z after.
        let mut own: Vec<Option<u32>> = Vec::new();
        let mut cover: Vec<(f64, f64, f64)> = Vec::new();
        let mut most = 1;
        // (node reference, parent, parent's split, left, path: (feature, node, z))
        type Frame = (i64, u32, usize, u32, Vec<(u32, u32, f64)>);
        let mut stack: Vec<Frame> = vec![(0, NONE, 0, 0, Vec::new())];
        while let Some((child, parent, split, left, mut path)) = stack.pop() {
            let at = tree.nodes.len() as u32;
            let mut node = Node {
                parent,
                edge: NONE,
                prev: NONE,
                feature: 0,
                right: 0,
                excluded: (0, 0),
                value: 0.0,
            };
            let mut c = (1.0, 1.0, 1.0);
            if parent != NONE {
                if left == 0 {
                    tree.nodes[parent as usize].right = at;
                }
                let f = t.split_feature[split] as u32;
                let ratio = count(child) / t.internal_count[split];
                (node.edge, node.feature) = ((split as u32) << 1 | left, f);
                match path.iter_mut().find(|e| e.0 == f) {
                    Some(e) => {
                        node.prev = e.1;
                        c = (ratio, e.2, ratio * e.2);
                        (e.1, e.2) = (at, c.2);
                    }
                    None => {
                        c = (ratio, 1.0, ratio);
                        path.push((f, at, ratio));
                    }
                }
            }
            if child < 0 {
                node.value = t.leaf_value[!child as usize];
                most = most.max(path.len());
                own.push(None);
            } else {
                let i = child as usize;
                own.push(Some(t.split_feature[i] as u32));
                stack.push((t.right[i], at, i, 0, path.clone()));
                stack.push((t.left[i], at, i, 1, path));
            }
            tree.nodes.push(node);
            cover.push(c);
        }
        // The next splits on an edge's feature at or below it.
        for k in 1..tree.nodes.len() {
            let f = tree.nodes[k].feature;
            let start = tree.excluded.len() as u32;
            let mut todo = vec![k];
            while let Some(m) = todo.pop() {
                match own[m] {
                    Some(g) if g == f => tree.excluded.push(m as u32),
                    Some(_) => todo.extend([m + 1, tree.nodes[m].right as usize]),
                    None => {}
                }
            }
            tree.nodes[k].excluded = (start, tree.excluded.len() as u32);
        }
        let q = most.div_ceil(2);
        let c = q.div_ceil(4);
        tree.chunks = c;
        let rule = gauss_legendre(q);
        let mut not_followed = vec![0.0; 4 * c];
        for (x, &(t, w)) in not_followed.iter_mut().zip(&rule) {
            *x = -w / (1.0 - t);
        }
        tree.not_followed = to_chunks(&not_followed);
        let mut table = vec![0.0; 16 * c];
        for &(ratio, before, z) in &cover {
            table.fill(1.0);
            table[12 * c..].fill(0.0);
            for (j, &(t, w)) in rule.iter().enumerate() {
                // The old factor of a followed feature (1 if there is none).
                let old = before + (1.0 - before) * t;
                let follow = z + (1.0 - z) * t;
                table[j] = follow / old;
                table[4 * c + j] = z * (1.0 - t) / old;
                table[8 * c + j] = ratio;
                table[12 * c + j] = w * (1.0 - z) / follow;
            }
            tree.tables.extend(to_chunks(&table));
        }
        Some(tree)
    }
}

/// Values as chunks (their number a multiple of 4).
fn to_chunks(v: &[f64]) -> Vec<Chunk> {
    v.chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}

/// Per-thread scratch space.
struct Scratch {
    /// Per split (LightGBM's index), 1 when the row goes left.
    left: Vec<u8>,
    /// Per node, whether the row follows every split on the feature of its edge on its path.
    follow: Vec<bool>,
    /// Per node, `chunks` chunks: `P`, then `T`.
    values: Vec<Chunk>,
    /// `chunks` chunks: an edge's own part of `T`.
    own: Vec<Chunk>,
}

impl Forest {
    /// TreeSHAP feature contributions for row-major rows with up to `threads` threads: per
    /// row, one value per feature and then the bias, in raw score, as LightGBM's
    /// `predict_contrib` (each row sums to the raw score; see the module doc).
    pub fn contributions(&self, rows: &[f64], threads: usize) -> Result<Vec<f64>> {
        let trees = self.shap.as_deref().ok_or_else(|| {
            anyhow!(
                "the model has no node counts (leaf_count, internal_count), which TreeSHAP needs"
            )
        })?;
        let chunk = |x: &[f64], o: &mut [f64]| self.contributions_chunk(trees, x, o);
        self.by_row_blocks(
            rows,
            threads,
            MIN_ROWS_PER_THREAD,
            self.num_features + 1,
            chunk,
        )
    }

    /// Contributions of `rows` into `out` (zeroed), `ROWS` rows at a time (then one by one).
    fn contributions_chunk(&self, trees: &[ShapTree], rows: &[f64], out: &mut [f64]) {
        let most = |f: fn(&ShapTree) -> usize| trees.iter().map(f).max().unwrap_or(0);
        let mut s = Scratch {
            left: vec![0; ROWS * most(|t| t.splits.len())],
            follow: vec![false; ROWS * most(|t| t.nodes.len())],
            values: vec![[0.0; 4]; ROWS * most(|t| t.nodes.len() * t.chunks)],
            own: vec![[0.0; 4]; ROWS * most(|t| t.chunks)],
        };
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { self.rows_avx2(trees, rows, out, &mut s) };
            return;
        }
        self.rows(trees, rows, out, &mut s);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rows_avx2(&self, trees: &[ShapTree], rows: &[f64], out: &mut [f64], s: &mut Scratch) {
        self.rows(trees, rows, out, s)
    }

    /// Contributions of `rows` into `out`, in groups of `ROWS` rows, then one by one.
    #[inline(always)]
    fn rows(&self, trees: &[ShapTree], rows: &[f64], out: &mut [f64], s: &mut Scratch) {
        let (nf, width) = (self.num_features, self.num_features + 1);
        let whole = rows.len() / (ROWS * nf) * ROWS;
        for (x, phi) in rows[..whole * nf]
            .chunks_exact(ROWS * nf)
            .zip(out.chunks_exact_mut(ROWS * width))
        {
            self.group::<ROWS>(trees, x, phi, s);
        }
        for (x, phi) in rows[whole * nf..]
            .chunks_exact(nf)
            .zip(out[whole * width..].chunks_exact_mut(width))
        {
            self.group::<1>(trees, x, phi, s);
        }
    }

    /// The contributions of `R` rows, tree by tree: the trees' tables are read once for all.
    #[inline(always)]
    fn group<const R: usize>(
        &self,
        trees: &[ShapTree],
        x: &[f64],
        phi: &mut [f64],
        s: &mut Scratch,
    ) {
        let (nf, width) = (self.num_features, self.num_features + 1);
        for t in trees {
            for r in 0..R {
                phi[r * width + nf] += t.expected;
            }
            if t.nodes.len() <= 1 {
                continue;
            }
            for (k, sp) in t.splits.iter().enumerate() {
                for r in 0..R {
                    let v = x[r * nf + (sp.meta & FEATURE) as usize];
                    s.left[k * R + r] = self.goes_left(sp.meta, sp.value, v) as u8;
                }
            }
            // Constant chunk counts for the usual depths (up to 32 features on a path).
            match t.chunks {
                1 => add_tree::<R>(t, 1, width, phi, s),
                2 => add_tree::<R>(t, 2, width, phi, s),
                3 => add_tree::<R>(t, 3, width, phi, s),
                4 => add_tree::<R>(t, 4, width, phi, s),
                c => add_tree::<R>(t, c, width, phi, s),
            }
        }
    }
}

/// Adds the contributions of tree `t` for `R` rows whose decisions are in `s.left` (split
/// `k`, row `r` at `k * R + r`) to their `phi` (`width` apart); `c` is `t.chunks` (a constant
/// where inlined). Node `k`'s chunk `i` for row `r` is at `(k * c + i) * R + r`.
#[inline(always)]
fn add_tree<const R: usize>(
    t: &ShapTree,
    c: usize,
    width: usize,
    phi: &mut [f64],
    s: &mut Scratch,
) {
    let n = t.nodes.len();
    let values = &mut s.values[..n * c * R];
    let follow = &mut s.follow[..n * R];
    let own = &mut s.own[..c * R];
    let tables = &t.tables[..4 * n * c];
    // Top down: P, and whether the row follows each edge's feature so far.
    values[..c * R].fill([1.0; 4]);
    follow[..R].fill(true);
    for k in 1..n {
        let node = &t.nodes[k];
        let (split, side) = ((node.edge >> 1) as usize, node.edge & 1);
        let parent = node.parent as usize;
        for r in 0..R {
            let goes = s.left[split * R + r] as u32 == side;
            let before = node.prev == NONE || follow[node.prev as usize * R + r];
            follow[k * R + r] = goes & before;
            let which = select_unpredictable(before, select_unpredictable(goes, 0, 1), 2);
            let factor = &tables[(4 * k + which) * c..][..c];
            for (i, f) in factor.iter().enumerate() {
                let mut p = values[(parent * c + i) * R + r];
                mul(&mut p, f);
                values[(k * c + i) * R + r] = p;
            }
        }
    }
    // Bottom up: T, and each edge's contribution from the leaves it is the last split on its
    // feature for.
    let excluded_weights = &t.not_followed[..c];
    for k in (1..n).rev() {
        let node = &t.nodes[k];
        let right = node.right as usize;
        for i in 0..c {
            for r in 0..R {
                let at = (k * c + i) * R + r;
                let mut v = values[at];
                if right == 0 {
                    for x in v.iter_mut() {
                        *x *= node.value;
                    }
                } else {
                    v = values[((k + 1) * c + i) * R + r];
                    add(&mut v, &values[(right * c + i) * R + r]);
                }
                values[at] = v;
                own[i * R + r] = v;
            }
        }
        for &m in &t.excluded[node.excluded.0 as usize..node.excluded.1 as usize] {
            for i in 0..c {
                for r in 0..R {
                    sub(&mut own[i * R + r], &values[(m as usize * c + i) * R + r]);
                }
            }
        }
        let followed = &tables[(4 * k + 3) * c..][..c];
        for r in 0..R {
            let weights = select_unpredictable(follow[k * R + r], followed, excluded_weights);
            let mut acc = [0.0; 4];
            for (i, w) in weights.iter().enumerate() {
                for ((a, x), w) in acc.iter_mut().zip(&own[i * R + r]).zip(w) {
                    *a += x * w;
                }
            }
            phi[r * width + node.feature as usize] += (acc[0] + acc[1]) + (acc[2] + acc[3]);
        }
    }
}

/// `p *= a`, node by node.
#[inline(always)]
fn mul(p: &mut Chunk, a: &Chunk) {
    for (p, a) in p.iter_mut().zip(a) {
        *p *= a;
    }
}

/// `p += a`, node by node.
#[inline(always)]
fn add(p: &mut Chunk, a: &Chunk) {
    for (p, a) in p.iter_mut().zip(a) {
        *p += a;
    }
}

/// `p -= a`, node by node.
#[inline(always)]
fn sub(p: &mut Chunk, a: &Chunk) {
    for (p, a) in p.iter_mut().zip(a) {
        *p -= a;
    }
}

#[cfg(test)]
mod tests {
    use super::super::Forest;

    /// Two trees: one splits twice on `a` (missing type NaN, then None) and on the category
    /// `c` (bitset {1, 3}); one on `b` with missing type Zero.
    const MODEL: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=2\nobjective=regression\nfeature_names=a b c\nfeature_infos=none none none\n\nTree=0\nnum_leaves=4\nnum_cat=1\nsplit_feature=0 0 2\nthreshold=0.5 -1 0\ndecision_type=10 0 1\nleft_child=1 -1 -3\nright_child=2 -2 -4\nleaf_value=1 2 4 8\nleaf_count=10 30 25 35\ninternal_count=100 40 60\ncat_boundaries=0 1\ncat_threshold=10\nshrinkage=1\n\nTree=1\nnum_leaves=2\nnum_cat=0\nsplit_feature=1\nthreshold=0\ndecision_type=6\nleft_child=-1\nright_child=-2\nleaf_value=0.5 -0.25\nleaf_count=70 30\ninternal_count=100\nshrinkage=1\n\n\nend of trees\n";

    /// One tree of `MODEL` as plain arrays, with its decisions written out.
    struct Tree {
        feature: &'static [usize],
        left: &'static [i64],
        right: &'static [i64],
        internal: &'static [f64],
        leaf: &'static [f64],
        value: &'static [f64],
        goes_left: fn(usize, f64) -> bool,
    }

    fn trees() -> [Tree; 2] {
        [
            Tree {
                feature: &[0, 0, 2],
                left: &[1, -1, -3],
                right: &[2, -2, -4],
                internal: &[100.0, 40.0, 60.0],
                leaf: &[10.0, 30.0, 25.0, 35.0],
                value: &[1.0, 2.0, 4.0, 8.0],
                goes_left: |node, x| match node {
                    0 => x.is_nan() || x <= 0.5,
                    1 => !x.is_nan() && x <= -1.0,
                    _ => !x.is_nan() && x >= 0.0 && matches!(x as i32, 1 | 3),
                },
            },
            Tree {
                feature: &[1],
                left: &[-1],
                right: &[-2],
                internal: &[100.0],
                leaf: &[70.0, 30.0],
                value: &[0.5, -0.25],
                goes_left: |_, x| x.is_nan() || x.abs() <= 1e-35f32 as f64 || x <= 0.0,
            },
        ]
    }

    /// The tree's output expected given the features in `known` (a bit set): a known feature's
    /// split is followed, an unknown one's children are weighed by their training counts.
    fn expect(t: &Tree, node: i64, x: &[f64], known: u32) -> f64 {
        if node < 0 {
            return t.value[!node as usize];
        }
        let i = node as usize;
        let f = t.feature[i];
        if known >> f & 1 == 1 {
            let next = if (t.goes_left)(i, x[f]) {
                t.left[i]
            } else {
                t.right[i]
            };
            return expect(t, next, x, known);
        }
        let count = |c: i64| {
            if c < 0 {
                t.leaf[!c as usize]
            } else {
                t.internal[c as usize]
            }
        };
        (count(t.left[i]) * expect(t, t.left[i], x, known)
            + count(t.right[i]) * expect(t, t.right[i], x, known))
            / t.internal[i]
    }

    #[test]
    fn treeshap_is_the_shapley_value_of_the_path_dependent_expectation() {
        let forest = Forest::parse(MODEL).unwrap();
        let nan = f64::NAN;
        let rows = [
            [0.2, 1.0, 1.0],
            [-3.0, -1.0, 3.0],
            [nan, 0.0, 2.0],
            [0.0, nan, nan],
            [7.0, 1e-36, -1.0],
            [-1.0, 2.0, 3.9],
            [0.5, -0.0, 1e12],
        ];
        let got = forest.contributions(rows.as_flattened(), 1).unwrap();
        let m = 3;
        let fact = |k: u32| (1..=k).product::<u32>() as f64;
        for (x, phi) in rows.iter().zip(got.chunks(m + 1)) {
            let mut want = vec![0.0; m + 1];
            for t in &trees() {
                let v = |s: u32| expect(t, 0, x, s);
                want[m] += v(0);
                for (i, w) in want.iter_mut().enumerate().take(m) {
                    for s in (0..1u32 << m).filter(|s| s >> i & 1 == 0) {
                        let k = s.count_ones();
                        let weight = fact(k) * fact(m as u32 - k - 1) / fact(m as u32);
                        *w += weight * (v(s | 1 << i) - v(s));
                    }
                }
            }
            for (g, w) in phi.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "{x:?}: {phi:?}, expected {want:?}");
            }
        }
    }

    #[test]
    fn a_model_without_node_counts_cannot_be_explained() {
        let text: String = MODEL
            .lines()
            .filter(|l| !l.starts_with("leaf_count=") && !l.starts_with("internal_count="))
            .map(|l| format!("{l}\n"))
            .collect();
        let forest = Forest::parse(&text).unwrap();
        assert_eq!(forest.predict(&[0.2, 1.0, 1.0], 1).unwrap().len(), 1);
        let e = forest.contributions(&[0.2, 1.0, 1.0], 1).unwrap_err();
        assert!(e.to_string().contains("node counts"), "{e}");
    }
}
