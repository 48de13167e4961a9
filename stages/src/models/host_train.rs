//! The CPU training pass without burn ops: the loss and the gradients of the transformer,
//! computed on host buffers with `gemm` and fused loops, then handed to burn's optimiser as
//! [`GradientsParams`] (docs/adr/0009-host-training-pass.md).
//!
//! The pass is [`HostModel::forward`] (or [`HostModel::forward_hidden`]), a loss that writes
//! its gradient at the logits (or the final hidden states), and [`HostModel::backward`] (or
//! [`HostModel::backward_from_hidden`]). Three losses use it: next-token cross-entropy
//! ([`HostModel::loss_and_grads`], `train-policy`), REINFORCE with a KL penalty
//! ([`HostModel::policy_gradient`], `rl`) and a verifier's heads (`train-verifier`).
//! [`HostModel::last_logits`] and [`HostModel::logits`] are forward passes that keep no
//! activations.
//!
//! burn 0.22's autodiff records every op of the forward pass (about 40 per layer, attention
//! written out) and replays them backwards; at the sizes of the text tasks (a few thousand
//! rows of width 128) the fixed cost of each op and the copies between them took most of a
//! training step. Here the forward pass keeps exactly what the backward pass reads (the
//! normalised LayerNorm inputs and their inverse deviations, the attention probabilities,
//! the GELU inputs and sigmoid factors), and the backward pass is written out: the same
//! function as [`Transformer::forward`]; tests compare the loss and every gradient of each of
//! the three losses with burn's autodiff.
//!
//! Work splits into fixed pieces that do not depend on the thread count: rows in chunks of
//! [`ROWS`](super::host_kernels::ROWS) (and sequences for attention) for the forward and input-gradient products, and
//! weight rows in chunks of [`WEIGHT_ROWS`](super::host_kernels::WEIGHT_ROWS) for the weight gradients (each a single `gemm`
//! over all rows, so its reduction order is fixed). Partial sums (bias, LayerNorm scale and
//! shift) are added in chunk order. The gradients are therefore identical on 1 thread or
//! many; a test checks it bit for bit.

use burn::optim::GradientsParams;
use burn::prelude::*;
use rayon::prelude::*;

use super::host::{HostBlock, HostModel, Norm};
use super::host_kernels::{
    ATT_BLOCK, ELEMS, NormActs, ROWS, View, add_bias, col_sum, cross_entropy_rows, gelu_backward_chunk,
    gelu_forward_chunk, ln_backward, ln_forward, mm, mm_scaled, pg_rows, rows_mm, sized, softmax_backward,
    softmax_causal, weight_grad,
};
use super::transformer::Transformer;

/// What one training step measured on its batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Mean cross-entropy over the counted targets (NaN when none is counted, as burn's).
    pub loss: f64,
    /// Counted targets whose logit is the largest (the first largest on ties).
    pub correct: usize,
    /// Targets not equal to the ignored token.
    pub counted: usize,
}

/// What a policy-gradient step measured: the loss, the summed KL to the reference per
/// response, and the mean per-token entropy (the `rl` kind's curve columns).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PgStats {
    pub loss: f64,
    pub kl: f64,
    pub entropy: f64,
}

/// One response token of a policy-gradient batch: its row in `[b·t]`, the token, its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgToken {
    pub row: usize,
    pub target: u32,
    pub weight: f32,
}

/// One layer's saved activations.
#[derive(Default)]
struct LayerActs {
    ln1: NormActs,
    h1: Vec<f32>,
    qkv: Vec<f32>,
    /// Attention probabilities, `[batch][heads][t][t]` (zero above the diagonal).
    p: Vec<f32>,
    att: Vec<f32>,
    ln2: NormActs,
    h2: Vec<f32>,
    /// GELU's input, its sigmoid factor and its output.
    f: Vec<f32>,
    s: Vec<f32>,
    g: Vec<f32>,
}

/// Buffers of a training step, kept between steps: fresh multi-megabyte buffers every step
/// came as new pages that the kernel zeroes (6% of a step's time).
#[derive(Default)]
pub struct Workspace {
    /// `(b, t)` of the last forward pass.
    shape: (usize, usize),
    /// Whether the last forward pass kept every layer's activations (a backward pass needs it).
    kept: bool,
    layers: Vec<LayerActs>,
    x: Vec<f32>,
    hf: Vec<f32>,
    lnf: NormActs,
    logits: Vec<f32>,
    dh: Vec<f32>,
    dx: Vec<f32>,
    dg: Vec<f32>,
    datt: Vec<f32>,
    dqkv: Vec<f32>,
}

impl HostModel {
    /// A model of the same shape with every weight zero (a gradient accumulator).
    fn zeros_like(&self) -> HostModel {
        let z = |v: &Vec<f32>| vec![0.0f32; v.len()];
        let zn = |n: &Norm| Norm { gamma: z(&n.gamma), beta: z(&n.beta) };
        HostModel {
            d: self.d,
            heads: self.heads,
            d_ff: self.d_ff,
            vocab: self.vocab,
            context: self.context,
            tok: z(&self.tok),
            pos: z(&self.pos),
            blocks: self
                .blocks
                .iter()
                .map(|b| HostBlock {
                    ln1: zn(&b.ln1),
                    qkv: z(&b.qkv),
                    qkv_b: z(&b.qkv_b),
                    o: z(&b.o),
                    o_b: z(&b.o_b),
                    ln2: zn(&b.ln2),
                    ff1: z(&b.ff1),
                    ff1_b: z(&b.ff1_b),
                    ff2: z(&b.ff2),
                    ff2_b: z(&b.ff2_b),
                })
                .collect(),
            ln_f: zn(&self.ln_f),
            head: z(&self.head),
            head_b: z(&self.head_b),
        }
    }

    /// Causal attention over each sequence of `t` rows: probabilities into `p`, the merged
    /// heads' outputs into `att`. Query rows go in blocks of [`ATT_BLOCK`]; a block's scores
    /// are computed against the keys up to its last row only, which skips most of the masked
    /// half of the score matrix.
    fn attention_forward(&self, qkv: &[f32], t: usize, p: &mut [f32], att: &mut [f32]) {
        let (d, heads) = (self.d, self.heads);
        let dh = d / heads;
        let scale = 1.0 / (dh as f32).sqrt();
        att.par_chunks_mut(t * d).zip(p.par_chunks_mut(heads * t * t)).zip(qkv.par_chunks(t * 3 * d)).for_each(
            |((att_b, p_b), qkv_b)| {
                for (hd, s) in p_b.chunks_exact_mut(t * t).enumerate() {
                    let (q, k, v) = (hd * dh, d + hd * dh, 2 * d + hd * dh);
                    for r0 in (0..t).step_by(ATT_BLOCK) {
                        let r1 = (r0 + ATT_BLOCK).min(t);
                        let rows = View::rm(&qkv_b[r0 * 3 * d + q..], r1 - r0, dh, 3 * d);
                        let keys = View::rm(&qkv_b[k..], r1, dh, 3 * d);
                        mm_scaled(&mut s[r0 * t..], t, rows, keys.t(), false, scale);
                        softmax_causal(&mut s[r0 * t..r1 * t], t, r0);
                        let probs = View::rm(&s[r0 * t..], r1 - r0, r1, t);
                        mm(&mut att_b[r0 * d + hd * dh..], d, probs, View::rm(&qkv_b[v..], r1, dh, 3 * d), false);
                    }
                }
            },
        );
    }

    /// Backward of [`Self::attention_forward`]: the gradient at `att` to the gradient at `qkv`,
    /// over the same blocks (query rows for `dQ`, key columns for `dK` and `dV`).
    fn attention_backward(&self, qkv: &[f32], p: &[f32], datt: &[f32], t: usize, dqkv: &mut [f32]) {
        let (d, heads) = (self.d, self.heads);
        let dh = d / heads;
        let scale = 1.0 / (dh as f32).sqrt();
        dqkv.par_chunks_mut(t * 3 * d)
            .zip(datt.par_chunks(t * d))
            .zip(p.par_chunks(heads * t * t))
            .zip(qkv.par_chunks(t * 3 * d))
            .for_each(|(((dqkv_b, datt_b), p_b), qkv_b)| {
                // Only the blocks' columns `..r1` of `ds` are written and read.
                let mut ds = vec![0.0f32; t * t];
                for (hd, pr) in p_b.chunks_exact(t * t).enumerate() {
                    let (q, k, v) = (hd * dh, d + hd * dh, 2 * d + hd * dh);
                    let dout = |r0: usize, n: usize| View::rm(&datt_b[r0 * d + hd * dh..], n, dh, d);
                    for r0 in (0..t).step_by(ATT_BLOCK) {
                        let r1 = (r0 + ATT_BLOCK).min(t);
                        // dP = dO Vᵀ, then dS = scale · P ∘ (dP − rowsum(P ∘ dP)); dQ = dS K.
                        let values = View::rm(&qkv_b[v..], r1, dh, 3 * d);
                        mm(&mut ds[r0 * t..], t, dout(r0, r1 - r0), values.t(), false);
                        softmax_backward(&mut ds[r0 * t..r1 * t], &pr[r0 * t..r1 * t], t, r1, scale);
                        let dsv = View::rm(&ds[r0 * t..], r1 - r0, r1, t);
                        mm(&mut dqkv_b[r0 * 3 * d + q..], 3 * d, dsv, View::rm(&qkv_b[k..], r1, dh, 3 * d), false);
                    }
                    for c0 in (0..t).step_by(ATT_BLOCK) {
                        let c1 = (c0 + ATT_BLOCK).min(t);
                        // Rows from c0 on see columns c0..c1: dK = dSᵀ Q, dV = Pᵀ dO.
                        let dst = View::rm(&ds[c0 * t + c0..], t - c0, c1 - c0, t).t();
                        let queries = View::rm(&qkv_b[c0 * 3 * d + q..], t - c0, dh, 3 * d);
                        mm(&mut dqkv_b[c0 * 3 * d + k..], 3 * d, dst, queries, false);
                        let pt = View::rm(&pr[c0 * t + c0..], t - c0, c1 - c0, t).t();
                        mm(&mut dqkv_b[c0 * 3 * d + v..], 3 * d, pt, dout(c0, t - c0), false);
                    }
                }
            });
    }

    /// Mean next-token cross-entropy of `b` sequences of `t` tokens (`tokens`, `[b][t]`)
    /// against `targets` (`[b][t]`; those equal to `ignore` not counted), and its gradient
    /// with respect to every weight, in this model's layout. `ws` holds the step's buffers
    /// (reuse it between steps; its contents do not affect the result).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grads(
        &self,
        tokens: &[u32],
        targets: &[u32],
        ignore: Option<u32>,
        b: usize,
        t: usize,
        ws: &mut Workspace,
    ) -> (StepStats, HostModel) {
        let vocab = self.vocab;
        assert!(targets.len() == b * t, "batch shape");
        assert!(targets.iter().all(|&y| Some(y) == ignore || (y as usize) < vocab), "target outside the vocabulary");
        self.forward(tokens, b, t, ws);
        // Cross-entropy; the logits become its gradient (softmax − one-hot) / counted.
        let counted = targets.iter().filter(|&&y| Some(y) != ignore).count();
        let norm = 1.0 / counted.max(1) as f32;
        let parts: Vec<(f64, usize)> = ws
            .logits
            .par_chunks_mut(ROWS * vocab)
            .zip(targets.par_chunks(ROWS))
            .map(|(lc, tc)| cross_entropy_rows(lc, tc, ignore, vocab, norm))
            .collect();
        let (loss_sum, correct) = parts.iter().fold((0.0, 0), |(l, c), &(pl, pc)| (l + pl, c + pc));
        let loss = if counted == 0 { f64::NAN } else { loss_sum / counted as f64 };
        let grads = self.backward(tokens, ws);
        (StepStats { loss, correct, counted }, grads)
    }

    /// The forward pass of `b` sequences of `t` tokens (`tokens`, `[b][t]`), keeping in `ws`
    /// what [`Self::backward`] reads; returns the next-token logits, `[b·t][vocab]`.
    pub fn forward<'w>(&self, tokens: &[u32], b: usize, t: usize, ws: &'w mut Workspace) -> &'w mut [f32] {
        let (d, vocab) = (self.d, self.vocab);
        self.forward_hidden(tokens, b, t, ws);
        let logits = &mut ws.logits;
        sized(logits, b * t * vocab);
        rows_mm(logits, vocab, &ws.hf, d, View::rm(&self.head, d, vocab, vocab), false);
        add_bias(logits, &self.head_b);
        &mut ws.logits
    }

    /// [`Self::forward`] up to the final hidden states (after the last LayerNorm, what the
    /// output layer and a verifier's heads read), `[b·t][d_model]`.
    pub fn forward_hidden<'w>(&self, tokens: &[u32], b: usize, t: usize, ws: &'w mut Workspace) -> &'w [f32] {
        self.hidden_pass(tokens, b, t, ws, true)
    }

    /// The logits at the last position of each of `b` sequences of `t` tokens, `[b][vocab]`:
    /// a forward pass that keeps no activations (one layer's buffers serve every layer), for
    /// inference without a key/value cache and for a reference policy.
    pub fn last_logits(&self, tokens: &[u32], b: usize, t: usize, ws: &mut Workspace) -> Vec<f32> {
        let (d, vocab) = (self.d, self.vocab);
        let hf = self.hidden_pass(tokens, b, t, ws, false);
        let last: Vec<f32> = (0..b).flat_map(|i| hf[((i + 1) * t - 1) * d..(i + 1) * t * d].iter().copied()).collect();
        let mut out = vec![0.0f32; b * vocab];
        rows_mm(&mut out, vocab, &last, d, View::rm(&self.head, d, vocab, vocab), false);
        add_bias(&mut out, &self.head_b);
        out
    }

    /// All logits, `[b·t][vocab]`, keeping no activations (see [`Self::last_logits`]).
    pub fn logits<'w>(&self, tokens: &[u32], b: usize, t: usize, ws: &'w mut Workspace) -> &'w [f32] {
        let (d, vocab) = (self.d, self.vocab);
        self.hidden_pass(tokens, b, t, ws, false);
        let logits = &mut ws.logits;
        sized(logits, b * t * vocab);
        rows_mm(logits, vocab, &ws.hf, d, View::rm(&self.head, d, vocab, vocab), false);
        add_bias(logits, &self.head_b);
        &ws.logits
    }

    /// The pass up to the final hidden states; with `keep`, every layer's activations stay in
    /// `ws` for [`Self::backward`], otherwise one layer's buffers are reused by each layer.
    fn hidden_pass<'w>(&self, tokens: &[u32], b: usize, t: usize, ws: &'w mut Workspace, keep: bool) -> &'w [f32] {
        let (d, d_ff, vocab, heads) = (self.d, self.d_ff, self.vocab, self.heads);
        let n = b * t;
        assert!(tokens.len() == n && t <= self.context, "batch shape");
        assert!(tokens.iter().all(|&x| (x as usize) < vocab), "token outside the vocabulary");
        ws.shape = (b, t);
        ws.kept = keep;
        ws.layers.resize_with(if keep { self.blocks.len() } else { ws.layers.len().max(1) }, LayerActs::default);
        let x = &mut ws.x;
        sized(x, n * d);
        for (r, (&tok, xr)) in tokens.iter().zip(x.chunks_exact_mut(d)).enumerate() {
            let (te, pe) = (&self.tok[tok as usize * d..][..d], &self.pos[(r % t) * d..][..d]);
            for ((o, a), c) in xr.iter_mut().zip(te).zip(pe) {
                *o = a + c;
            }
        }
        for (l, blk) in self.blocks.iter().enumerate() {
            let a = &mut ws.layers[if keep { l } else { 0 }];
            ln_forward(x, &blk.ln1, d, &mut a.h1, &mut a.ln1);
            sized(&mut a.qkv, n * 3 * d);
            rows_mm(&mut a.qkv, 3 * d, &a.h1, d, View::rm(&blk.qkv, d, 3 * d, 3 * d), false);
            add_bias(&mut a.qkv, &blk.qkv_b);
            sized(&mut a.p, b * heads * t * t);
            sized(&mut a.att, n * d);
            self.attention_forward(&a.qkv, t, &mut a.p, &mut a.att);
            rows_mm(x, d, &a.att, d, View::rm(&blk.o, d, d, d), true);
            add_bias(x, &blk.o_b);
            ln_forward(x, &blk.ln2, d, &mut a.h2, &mut a.ln2);
            sized(&mut a.f, n * d_ff);
            rows_mm(&mut a.f, d_ff, &a.h2, d, View::rm(&blk.ff1, d, d_ff, d_ff), false);
            add_bias(&mut a.f, &blk.ff1_b);
            sized(&mut a.s, n * d_ff);
            sized(&mut a.g, n * d_ff);
            a.g.par_chunks_mut(ELEMS)
                .zip(a.s.par_chunks_mut(ELEMS))
                .zip(a.f.par_chunks(ELEMS))
                .for_each(|((g, s), f)| gelu_forward_chunk(f, s, g));
            rows_mm(x, d, &a.g, d_ff, View::rm(&blk.ff2, d_ff, d, d), true);
            add_bias(x, &blk.ff2_b);
        }
        ln_forward(x, &self.ln_f, d, &mut ws.hf, &mut ws.lnf);
        &ws.hf
    }

    /// The backward pass after [`Self::forward`] on the same `tokens` and `ws`, whose logits
    /// the caller has overwritten with the loss's gradient at them (rows that the loss does
    /// not read: zero). Returns the gradient at every weight, in this model's layout.
    pub fn backward(&self, tokens: &[u32], ws: &mut Workspace) -> HostModel {
        let (d, vocab) = (self.d, self.vocab);
        let (b, t) = ws.shape;
        let n = b * t;
        assert!(tokens.len() == n && ws.logits.len() == n * vocab, "backward after forward on the same batch");
        let dlogits = &ws.logits;
        let mut grads = self.zeros_like();
        weight_grad(&mut grads.head, &ws.hf, d, dlogits, vocab);
        grads.head_b = col_sum(dlogits, vocab);
        sized(&mut ws.dh, n * d);
        rows_mm(&mut ws.dh, d, dlogits, vocab, View::rm(&self.head, d, vocab, vocab).t(), false);
        self.backward_hidden(tokens, ws, &mut grads);
        grads
    }

    /// The backward pass after [`Self::forward_hidden`] from `dhf`, the gradient at the final
    /// hidden states (`[b·t][d_model]`). The output layer's gradients are zero.
    pub fn backward_from_hidden(&self, tokens: &[u32], ws: &mut Workspace, dhf: &[f32]) -> HostModel {
        let (b, t) = ws.shape;
        assert!(tokens.len() == b * t && dhf.len() == b * t * self.d, "backward after forward on the same batch");
        let mut grads = self.zeros_like();
        ws.dh.clear();
        ws.dh.extend_from_slice(dhf);
        self.backward_hidden(tokens, ws, &mut grads);
        grads
    }

    /// The trunk's backward pass from `ws.dh`, the gradient at the final hidden states.
    fn backward_hidden(&self, tokens: &[u32], ws: &mut Workspace, grads: &mut HostModel) {
        let (d, d_ff) = (self.d, self.d_ff);
        let (b, t) = ws.shape;
        let n = b * t;
        // After `logits`/`last_logits` the workspace holds only the last layer's activations.
        assert!(ws.kept, "a backward pass needs `forward` or `forward_hidden` (not `logits`) on this workspace");
        let (dh, dx, dg, datt, dqkv) = (&mut ws.dh, &mut ws.dx, &mut ws.dg, &mut ws.datt, &mut ws.dqkv);
        dx.clear();
        dx.resize(n * d, 0.0);
        (grads.ln_f.gamma, grads.ln_f.beta) = ln_backward(dh, &ws.lnf, &self.ln_f.gamma, d, dx);

        sized(dg, n * d_ff);
        sized(datt, n * d);
        sized(dqkv, n * 3 * d);
        for ((blk, gb), a) in self.blocks.iter().zip(grads.blocks.iter_mut()).zip(&ws.layers).rev() {
            // x_out = x_mid + ff2(gelu(ff1(ln2(x_mid)))): dx is the gradient at x_out.
            weight_grad(&mut gb.ff2, &a.g, d_ff, dx, d);
            gb.ff2_b = col_sum(dx, d);
            rows_mm(dg, d_ff, dx, d, View::rm(&blk.ff2, d_ff, d, d).t(), false);
            dg.par_chunks_mut(ELEMS)
                .zip(a.f.par_chunks(ELEMS))
                .zip(a.s.par_chunks(ELEMS))
                .for_each(|((dg, f), s)| gelu_backward_chunk(f, s, dg));
            weight_grad(&mut gb.ff1, &a.h2, d, dg, d_ff);
            gb.ff1_b = col_sum(dg, d_ff);
            rows_mm(dh, d, dg, d_ff, View::rm(&blk.ff1, d, d_ff, d_ff).t(), false);
            (gb.ln2.gamma, gb.ln2.beta) = ln_backward(dh, &a.ln2, &blk.ln2.gamma, d, dx);
            // x_mid = x_in + o(attention(qkv(ln1(x_in)))): dx is now the gradient at x_mid.
            weight_grad(&mut gb.o, &a.att, d, dx, d);
            gb.o_b = col_sum(dx, d);
            rows_mm(datt, d, dx, d, View::rm(&blk.o, d, d, d).t(), false);
            self.attention_backward(&a.qkv, &a.p, datt, t, dqkv);
            weight_grad(&mut gb.qkv, &a.h1, d, dqkv, 3 * d);
            gb.qkv_b = col_sum(dqkv, 3 * d);
            rows_mm(dh, d, dqkv, 3 * d, View::rm(&blk.qkv, d, 3 * d, 3 * d).t(), false);
            (gb.ln1.gamma, gb.ln1.beta) = ln_backward(dh, &a.ln1, &blk.ln1.gamma, d, dx);
        }
        for (r, (&tok, dxr)) in tokens.iter().zip(dx.chunks_exact(d)).enumerate() {
            for (o, v) in grads.tok[tok as usize * d..][..d].iter_mut().zip(dxr) {
                *o += v;
            }
            for (o, v) in grads.pos[(r % t) * d..][..d].iter_mut().zip(dxr) {
                *o += v;
            }
        }
    }

    /// REINFORCE with a KL penalty (the `rl` kind's loss, as `policy_gradient` computes it
    /// with burn): over the response `tokens` of `responses` responses in `b` sequences of
    /// `t` input tokens, `−(1/B) Σ w log p(y) + β (1/B) Σ KL(p ‖ q)` with `B = responses`
    /// and `q` the `reference` policy's next-token distribution at the same positions; its
    /// gradient at every weight. `ref_ws` holds the reference's forward pass.
    #[allow(clippy::too_many_arguments)]
    pub fn policy_gradient(
        &self,
        input: &[u32],
        b: usize,
        t: usize,
        tokens: &[PgToken],
        reference: Option<&HostModel>,
        beta: f32,
        responses: usize,
        ws: &mut Workspace,
        ref_ws: &mut Workspace,
    ) -> (PgStats, HostModel) {
        let vocab = self.vocab;
        let n = b * t;
        let mut picks: Vec<Option<(u32, f32)>> = vec![None; n];
        for tok in tokens {
            assert!(tok.row < n && (tok.target as usize) < vocab, "response token outside the batch");
            picks[tok.row] = Some((tok.target, tok.weight));
        }
        let ref_logits: Option<&[f32]> = match reference {
            Some(r) => Some(r.logits(input, b, t, ref_ws)),
            None => None,
        };
        let logits = self.forward(input, b, t, ws);
        let inv_b = 1.0 / responses.max(1) as f32;
        let parts: Vec<(f64, f64, f64)> = logits
            .par_chunks_mut(ROWS * vocab)
            .zip(picks.par_chunks(ROWS))
            .enumerate()
            .map(|(c, (lc, pc))| {
                let rc = ref_logits.map(|r| &r[c * ROWS * vocab..][..lc.len()]);
                let (mut lp, mut lq) = (vec![0.0f32; vocab], vec![0.0f32; vocab]);
                pg_rows(lc, rc, pc, vocab, inv_b, beta, &mut lp, &mut lq)
            })
            .collect();
        let (loss, kl, entropy) = parts.iter().fold((0.0, 0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1, a.2 + p.2));
        let grads = self.backward(input, ws);
        let stats = PgStats { loss, kl, entropy: entropy / tokens.len().max(1) as f64 };
        (stats, grads)
    }

    /// These gradients (of `model`'s weights, in this layout) as burn's [`GradientsParams`],
    /// tensors on `device` (the backend under the autodiff one, as autodiff hands them out).
    pub fn to_gradients(&self, model: &Transformer, device: &Device) -> GradientsParams {
        self.gradients(model, device, true)
    }

    /// [`Self::to_gradients`] without the output layer (a verifier's trunk, whose language-model
    /// head takes no part in its loss and so gets no gradient, as under autodiff).
    pub fn to_trunk_gradients(&self, model: &Transformer, device: &Device) -> GradientsParams {
        self.gradients(model, device, false)
    }

    fn gradients(&self, model: &Transformer, device: &Device, head: bool) -> GradientsParams {
        let mut out = GradientsParams::new();
        let t1 = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
        let t2 = |v: Vec<f32>, cols: usize| {
            let rows = v.len() / cols;
            Tensor::<2>::from_data(TensorData::new(v, [rows, cols]), device)
        };
        let mut linear = |l: &burn::nn::Linear, w: Vec<f32>, b: &[f32]| {
            let cols = b.len();
            out.register(l.weight.id, t2(w, cols));
            if let Some(bias) = &l.bias {
                out.register(bias.id, t1(b));
            }
        };
        let d = self.d;
        for (blk, g) in model.blocks.iter().zip(&self.blocks) {
            for (which, l) in [&blk.q, &blk.k, &blk.v].into_iter().enumerate() {
                let w: Vec<f32> =
                    g.qkv.chunks_exact(3 * d).flat_map(|row| row[which * d..(which + 1) * d].iter().copied()).collect();
                linear(l, w, &g.qkv_b[which * d..(which + 1) * d]);
            }
            linear(&blk.o, g.o.clone(), &g.o_b);
            linear(&blk.ff1, g.ff1.clone(), &g.ff1_b);
            linear(&blk.ff2, g.ff2.clone(), &g.ff2_b);
        }
        if head {
            linear(&model.head, self.head.clone(), &self.head_b);
        }
        out.register(model.tok.weight.id, t2(self.tok.clone(), d));
        out.register(model.pos.weight.id, t2(self.pos.clone(), d));
        let mut norm = |n: &burn::nn::LayerNorm, g: &Norm| {
            out.register(n.gamma.id, t1(&g.gamma));
            if let Some(beta) = &n.beta {
                out.register(beta.id, t1(&g.beta));
            }
        };
        for (blk, g) in model.blocks.iter().zip(&self.blocks) {
            norm(&blk.ln1, &g.ln1);
            norm(&blk.ln2, &g.ln2);
        }
        norm(&model.ln_f, &self.ln_f);
        out
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use burn::module::ParamId;

    use super::*;

    /// Every parameter of the model: (id, rank).
    pub(crate) fn params(m: &Transformer) -> Vec<(ParamId, usize)> {
        let mut out = vec![(m.tok.weight.id, 2), (m.pos.weight.id, 2)];
        let lin = |l: &burn::nn::Linear, out: &mut Vec<(ParamId, usize)>| {
            out.push((l.weight.id, 2));
            out.extend(l.bias.as_ref().map(|b| (b.id, 1)));
        };
        for blk in &m.blocks {
            for l in [&blk.q, &blk.k, &blk.v, &blk.o, &blk.ff1, &blk.ff2] {
                lin(l, &mut out);
            }
            for n in [&blk.ln1, &blk.ln2] {
                out.push((n.gamma.id, 1));
                out.extend(n.beta.as_ref().map(|b| (b.id, 1)));
            }
        }
        lin(&m.head, &mut out);
        out.push((m.ln_f.gamma.id, 1));
        out.extend(m.ln_f.beta.as_ref().map(|b| (b.id, 1)));
        out
    }

    /// The parameters of the output layer (a verifier's trunk leaves them out).
    pub(crate) fn head_ids(m: &Transformer) -> Vec<ParamId> {
        std::iter::once(m.head.weight.id).chain(m.head.bias.as_ref().map(|b| b.id)).collect()
    }

    pub(crate) fn values(g: &GradientsParams, id: ParamId, rank: usize) -> Vec<f32> {
        let data = match rank {
            1 => g.get::<1>(id).map(|t| t.into_data()),
            _ => g.get::<2>(id).map(|t| t.into_data()),
        };
        data.expect("a gradient for every parameter").convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// Every parameter's gradient in `got` against `want`: the largest difference at most
    /// `tol` of the parameter's largest gradient (which must not be zero).
    pub(crate) fn assert_close(model: &Transformer, got: &GradientsParams, want: &GradientsParams, tol: f32) {
        let all = params(model);
        assert_eq!(got.len(), all.len(), "one gradient per parameter");
        assert_eq!(want.len(), all.len());
        for (i, (id, rank)) in all.into_iter().enumerate() {
            let (g, w) = (values(got, id, rank), values(want, id, rank));
            assert_eq!(g.len(), w.len(), "parameter {i}: length");
            let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "parameter {i}: the reference gradient is zero, the test would not see a difference");
            let worst = g.iter().zip(&w).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= tol * scale + 1e-7,
                "parameter {i}: largest difference {worst} (largest gradient {scale})"
            );
        }
    }
}

#[cfg(test)]
#[path = "host_train_tests.rs"]
mod tests;
