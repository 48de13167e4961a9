//! The kernels of the CPU training pass ([`super::host_train`]): matrix products through
//! `gemm` split into fixed pieces, reductions in eight lanes, and the fused loops of LayerNorm,
//! GELU, causal softmax and cross-entropy, each compiled for AVX2 too and chosen at run time.
//! Every piece's summation order is fixed, so the results do not depend on the thread count;
//! it is also each stage's float rounding, pinned by the stage versions: change a loop here
//! and bump the versions of the kinds that train (docs/adr/0009-host-training-pass.md).

use rayon::prelude::*;

use super::host::{LN_EPS, Norm, exp};

/// Rows per parallel work item in row-wise work.
pub const ROWS: usize = 128;
/// Weight rows per parallel work item in the weight gradients.
pub const WEIGHT_ROWS: usize = 64;
/// Query rows (and key columns) per block of causal attention.
pub const ATT_BLOCK: usize = 32;

/// Defines `fn $name` whose body is compiled twice, as is and for AVX2, the copy chosen at
/// run time (as the decoding step's loops in [`super::host`]): the same operations in the
/// same order, without fused multiply-add, so both give identical results.
macro_rules! avx2_too {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            #[allow(clippy::too_many_arguments)]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                imp($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { avx2($($arg),*) };
            }
            imp($($arg),*)
        }
    };
}

/// A row-major or transposed matrix view of a slice: element `(i, j)` at `i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    s: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// `rows × cols` row-major with row stride `ld`, starting at `s[0]`.
    pub(super) fn rm(s: &'a [f32], rows: usize, cols: usize, ld: usize) -> Self {
        View { s, rows, cols, rs: ld, cs: 1 }
    }

    pub(super) fn t(self) -> Self {
        View { s: self.s, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    pub(super) fn fits(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.s.len()
    }
}

/// `c = a · b` (or `c += a · b` with `accumulate`), `c` row-major with row stride `ldc`;
/// single-threaded (the callers split the work).
pub(super) fn mm(c: &mut [f32], ldc: usize, a: View, b: View, accumulate: bool) {
    mm_scaled(c, ldc, a, b, accumulate, 1.0);
}

/// [`mm`] with the product multiplied by `scale`.
pub(super) fn mm_scaled(c: &mut [f32], ldc: usize, a: View, b: View, accumulate: bool, scale: f32) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && a.fits() && b.fits(), "matmul operand shapes");
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * ldc + n <= c.len(), "matmul output shape");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c[r * ldc..r * ldc + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: every index read through `a` and `b` and written through `c` lies inside its
    // slice (checked above); `c` is a `&mut` borrow, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.s.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.s.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `c[N][n] (+)= a[N][k] · b` with the rows split into chunks of [`ROWS`].
pub(super) fn rows_mm(c: &mut [f32], n: usize, a: &[f32], k: usize, b: View, accumulate: bool) {
    c.par_chunks_mut(ROWS * n).zip(a.par_chunks(ROWS * k)).for_each(|(cc, ac)| {
        let rows = cc.len() / n;
        mm(cc, n, View::rm(ac, rows, k, k), b, accumulate);
    });
}

/// `dw[k_in][n] = x[N][k_in]ᵀ · dy[N][n]`, split over the rows of `dw`.
pub(super) fn weight_grad(dw: &mut [f32], x: &[f32], k_in: usize, dy: &[f32], n: usize) {
    let rows = dy.len() / n;
    dw.par_chunks_mut(WEIGHT_ROWS * n).enumerate().for_each(|(c, dwc)| {
        let i0 = c * WEIGHT_ROWS;
        let a = View { s: &x[i0..], rows: dwc.len() / n, cols: rows, rs: 1, cs: k_in };
        mm(dwc, n, a, View::rm(dy, rows, n, n), false);
    });
}

/// `Σ x` in eight lanes, which the compiler vectorises (a plain running sum is one chain of
/// dependent additions); the order is fixed, so the result is too.
#[inline(always)]
pub(super) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `Σ a b` in eight lanes, as [`sum`]. Not `host::dot`: that one adds its lanes in another
/// order, and each stage's float rounding is pinned by its version (sharing one function
/// changed the trained policies' tables under unchanged cache keys).
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// The largest element, in eight lanes (−∞ for none).
#[inline(always)]
pub(super) fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for i in 0..8 {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// Sums of per-chunk partial vectors, added in chunk order.
pub(super) fn add_in_order(parts: Vec<Vec<f32>>, width: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; width];
    for p in parts {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

avx2_too! {
    pub(super) fn col_sum_rows(dy: &[f32], out: &mut [f32]) {
        for row in dy.chunks_exact(out.len()) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
    }
}

/// Column sums of `dy[N][n]` (a bias gradient).
pub(super) fn col_sum(dy: &[f32], n: usize) -> Vec<f32> {
    let parts = dy
        .par_chunks(ROWS * n)
        .map(|ch| {
            let mut p = vec![0.0f32; n];
            col_sum_rows(ch, &mut p);
            p
        })
        .collect();
    add_in_order(parts, n)
}

avx2_too! {
    pub(super) fn add_bias_rows(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    }
}

pub(super) fn add_bias(x: &mut [f32], bias: &[f32]) {
    x.par_chunks_mut(ROWS * bias.len()).for_each(|ch| add_bias_rows(ch, bias));
}

/// `buf` at length `len`; its contents are stale unless the length changed (then zero):
/// for buffers that the step overwrites in full.
pub(super) fn sized(buf: &mut Vec<f32>, len: usize) {
    if buf.len() != len {
        buf.clear();
        buf.resize(len, 0.0);
    }
}

/// What a LayerNorm's backward pass reads: the normalised input and the inverse deviation.
#[derive(Default)]
pub(super) struct NormActs {
    xhat: Vec<f32>,
    rstd: Vec<f32>,
}

avx2_too! {
    pub(super) fn ln_forward_rows(x: &[f32], gamma: &[f32], beta: &[f32], out: &mut [f32], xhat: &mut [f32], rstd: &mut [f32]) {
        let d = gamma.len();
        for (((or, hr), r), xr) in
            out.chunks_exact_mut(d).zip(xhat.chunks_exact_mut(d)).zip(rstd.iter_mut()).zip(x.chunks_exact(d))
        {
            let mean = sum(xr) / d as f32;
            for (h, v) in hr.iter_mut().zip(xr) {
                *h = v - mean;
            }
            let var = dot(hr, hr) / d as f32;
            let inv = 1.0 / (var + LN_EPS).sqrt();
            *r = inv;
            for (((o, h), g), b) in or.iter_mut().zip(hr.iter_mut()).zip(gamma).zip(beta) {
                *h *= inv;
                *o = *h * g + b;
            }
        }
    }
}

/// LayerNorm over rows of `d` (biased variance, as burn's): writes `out`, keeps `xhat`, `rstd`.
pub(super) fn ln_forward(x: &[f32], n: &Norm, d: usize, out: &mut Vec<f32>, acts: &mut NormActs) {
    let rows = x.len() / d;
    sized(out, rows * d);
    sized(&mut acts.xhat, rows * d);
    sized(&mut acts.rstd, rows);
    out.par_chunks_mut(ROWS * d)
        .zip(acts.xhat.par_chunks_mut(ROWS * d))
        .zip(acts.rstd.par_chunks_mut(ROWS))
        .zip(x.par_chunks(ROWS * d))
        .for_each(|(((oc, hc), rc), xc)| ln_forward_rows(xc, &n.gamma, &n.beta, oc, hc, rc));
}

avx2_too! {
    /// `dx += ∂/∂x` for rows of `dy`; `partial` (`[2d]`) gains the scale's and the shift's gradients.
    pub(super) fn ln_backward_rows(dy: &[f32], xhat: &[f32], rstd: &[f32], gamma: &[f32], dx: &mut [f32], partial: &mut [f32], g: &mut [f32]) {
        let d = gamma.len();
        let (pg, pb) = partial.split_at_mut(d);
        for (((dxr, dyr), hr), r) in dx.chunks_exact_mut(d).zip(dy.chunks_exact(d)).zip(xhat.chunks_exact(d)).zip(rstd) {
            for ((((gi, dyi), hi), gm), (pg, pb)) in
                g.iter_mut().zip(dyr).zip(hr).zip(gamma).zip(pg.iter_mut().zip(pb.iter_mut()))
            {
                *pg += dyi * hi;
                *pb += dyi;
                *gi = dyi * gm;
            }
            let (m1, m2) = (sum(g), dot(g, hr));
            let (m1, m2) = (m1 / d as f32, m2 / d as f32);
            for ((o, gi), hi) in dxr.iter_mut().zip(g.iter()).zip(hr) {
                *o += r * (gi - m1 - hi * m2);
            }
        }
    }
}

/// LayerNorm backward: `dx += ∂/∂x` of the gradient `dy` at its output; returns the gradients
/// of the scale and the shift.
pub(super) fn ln_backward(
    dy: &[f32],
    acts: &NormActs,
    gamma: &[f32],
    d: usize,
    dx: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let parts: Vec<Vec<f32>> = dx
        .par_chunks_mut(ROWS * d)
        .zip(dy.par_chunks(ROWS * d))
        .zip(acts.xhat.par_chunks(ROWS * d))
        .zip(acts.rstd.par_chunks(ROWS))
        .map(|(((dxc, dyc), hc), rc)| {
            let mut p = vec![0.0f32; 2 * d];
            let mut g = vec![0.0f32; d];
            ln_backward_rows(dyc, hc, rc, gamma, dxc, &mut p, &mut g);
            p
        })
        .collect();
    let both = add_in_order(parts, 2 * d);
    (both[..d].to_vec(), both[d..].to_vec())
}

pub(super) const GELU_C: f32 = 2.0 * 0.797_884_6;
pub(super) const GELU_A: f32 = 0.044715;
/// Elements per parallel work item in element-wise work.
pub(super) const ELEMS: usize = 16_384;

avx2_too! {
    /// GELU (tanh form, as the model's): `g = u · s` with `s = σ(C(u + A u³))`, kept for the
    /// backward pass.
    pub(super) fn gelu_forward_chunk(f: &[f32], s: &mut [f32], g: &mut [f32]) {
        for ((gi, si), &u) in g.iter_mut().zip(s.iter_mut()).zip(f) {
            *si = 1.0 / (1.0 + exp(-GELU_C * (u + GELU_A * u * u * u)));
            *gi = u * *si;
        }
    }
}

avx2_too! {
    /// `dg` becomes the gradient at GELU's input: `dg · (s + u s (1 − s) C (1 + 3A u²))`.
    pub(super) fn gelu_backward_chunk(f: &[f32], s: &[f32], dg: &mut [f32]) {
        for ((g, &u), &si) in dg.iter_mut().zip(f).zip(s) {
            *g *= si + u * si * (1.0 - si) * GELU_C * (1.0 + 3.0 * GELU_A * u * u);
        }
    }
}

avx2_too! {
    /// Causal softmax of rows `first..` of a score matrix with row stride `t`, in place: row
    /// `i` over columns `..=i`, zero to the end of the row.
    pub(super) fn softmax_causal(s: &mut [f32], t: usize, first: usize) {
        for (i, row) in s.chunks_exact_mut(t).enumerate() {
            let (live, hidden) = row.split_at_mut(first + i + 1);
            let m = max(live);
            for x in live.iter_mut() {
                *x = exp(*x - m);
            }
            let inv = 1.0 / sum(live);
            for x in live.iter_mut() {
                *x *= inv;
            }
            hidden.fill(0.0);
        }
    }
}

avx2_too! {
    /// `dP` (in `ds`, rows of stride `t`, columns `..width`) becomes the gradient at the
    /// scaled scores: `scale · P ∘ (dP − rowsum(P ∘ dP))`.
    pub(super) fn softmax_backward(ds: &mut [f32], p: &[f32], t: usize, width: usize, scale: f32) {
        for (dsr, prow) in ds.chunks_mut(t).zip(p.chunks(t)) {
            let (dsr, prow) = (&mut dsr[..width], &prow[..width]);
            let d = dot(dsr, prow);
            for (x, pi) in dsr.iter_mut().zip(prow) {
                *x = pi * (*x - d) * scale;
            }
        }
    }
}

avx2_too! {
    /// Cross-entropy of rows of logits against `targets`; each row becomes its gradient
    /// `(softmax − one-hot) · norm` (zero for an ignored target). Returns (summed loss, argmax hits).
    pub(super) fn cross_entropy_rows(logits: &mut [f32], targets: &[u32], ignore: Option<u32>, vocab: usize, norm: f32) -> (f64, usize) {
        let (mut loss, mut correct) = (0.0f64, 0usize);
        for (row, &y) in logits.chunks_exact_mut(vocab).zip(targets) {
            if Some(y) == ignore {
                row.fill(0.0);
                continue;
            }
            let m = max(row);
            let arg = row.iter().position(|&v| v == m).unwrap_or(0);
            correct += usize::from(arg == y as usize);
            let target_logit = row[y as usize];
            for v in row.iter_mut() {
                *v = exp(*v - m);
            }
            let z = sum(row);
            loss += (z.ln() + m - target_logit) as f64;
            let inv = norm / z;
            for v in row.iter_mut() {
                *v *= inv;
            }
            row[y as usize] -= norm;
        }
        (loss, correct)
    }
}

avx2_too! {
    /// `log_softmax` of a row into `out`.
    pub(super) fn log_softmax_row(row: &[f32], out: &mut [f32]) {
        let m = max(row);
        for (o, &v) in out.iter_mut().zip(row) {
            *o = exp(v - m);
        }
        let log_z = sum(out).ln() + m;
        for (o, &v) in out.iter_mut().zip(row) {
            *o = v - log_z;
        }
    }
}

avx2_too! {
    /// The policy-gradient loss of rows of logits (`[rows][vocab]`), each with its token
    /// (`None`: not a response token, gradient zero): `−w/B · log p(y) + β/B · KL(p ‖ q)`,
    /// `q` the reference's distribution from its logits `reference` (same rows). Each row
    /// becomes its gradient `(w/B)(p − onehot(y)) + (β/B) p ∘ (log p − log q − KL)`. Returns
    /// the summed loss, KL and entropy of the rows.
    pub(super) fn pg_rows(
        logits: &mut [f32],
        reference: Option<&[f32]>,
        picks: &[Option<(u32, f32)>],
        vocab: usize,
        inv_b: f32,
        beta: f32,
        logp: &mut [f32],
        logq: &mut [f32],
    ) -> (f64, f64, f64) {
        let (mut loss, mut kl_sum, mut entropy) = (0.0f64, 0.0f64, 0.0f64);
        for (i, (row, pick)) in logits.chunks_exact_mut(vocab).zip(picks).enumerate() {
            let Some((y, w)) = *pick else {
                row.fill(0.0);
                continue;
            };
            log_softmax_row(row, logp);
            let mut h = 0.0f32;
            for (o, &l) in row.iter_mut().zip(logp.iter()) {
                *o = exp(l);
                h -= *o * l;
            }
            entropy += h as f64;
            loss -= (w * inv_b * logp[y as usize]) as f64;
            let p = row;
            let scale = w * inv_b;
            if let Some(reference) = reference {
                log_softmax_row(&reference[i * vocab..(i + 1) * vocab], logq);
                let mut kl = 0.0f32;
                for ((&pi, &l), &q) in p.iter().zip(logp.iter()).zip(logq.iter()) {
                    kl += pi * (l - q);
                }
                kl_sum += (kl * inv_b) as f64;
                loss += (beta * kl * inv_b) as f64;
                let k = beta * inv_b;
                for ((g, &l), &q) in p.iter_mut().zip(logp.iter()).zip(logq.iter()) {
                    let pi = *g;
                    *g = scale * pi + k * pi * (l - q - kl);
                }
            } else {
                for g in p.iter_mut() {
                    *g *= scale;
                }
            }
            p[y as usize] -= scale;
        }
        (loss, kl_sum, entropy)
    }
}
