//! The CPU decoding step without burn ops: the transformer's weights copied once into host
//! buffers, and one step for a batch of rows computed with `gemm` (the matrix kernel that
//! burn's `flex` backend itself calls) and fused loops.
//!
//! At decoding sizes (a few hundred rows of one token, d_model 128) a step is ~60 small burn
//! ops, and their fixed costs (allocation, dispatch, copies between ops, scalar `exp`) took
//! most of the time: the matrix products themselves were about a quarter of it. Here a step is
//! five `gemm` calls per layer on buffers that are reused, with LayerNorm, attention, GELU
//! and the residual additions written as loops over contiguous rows.
//!
//! Rows are split into chunks of [`CHUNK`] rows and the chunks run in parallel (rayon); each
//! chunk calls `gemm` single-threaded. A row's result depends on its chunk only, never on the
//! thread count, so tables are the same on 1 thread or many.
//!
//! The function is the one of [`Transformer::forward`]: a test checks the logits of a cached
//! decode against the full causal pass.

use burn::prelude::*;
use rayon::prelude::*;

use super::transformer::{Block, Transformer};

/// Rows per parallel work item.
pub const CHUNK: usize = 32;

/// LayerNorm's epsilon: burn's default, which the model's `LayerNormConfig::new` keeps.
pub(super) const LN_EPS: f32 = 1e-5;

/// One LayerNorm's scale and shift.
pub(super) struct Norm {
    pub(super) gamma: Vec<f32>,
    pub(super) beta: Vec<f32>,
}

/// One block's weights, row-major `[d_in][d_out]` as burn's `Linear` stores them.
pub(super) struct HostBlock {
    pub(super) ln1: Norm,
    /// q, k and v projections side by side: `[d][3d]`.
    pub(super) qkv: Vec<f32>,
    pub(super) qkv_b: Vec<f32>,
    pub(super) o: Vec<f32>,
    pub(super) o_b: Vec<f32>,
    pub(super) ln2: Norm,
    pub(super) ff1: Vec<f32>,
    pub(super) ff1_b: Vec<f32>,
    pub(super) ff2: Vec<f32>,
    pub(super) ff2_b: Vec<f32>,
}

/// The weights of a [`Transformer`] in host memory.
pub struct HostModel {
    pub d: usize,
    pub heads: usize,
    pub d_ff: usize,
    pub vocab: usize,
    pub context: usize,
    pub(super) tok: Vec<f32>,
    pub(super) pos: Vec<f32>,
    pub(super) blocks: Vec<HostBlock>,
    pub(super) ln_f: Norm,
    pub(super) head: Vec<f32>,
    pub(super) head_b: Vec<f32>,
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}

fn linear(l: &burn::nn::Linear) -> (Vec<f32>, Vec<f32>) {
    let out = l.weight.dims()[1];
    let b = l.bias.as_ref().map(|b| host(b.val())).unwrap_or_else(|| vec![0.0; out]);
    (host(l.weight.val()), b)
}

fn norm(n: &burn::nn::LayerNorm) -> Norm {
    let gamma = host(n.gamma.val());
    let beta = n.beta.as_ref().map(|b| host(b.val())).unwrap_or_else(|| vec![0.0; gamma.len()]);
    Norm { gamma, beta }
}

impl HostModel {
    pub fn new(model: &Transformer) -> HostModel {
        let d = model.d_model();
        let blocks: Vec<HostBlock> = model
            .blocks
            .iter()
            .map(|b: &Block| {
                let (q, qb) = linear(&b.q);
                let (k, kb) = linear(&b.k);
                let (v, vb) = linear(&b.v);
                let mut qkv = Vec::with_capacity(3 * d * d);
                for i in 0..d {
                    for m in [&q, &k, &v] {
                        qkv.extend_from_slice(&m[i * d..(i + 1) * d]);
                    }
                }
                let (o, o_b) = linear(&b.o);
                let (ff1, ff1_b) = linear(&b.ff1);
                let (ff2, ff2_b) = linear(&b.ff2);
                HostBlock {
                    ln1: norm(&b.ln1),
                    qkv,
                    qkv_b: [qb, kb, vb].concat(),
                    o,
                    o_b,
                    ln2: norm(&b.ln2),
                    ff1,
                    ff1_b,
                    ff2,
                    ff2_b,
                }
            })
            .collect();
        let (head, head_b) = linear(&model.head);
        HostModel {
            d,
            heads: model.heads(),
            d_ff: model.blocks.first().map_or(0, |b| b.ff1.weight.dims()[1]),
            vocab: model.vocab(),
            context: model.context(),
            tok: host(model.tok.weight.val()),
            pos: host(model.pos.weight.val()),
            blocks,
            ln_f: norm(&model.ln_f),
            head,
            head_b,
        }
    }

    /// One decoding step: row `r` feeds `tokens[r]` at `positions[r]`, writing its keys and
    /// values there in every layer (`keys[l]`, `values[l]`: `[batch][heads][capacity][d_h]`),
    /// and attends over positions `0..=positions[r]`. Returns the logits, `[batch][vocab]`.
    pub fn step(
        &self,
        tokens: &[u32],
        positions: &[usize],
        keys: &mut [Vec<f32>],
        values: &mut [Vec<f32>],
        capacity: usize,
    ) -> Vec<f32> {
        let b = tokens.len();
        let dh = self.d / self.heads;
        let per_row = self.heads * capacity * dh;
        let mut logits = vec![0.0f32; b * self.vocab];
        // Chunk-major views of every layer's buffers: chunk c holds rows c*CHUNK.. of each layer.
        let mut kv: Vec<Vec<(&mut [f32], &mut [f32])>> = (0..b.div_ceil(CHUNK)).map(|_| Vec::new()).collect();
        for (k, v) in keys.iter_mut().zip(values.iter_mut()) {
            let chunks = k[..b * per_row].chunks_mut(CHUNK * per_row).zip(v[..b * per_row].chunks_mut(CHUNK * per_row));
            for (c, pair) in chunks.enumerate() {
                kv[c].push(pair);
            }
        }
        logits.par_chunks_mut(CHUNK * self.vocab).zip(kv.into_par_iter()).enumerate().for_each(|(c, (out, mut kv))| {
            let rows = c * CHUNK..((c + 1) * CHUNK).min(b);
            self.step_chunk(&tokens[rows.clone()], &positions[rows], &mut kv, capacity, out);
        });
        logits
    }

    /// One chunk of rows. On x86-64 CPUs with AVX2 the loops are compiled a second time for
    /// it (8 lanes instead of SSE2's 4). Both versions do the same operations in the same
    /// order (no fused multiply-add, fixed reduction order), so their results are identical.
    fn step_chunk(
        &self,
        tokens: &[u32],
        positions: &[usize],
        kv: &mut [(&mut [f32], &mut [f32])],
        capacity: usize,
        logits: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { self.step_chunk_avx2(tokens, positions, kv, capacity, logits) };
            return;
        }
        self.step_chunk_impl(tokens, positions, kv, capacity, logits);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn step_chunk_avx2(
        &self,
        tokens: &[u32],
        positions: &[usize],
        kv: &mut [(&mut [f32], &mut [f32])],
        capacity: usize,
        logits: &mut [f32],
    ) {
        self.step_chunk_impl(tokens, positions, kv, capacity, logits);
    }

    #[inline(always)]
    fn step_chunk_impl(
        &self,
        tokens: &[u32],
        positions: &[usize],
        kv: &mut [(&mut [f32], &mut [f32])],
        capacity: usize,
        logits: &mut [f32],
    ) {
        let (m, d, d_ff) = (tokens.len(), self.d, self.d_ff);
        let mut x = vec![0.0f32; m * d];
        for (r, (&t, &p)) in tokens.iter().zip(positions).enumerate() {
            let (te, pe) = (&self.tok[t as usize * d..(t as usize + 1) * d], &self.pos[p * d..(p + 1) * d]);
            for ((o, a), b) in x[r * d..(r + 1) * d].iter_mut().zip(te).zip(pe) {
                *o = a + b;
            }
        }
        let mut h = vec![0.0f32; m * d];
        let mut qkv = vec![0.0f32; m * 3 * d];
        let mut att = vec![0.0f32; m * d];
        let mut ff = vec![0.0f32; m * d_ff];
        let mut scores = vec![0.0f32; capacity];
        for (blk, (keys, values)) in self.blocks.iter().zip(kv.iter_mut()) {
            layer_norm(&x, &mut h, &blk.ln1, d);
            matmul(&h, &blk.qkv, &mut qkv, m, d, 3 * d, false);
            add_bias(&mut qkv, &blk.qkv_b);
            self.attend(&qkv, keys, values, positions, capacity, &mut scores, &mut att);
            matmul(&att, &blk.o, &mut x, m, d, d, true);
            add_bias(&mut x, &blk.o_b);
            layer_norm(&x, &mut h, &blk.ln2, d);
            matmul(&h, &blk.ff1, &mut ff, m, d, d_ff, false);
            add_bias(&mut ff, &blk.ff1_b);
            gelu_tanh(&mut ff);
            matmul(&ff, &blk.ff2, &mut x, m, d_ff, d, true);
            add_bias(&mut x, &blk.ff2_b);
        }
        layer_norm(&x, &mut h, &self.ln_f, d);
        matmul(&h, &self.head, logits, m, d, self.vocab, false);
        add_bias(logits, &self.head_b);
    }

    /// Write each row's keys and values at its position, then one query per (row, head) over
    /// the row's positions `0..=t`. `qkv` is `[rows][q | k | v]`, `att` `[rows][d]`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn attend(
        &self,
        qkv: &[f32],
        keys: &mut [f32],
        values: &mut [f32],
        positions: &[usize],
        capacity: usize,
        scores: &mut [f32],
        att: &mut [f32],
    ) {
        let (d, heads) = (self.d, self.heads);
        let dh = d / heads;
        let scale = 1.0 / (dh as f32).sqrt();
        for (r, &t) in positions.iter().enumerate() {
            let row = &qkv[r * 3 * d..(r + 1) * 3 * d];
            for hd in 0..heads {
                let base = (r * heads + hd) * capacity * dh;
                let (q, k, v) = (
                    &row[hd * dh..(hd + 1) * dh],
                    &row[d + hd * dh..d + (hd + 1) * dh],
                    &row[2 * d + hd * dh..2 * d + (hd + 1) * dh],
                );
                keys[base + t * dh..base + (t + 1) * dh].copy_from_slice(k);
                values[base + t * dh..base + (t + 1) * dh].copy_from_slice(v);
                let s = &mut scores[..t + 1];
                let mut max = f32::NEG_INFINITY;
                for (j, sj) in s.iter_mut().enumerate() {
                    *sj = dot(q, &keys[base + j * dh..base + (j + 1) * dh]) * scale;
                    max = max.max(*sj);
                }
                for sj in s.iter_mut() {
                    *sj -= max;
                }
                exp_in_place(s);
                let z: f32 = s.iter().sum();
                let out = &mut att[r * d + hd * dh..r * d + (hd + 1) * dh];
                out.fill(0.0);
                for (j, sj) in s.iter().enumerate() {
                    let w = sj / z;
                    for (o, x) in out.iter_mut().zip(&values[base + j * dh..base + (j + 1) * dh]) {
                        *o += w * x;
                    }
                }
            }
        }
    }
}

/// `c = a · b` (or `c += a · b` with `accumulate`), all row-major: `a` `[m][k]`, `b` `[k][n]`.
#[allow(clippy::too_many_arguments)]
fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize, accumulate: bool) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "matmul shapes");
    // SAFETY: the pointers come from slices at least as long as the strided extents read or
    // written (checked above); `c` does not alias `a` or `b` (a `&mut` borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[inline(always)]
fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// LayerNorm over rows of `d`: biased variance, as burn's `layer_norm`.
#[inline(always)]
fn layer_norm(x: &[f32], out: &mut [f32], n: &Norm, d: usize) {
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = xr.iter().sum::<f32>() / d as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + LN_EPS).sqrt();
        for (((o, v), g), b) in or.iter_mut().zip(xr).zip(&n.gamma).zip(&n.beta) {
            *o = (v - mean) * inv * g + b;
        }
    }
}

/// GELU in its tanh form, as [`super::transformer::gelu_tanh`]: `x · sigmoid(2√(2/π)(x + 0.044715 x³))`.
#[inline(always)]
fn gelu_tanh(x: &mut [f32]) {
    const C: f32 = 2.0 * 0.797_884_6;
    for v in x.iter_mut() {
        let u = *v;
        let e = exp(-C * (u + 0.044715 * u * u * u));
        *v = u / (1.0 + e);
    }
}

#[inline(always)]
fn exp_in_place(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = exp(*v);
    }
}

/// `e^x` to about 2 ulp on [-87, 88] (0 below, +inf above), in plain arithmetic that the
/// compiler vectorises: `x = n ln2 + r` with |r| <= ln2 / 2 (Cody-Waite), a degree-6
/// polynomial for `e^r`, and `2^n` built in the exponent bits.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.7);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^n, with n in [-126, 128): exponent bits (n + 127) << 23; n = 128 splits as 2^127 · 2.
    let ni = n as i32;
    let scale = f32::from_bits(((ni.min(127) + 127) as u32) << 23);
    let y = p * scale * if ni > 127 { 2.0 } else { 1.0 };
    if x < -87.3 {
        0.0
    } else if x > 88.7 {
        f32::INFINITY
    } else {
        y
    }
}

/// Dot product in eight independent lanes, which the compiler turns into SIMD (a plain
/// iterator sum is a serial chain: float addition does not reassociate). The lanes are summed
/// in a fixed order, so the result is the same on every run.
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
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_standard_library() {
        let mut worst = 0.0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 / 1000.0;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "largest relative error {worst}");
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(0.0), 1.0);
    }
}
