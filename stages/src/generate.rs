//! Batched sampling from a policy: the MLP of the didactic task and the transformer of the
//! text tasks (with its key/value cache).
//!
//! Every row (one response to be sampled) owns its random generator, derived by the caller
//! from (seed, problem, sample), and draws one uniform number per sampled token, so a row's
//! response does not depend on which other rows share its batch or on the thread count.
//! `logprob` is the log-probability of the sampled tokens under the policy itself
//! (temperature 1), whatever temperature they were drawn at.

use burn::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::models::kv::KvCache;
use crate::models::mlp::{self, Mlp, MlpConfig};
use crate::models::transformer::Transformer;
use crate::tasks::planted::Planted;
use crate::tokenizer::{EOS, NEWLINE};

/// Limits and temperature of a sampling run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleOpts {
    /// 0 = greedy (argmax); otherwise logits are divided by it.
    pub temperature: f64,
    /// Most response tokens per row.
    pub max_tokens: usize,
    /// Most steps (lines) per row; the row stops after the newline that ends the last one.
    pub max_steps: usize,
    /// Rows per forward pass.
    pub batch: usize,
}

/// One sampled response.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Response tokens (for text tasks `EOS` included when the response ended with it).
    pub tokens: Vec<u32>,
    pub logprob: f64,
}

/// Draw a token from `logits` at `temperature` with the uniform `u`; returns the token and its
/// log-probability at temperature 1.
pub fn draw(logits: &[f32], temperature: f64, u: f64) -> (usize, f64) {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let log_z = max + logits.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
    let tok = if temperature <= 0.0 {
        // First maximum: ties broken by the lowest id.
        logits.iter().enumerate().fold(0, |best, (i, &x)| if x > logits[best] { i } else { best })
    } else {
        let w: Vec<f64> = logits.iter().map(|&x| ((x as f64 - max) / temperature).exp()).collect();
        let target = u * w.iter().sum::<f64>();
        let mut acc = 0.0;
        let mut tok = w.len() - 1;
        for (i, wi) in w.iter().enumerate() {
            acc += wi;
            if target < acc {
                tok = i;
                break;
            }
        }
        tok
    };
    (tok, logits[tok] as f64 - log_z)
}

/// Sample responses of the planted task from the MLP; one row per generator in `rngs`.
pub fn generate_planted(
    model: &Mlp,
    config: &MlpConfig,
    task: &Planted,
    prefixes: &[Vec<usize>],
    rngs: &mut [ChaCha8Rng],
    opts: SampleOpts,
    device: &Device,
) -> Vec<Generated> {
    generate_planted_until(model, config, task, prefixes, rngs, opts, device, &|_| false)
}

/// [`generate_planted`] that also stops a row as soon as `stop` holds for its tokens (prefix
/// included): rollouts stop once their outcome is decided.
#[allow(clippy::too_many_arguments)]
pub fn generate_planted_until(
    model: &Mlp,
    config: &MlpConfig,
    task: &Planted,
    prefixes: &[Vec<usize>],
    rngs: &mut [ChaCha8Rng],
    opts: SampleOpts,
    device: &Device,
    stop: &dyn Fn(&[usize]) -> bool,
) -> Vec<Generated> {
    let mut out = Vec::with_capacity(rngs.len());
    for (chunk, pre) in rngs.chunks_mut(opts.batch.max(1)).zip(prefixes.chunks(opts.batch.max(1))) {
        let b = chunk.len();
        let mut seqs: Vec<Vec<usize>> = pre.to_vec();
        let mut logp = vec![0.0; b];
        let mut live: Vec<bool> = seqs.iter().map(|s| !ended(task, s, 0, opts) && !stop(s)).collect();
        while live.iter().any(|&l| l) {
            // Only the live rows go through the model: rollouts end at different lengths.
            let rows: Vec<usize> = (0..b).filter(|&i| live[i]).collect();
            let mut window = Vec::with_capacity(rows.len() * config.context);
            for &i in &rows {
                mlp::window(&seqs[i], config, &mut window);
            }
            let logits = model
                .forward(Tensor::<2, Int>::from_data(TensorData::new(window, [rows.len(), config.context]), device));
            let logits: Vec<f32> = logits.into_data().try_to_vec::<f32>().unwrap_or_default();
            for (r, &i) in rows.iter().enumerate() {
                let u = chunk[i].random::<f64>();
                let (tok, lp) = draw(&logits[r * config.vocab..(r + 1) * config.vocab], opts.temperature, u);
                seqs[i].push(tok);
                logp[i] += lp;
                live[i] = !ended(task, &seqs[i], seqs[i].len() - pre[i].len(), opts) && !stop(&seqs[i]);
            }
        }
        for (s, (lp, p)) in seqs.into_iter().zip(logp.into_iter().zip(pre)) {
            out.push(Generated { tokens: s[p.len()..].iter().map(|&t| t as u32).collect(), logprob: lp });
        }
    }
    out
}

/// A planted response stops at the end token, at its length, or when it has generated `new`
/// tokens up to the step limit (one step is one token; a prefix does not count against it).
fn ended(task: &Planted, s: &[usize], new: usize, opts: SampleOpts) -> bool {
    s.len() >= task.length || new >= opts.max_steps || new >= opts.max_tokens || s.last() == Some(&task.end)
}

/// Sample text responses continuing `prefixes` (token ids starting with `BOS`) with the
/// transformer and its key/value cache; one row per prefix, each with its generator.
pub fn generate_text(
    model: &Transformer,
    prefixes: &[Vec<u32>],
    rngs: &mut [ChaCha8Rng],
    opts: SampleOpts,
    device: &Device,
) -> Vec<Generated> {
    let budgets = vec![Budget { max_steps: opts.max_steps, max_tokens: opts.max_tokens }; prefixes.len()];
    generate_text_budgeted(model, prefixes, &budgets, rngs, opts, device)
}

/// What one row may still generate: steps (lines) and tokens. A rollout continuing a prefix
/// gets what the prefix left of the sampling limits, so that a continuation ends where a whole
/// response from the policy would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_steps: usize,
    pub max_tokens: usize,
}

/// [`generate_text`] with a budget per row (`opts.max_steps` and `opts.max_tokens` are then
/// ignored). A row with a zero budget generates nothing.
pub fn generate_text_budgeted(
    model: &Transformer,
    prefixes: &[Vec<u32>],
    budgets: &[Budget],
    rngs: &mut [ChaCha8Rng],
    opts: SampleOpts,
    device: &Device,
) -> Vec<Generated> {
    let mut out = Vec::with_capacity(prefixes.len());
    let step = opts.batch.max(1);
    let host = crate::models::kv::on_host(device);
    for ((pre, bud), chunk) in prefixes.chunks(step).zip(budgets.chunks(step)).zip(rngs.chunks_mut(step)) {
        if host {
            out.extend(generate_chunk_shared(model, pre, bud, chunk, opts, device));
        } else {
            out.extend(generate_chunk(model, pre, bud, chunk, opts, device));
        }
    }
    out
}

/// One batch on the host store, computing each distinct prefix once: the distinct prefixes
/// (but their last token) are fed through a small cache, copied into every row that continues
/// them, and each row then decodes from its own position. Rollouts (`n_mc` rows per prefix)
/// and samples (`n` rows per prompt) skip most of the prompt work this way.
fn generate_chunk_shared(
    model: &Transformer,
    prefixes: &[Vec<u32>],
    budgets: &[Budget],
    rngs: &mut [ChaCha8Rng],
    opts: SampleOpts,
    device: &Device,
) -> Vec<Generated> {
    let b = prefixes.len();
    let context = model.context();
    let capacity =
        prefixes.iter().zip(budgets).map(|(p, bud)| p.len() + bud.max_tokens).max().unwrap_or(1).min(context);
    // Distinct prefixes in first-seen order, and each row's.
    let mut first: Vec<usize> = Vec::new();
    let mut group = vec![0usize; b];
    let mut seen: std::collections::HashMap<&[u32], usize> = std::collections::HashMap::new();
    for (r, p) in prefixes.iter().enumerate() {
        group[r] = *seen.entry(p.as_slice()).or_insert_with(|| {
            first.push(r);
            first.len() - 1
        });
    }
    // Each row starts by feeding its prefix's last token at that position; positions before it
    // come from the prefill.
    let start: Vec<usize> = prefixes.iter().map(|p| p.len().clamp(1, capacity) - 1).collect();
    let fill = first.iter().map(|&r| start[r]).max().unwrap_or(0);
    let mut cache = KvCache::new(model, b, capacity, device);
    if fill > 0 {
        let mut pre = cache.sibling(first.len(), fill);
        for t in 0..fill {
            // A prefix shorter than `t` re-feeds its last prefilled position (changing nothing).
            let pos: Vec<usize> = first.iter().map(|&r| t.min(start[r].saturating_sub(1))).collect();
            let tok: Vec<u32> = first.iter().zip(&pos).map(|(&r, &p)| prefixes[r][p]).collect();
            model.step_rows(&tok, &pos, &mut pre);
        }
        for r in 0..b {
            cache.copy_prefix(&pre, group[r], r, start[r]);
        }
    }
    let mut rows: Vec<Row<'_>> = prefixes.iter().zip(budgets).map(|(p, &bud)| Row::new(p, bud, capacity)).collect();
    // Cache slot -> row; rows leave their slot when they finish and the cache is compacted
    // once half of its slots are idle, so finished rows stop costing compute.
    let mut slots: Vec<usize> = (0..b).collect();
    let mut pos = start;
    let mut feed: Vec<u32> = prefixes.iter().map(|p| p.last().copied().unwrap_or(EOS)).collect();
    let vocab = model.vocab();
    loop {
        let live: Vec<usize> = (0..slots.len()).filter(|&s| !rows[slots[s]].done).collect();
        if live.is_empty() {
            break;
        }
        if live.len() * 2 <= slots.len() {
            let mut small = cache.sibling(live.len(), capacity);
            for (to, &from) in live.iter().enumerate() {
                small.copy_prefix(&cache, from, to, pos[slots[from]]);
            }
            cache = small;
            slots = live.iter().map(|&s| slots[s]).collect();
        }
        let tokens: Vec<u32> = slots.iter().map(|&r| feed[r]).collect();
        let positions: Vec<usize> = slots.iter().map(|&r| pos[r]).collect();
        let logits = model.step_rows(&tokens, &positions, &mut cache);
        for (s, &i) in slots.iter().enumerate() {
            let row = &mut rows[i];
            if row.done {
                continue;
            }
            let u = rngs[i].random::<f64>();
            let (tok, lp) = draw(&logits[s * vocab..(s + 1) * vocab], opts.temperature, u);
            let tok = tok as u32;
            row.take(tok, lp);
            row.done |= pos[i] + 2 >= capacity;
            if !row.done {
                pos[i] += 1;
                feed[i] = tok;
            }
        }
    }
    rows.into_iter().map(|r| Generated { tokens: r.response, logprob: r.logprob }).collect()
}

struct Row<'a> {
    prefix: &'a [u32],
    budget: Budget,
    response: Vec<u32>,
    logprob: f64,
    steps: usize,
    done: bool,
}

impl<'a> Row<'a> {
    /// A row continuing `prefix`; done at once when the prefix fills the cache or the budget is
    /// empty.
    fn new(prefix: &'a [u32], budget: Budget, capacity: usize) -> Self {
        let done = prefix.len() >= capacity || budget.max_steps == 0 || budget.max_tokens == 0;
        Row { prefix, budget, response: Vec::new(), logprob: 0.0, steps: 0, done }
    }

    /// Append a sampled token; the row is done at `EOS` or when its budget is spent.
    fn take(&mut self, tok: u32, logprob: f64) {
        self.response.push(tok);
        self.logprob += logprob;
        if tok == NEWLINE {
            self.steps += 1;
        }
        self.done = tok == EOS || self.steps >= self.budget.max_steps || self.response.len() >= self.budget.max_tokens;
    }
}

fn generate_chunk(
    model: &Transformer,
    prefixes: &[Vec<u32>],
    budgets: &[Budget],
    rngs: &mut [ChaCha8Rng],
    opts: SampleOpts,
    device: &Device,
) -> Vec<Generated> {
    let b = prefixes.len();
    let longest = prefixes.iter().zip(budgets).map(|(p, bud)| p.len() + bud.max_tokens).max().unwrap_or(1);
    let capacity = longest.min(model.context());
    let mut cache = KvCache::new(model, b, capacity, device);
    let mut rows: Vec<Row<'_>> = prefixes.iter().zip(budgets).map(|(p, &bud)| Row::new(p, bud, capacity)).collect();
    let vocab = model.vocab();
    // The token each row feeds at the current position.
    let token_at = |row: &Row<'_>, t: usize| -> u32 {
        if t < row.prefix.len() {
            row.prefix[t]
        } else {
            row.response.get(t - row.prefix.len()).copied().unwrap_or(EOS)
        }
    };
    let mut t = 0;
    while t + 1 < cache.capacity() && rows.iter().any(|r| !r.done || t + 1 < r.prefix.len()) {
        let input: Vec<i64> = rows.iter().map(|r| token_at(r, t) as i64).collect();
        let logits = model.step(Tensor::<1, Int>::from_data(TensorData::new(input, [b]), device), &mut cache);
        let needs_logits = rows.iter().any(|r| !r.done && t + 1 >= r.prefix.len());
        if needs_logits {
            let logits: Vec<f32> = logits.into_data().try_to_vec::<f32>().unwrap_or_default();
            for (i, row) in rows.iter_mut().enumerate() {
                if row.done || t + 1 < row.prefix.len() {
                    continue;
                }
                let u = rngs[i].random::<f64>();
                let (tok, lp) = draw(&logits[i * vocab..(i + 1) * vocab], opts.temperature, u);
                row.take(tok as u32, lp);
            }
        }
        t += 1;
    }
    rows.into_iter().map(|r| Generated { tokens: r.response, logprob: r.logprob }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draw_follows_the_softmax_and_reports_log_probs() {
        let logits = [0.0f32, (3.0f32).ln(), f32::NEG_INFINITY];
        // p = [0.25, 0.75, 0]
        assert_eq!(draw(&logits, 1.0, 0.2).0, 0);
        assert_eq!(draw(&logits, 1.0, 0.3).0, 1);
        assert_eq!(draw(&logits, 1.0, 0.999).0, 1);
        assert!((draw(&logits, 1.0, 0.3).1 - 0.75f64.ln()).abs() < 1e-6);
        assert_eq!(draw(&logits, 0.0, 0.0).0, 1, "greedy");
        // Temperature changes the draw but not the reported log-probability.
        let (tok, lp) = draw(&logits, 0.5, 0.15);
        assert_eq!(tok, 1, "p(0) at T=0.5 is 0.1");
        assert!((lp - 0.75f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn shared_prefixes_decode_as_the_lockstep_path_does() {
        use crate::models::device::seeded;
        use crate::models::transformer::TransformerConfig;
        use crate::rng::item_rng;
        let dev = Device::flex();
        let config =
            TransformerConfig::new(20).with_context(24).with_d_model(16).with_layers(2).with_heads(2).with_d_ff(32);
        let model = seeded(&dev, 4, || config.init(&dev));
        // Three rows share one prefix, two another, one stands alone; the limits differ by row.
        let a = vec![1u32, 5, 6, 7, NEWLINE];
        let b = vec![1u32, 8, NEWLINE];
        let prefixes = vec![a.clone(), a.clone(), b.clone(), a, b, vec![1u32, 9, 9, 9, 9, 9, 9]];
        let budgets: Vec<Budget> = (0..6).map(|i| Budget { max_steps: 2 + i % 3, max_tokens: 6 + 3 * i }).collect();
        let opts = SampleOpts { temperature: 1.0, max_tokens: 0, max_steps: 0, batch: 6 };
        let rngs = || (0..6).map(|i| item_rng(1, 2, i)).collect::<Vec<_>>();
        let shared = generate_chunk_shared(&model, &prefixes, &budgets, &mut rngs(), opts, &dev);
        let lockstep = generate_chunk(&model, &prefixes, &budgets, &mut rngs(), opts, &dev);
        for (s, l) in shared.iter().zip(&lockstep) {
            assert_eq!(s.tokens, l.tokens);
            assert!((s.logprob - l.logprob).abs() < 1e-4, "{} vs {}", s.logprob, l.logprob);
        }
        for (g, bud) in shared.iter().zip(&budgets) {
            assert!(g.tokens.len() <= bud.max_tokens);
        }
        assert!(shared.iter().map(|g| g.tokens.len()).sum::<usize>() > 20, "rows generated something");
    }
}
