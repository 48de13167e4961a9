//! Per-step rewards of one `rl` iteration: the outcome, `Q` (Monte-Carlo rollouts of the
//! current policy on the planted task, or a verifier's `Q`) and the prover's advantage `A`,
//! turned into per-token weights by [`crate::policy_gradient::step_weights`].

use burn::prelude::*;

use super::{Baseline, STREAM_Q, Settings};
use crate::contract::StageError;
use crate::generate::{SampleOpts, generate_planted_until};
use crate::models::verifier::VerifierMeta;
use crate::policy_gradient::{Weighted, loo_baselines, step_weights};
use crate::search::Valuer;
use crate::search_eval::VerifierValuer;
use crate::table::ProblemRow;
use crate::task::Task;
use crate::tasks::planted::ProverValues;
use crate::tokenizer::{self, NEWLINE};

/// Where a step's `Q` and `A` come from.
pub(super) enum Scorer<'a> {
    /// The planted task: `Q` = the outcome, `A` from `mu_gamma` (if any) by dynamic programming.
    Planted { values: Option<ProverValues> },
    /// A text task: `Q` and `A` from a verifier (if any).
    Text { valuer: Option<(VerifierValuer<'a>, VerifierMeta)>, q_from_verifier: bool },
}

/// The sampled batch of one iteration.
pub(super) struct Batch {
    pub problems: Vec<usize>,
    pub responses: Vec<Vec<u32>>,
}

/// Per-token weights of every response of the batch.
pub(super) fn weigh(
    batch: &Batch,
    train: &[ProblemRow],
    task: &Task,
    scorer: &mut Scorer<'_>,
    q_mc: Option<&[Vec<f64>]>,
    s: &Settings,
) -> Result<(Vec<Weighted>, f64, f64), StageError> {
    let n = batch.responses.len();
    let mut outcomes = Vec::with_capacity(n);
    let mut qa: Vec<(Vec<f64>, Vec<f64>)> = Vec::with_capacity(n);
    let mut step_of: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut texts: Vec<Vec<String>> = Vec::with_capacity(n);
    for (&p, resp) in batch.problems.iter().zip(&batch.responses) {
        match task {
            Task::Planted(t) => {
                let toks: Vec<usize> = resp.iter().map(|&x| x as usize).collect();
                let r = t.reward(&toks);
                let a = match scorer {
                    Scorer::Planted { values: Some(v) } => {
                        (1..=toks.len()).map(|h| v.advantage(t, &toks[..h])).collect()
                    }
                    _ => vec![0.0; toks.len()],
                };
                outcomes.push(r);
                let q = q_mc.map_or_else(|| vec![r; toks.len()], |q| q[outcomes.len() - 1].clone());
                qa.push((q, a));
                step_of.push((0..toks.len()).collect());
            }
            _ => {
                let steps = tokenizer::steps(&tokenizer::decode(resp));
                let (_, ok) = task.check_text(&train[p].answer, &steps);
                let r = f64::from(u8::from(ok));
                let h = steps.len().max(1);
                let mut newlines = 0;
                step_of.push(
                    resp.iter()
                        .map(|&tok| {
                            let step = newlines.min(h - 1);
                            newlines += usize::from(tok == NEWLINE);
                            step
                        })
                        .collect(),
                );
                outcomes.push(r);
                qa.push((vec![r; h], vec![0.0; h]));
                texts.push(steps);
            }
        }
    }
    if let Scorer::Text { valuer: Some((valuer, meta)), q_from_verifier } = scorer {
        let items: Vec<(usize, &[String])> =
            batch.problems.iter().zip(&texts).map(|(&p, s)| (p, s.as_slice())).collect();
        let values = valuer.values(&items)?;
        for ((q, a), v) in qa.iter_mut().zip(values) {
            let scores = meta.scores(&v, 0.0);
            for h in 0..q.len() {
                if let Some(sc) = scores.get(h + 1) {
                    a[h] = sc.a;
                    if *q_from_verifier {
                        q[h] = sc.q;
                    }
                }
            }
        }
    }
    let baselines = match s.baseline {
        Baseline::LeaveOneOut => loo_baselines(&batch.problems, &outcomes),
        Baseline::None => vec![0.0; n],
    };
    let mut dense = (0.0, 0usize);
    let weighted = (0..n)
        .map(|i| {
            let (q, a) = &qa[i];
            let per_step = step_weights(s.mode, q, a, outcomes[i], baselines[i], s.alpha);
            for w in &per_step {
                dense.0 += w + baselines[i];
                dense.1 += 1;
            }
            let prefix = match task {
                Task::Planted(_) => Vec::new(),
                _ => tokenizer::encode_prompt(&train[batch.problems[i]].prompt),
            };
            let end = match task {
                Task::Planted(t) if s.mask_end => Some(t.end as u32),
                _ => None,
            };
            let response = &batch.responses[i];
            Weighted {
                prefix,
                response: response.clone(),
                weights: step_of[i]
                    .iter()
                    .zip(response)
                    .map(|(&h, &tok)| if Some(tok) == end { 0.0 } else { per_step.get(h).copied().unwrap_or(0.0) })
                    .collect(),
            }
        })
        .collect();
    let reward = outcomes.iter().sum::<f64>() / n.max(1) as f64;
    Ok((weighted, reward, dense.0 / dense.1.max(1) as f64))
}

/// `Q^pi` of every step of every planted response: the mean outcome of `n` rollouts of the
/// current policy from the prefix ending with that step. Exact where the outcome is decided:
/// 1 once solved, 0 once ended unsolved or when too few tokens are left to complete the
/// target; and exact where the tree of continuations that can still succeed is small (at most
/// [`EXACT_NODES_PER_ROLLOUT`] × `n` nodes: a sum over it costs less than the rollouts). Each
/// distinct prefix of the batch is valued once (its generators keyed by its first
/// occurrence), and a rollout stops as soon as its outcome is decided.
#[allow(clippy::too_many_arguments)]
pub(super) fn planted_q(
    model: &crate::models::mlp::Mlp,
    config: &crate::models::mlp::MlpConfig,
    task: &crate::tasks::planted::Planted,
    responses: &[Vec<u32>],
    n: usize,
    (seed, it): (u64, u64),
    s: &Settings,
    dev: &Device,
) -> Vec<Vec<f64>> {
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(responses.len());
    // Distinct open prefixes, in order of first occurrence: (response, step, prefix).
    let mut open: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    let mut seen: std::collections::HashSet<Vec<usize>> = std::collections::HashSet::new();
    let mut pending: Vec<(usize, usize, Vec<usize>)> = Vec::new(); // response, step, prefix
    for (i, r) in responses.iter().enumerate() {
        let toks: Vec<usize> = r.iter().map(|&x| x as usize).collect();
        let mut row = vec![0.0; toks.len()];
        for h in 1..=toks.len() {
            let st = task.state(&toks[..h]);
            if decided(task, st) {
                row[h - 1] = task.reward(&toks[..h]);
            } else {
                if seen.insert(toks[..h].to_vec()) {
                    open.push((i, h - 1, toks[..h].to_vec()));
                }
                pending.push((i, h - 1, toks[..h].to_vec()));
            }
        }
        q.push(row);
    }
    // Where the tree of continuations that can still succeed is smaller than the rollouts
    // would be, sum over it instead: Q is then exact (at temperature > 0).
    let budget = EXACT_NODES_PER_ROLLOUT * n;
    let mut sizes = TreeSizes::new(task);
    let (exact, open): (Vec<_>, Vec<_>) =
        open.into_iter().partition(|o| s.opts.temperature > 0.0 && sizes.nodes(task, task.state(&o.2)) <= budget);
    let exact_q = exact_values(model, config, task, &exact, s.opts.temperature, dev);
    let prefixes: Vec<Vec<usize>> = open.iter().flat_map(|o| std::iter::repeat_n(o.2.clone(), n)).collect();
    let mut rngs: Vec<_> = open
        .iter()
        .flat_map(|&(i, h, _)| {
            (0..n as u64)
                .map(move |r| crate::rng::keyed_rng(seed, STREAM_Q, (it << 24) | i as u64, ((h as u64) << 20) | r))
        })
        .collect();
    // Rows are independent and the MLP is small: large batches amortise the per-call cost.
    let opts = SampleOpts { batch: 8192, ..s.opts };
    let stop = |toks: &[usize]| decided(task, task.state(toks));
    let generated = generate_planted_until(model, config, task, &prefixes, &mut rngs, opts, dev, &stop);
    let mut values: std::collections::HashMap<&[usize], f64> =
        exact.iter().zip(exact_q).map(|(o, v)| (o.2.as_slice(), v)).collect();
    values.extend(open.iter().enumerate().map(|(k, (_, _, prefix))| {
        let wins: f64 = generated[k * n..(k + 1) * n]
            .iter()
            .map(|g| {
                let mut full = prefix.clone();
                full.extend(g.tokens.iter().map(|&x| x as usize));
                task.reward(&full)
            })
            .sum();
        (prefix.as_slice(), wins / n as f64)
    }));
    for (i, h, prefix) in pending {
        q[i][h] = values[prefix.as_slice()];
    }
    q
}

/// A prefix is valued exactly when its tree of viable continuations has at most this many
/// nodes per rollout that Monte Carlo would draw: each node is one row of a forward pass, and
/// a rollout costs one row per token it draws (between one and the slack plus the missing
/// tokens). With 128 rollouts that is every prefix with a slack of 0 or 1 and most with 2.
const EXACT_NODES_PER_ROLLOUT: usize = 3;

/// Sizes of the trees of viable continuations (states from which the target can still be
/// completed), by (position, matched): they depend on the state alone.
struct TreeSizes {
    memo: std::collections::HashMap<(usize, usize), usize>,
}

impl TreeSizes {
    fn new(_task: &crate::tasks::planted::Planted) -> TreeSizes {
        TreeSizes { memo: std::collections::HashMap::new() }
    }

    /// Nodes of the viable tree under a live state, itself included.
    fn nodes(&mut self, task: &crate::tasks::planted::Planted, st: crate::tasks::planted::State) -> usize {
        if let Some(&c) = self.memo.get(&(st.pos, st.matched)) {
            return c;
        }
        let mut c = 1usize;
        for tok in 0..task.vocab {
            let next = task.step(st, tok);
            if !decided(task, next) {
                c = c.saturating_add(self.nodes(task, next));
            }
        }
        self.memo.insert((st.pos, st.matched), c);
        c
    }
}

/// Exact `Q^pi` of each open prefix: the probability, under the policy at `temperature`, of
/// the continuations that complete the target, summed over the tree of viable continuations
/// level by level (one batched forward pass per level).
fn exact_values(
    model: &crate::models::mlp::Mlp,
    config: &crate::models::mlp::MlpConfig,
    task: &crate::tasks::planted::Planted,
    open: &[(usize, usize, Vec<usize>)],
    temperature: f64,
    dev: &Device,
) -> Vec<f64> {
    let mut q = vec![0.0; open.len()];
    // (origin, tokens, state, probability of the path from the origin)
    let mut frontier: Vec<(usize, Vec<usize>, crate::tasks::planted::State, f64)> =
        open.iter().enumerate().map(|(i, o)| (i, o.2.clone(), task.state(&o.2), 1.0)).collect();
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for chunk in frontier.chunks(8192) {
            let mut window = Vec::with_capacity(chunk.len() * config.context);
            for f in chunk {
                crate::models::mlp::window(&f.1, config, &mut window);
            }
            let x = Tensor::<2, Int>::from_data(TensorData::new(window, [chunk.len(), config.context]), dev);
            let logits: Vec<f32> = model.forward(x).into_data().try_to_vec::<f32>().unwrap_or_default();
            for (r, (origin, toks, st, p)) in chunk.iter().enumerate() {
                let row = &logits[r * config.vocab..(r + 1) * config.vocab];
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
                let w: Vec<f64> = row.iter().map(|&x| ((x as f64 - max) / temperature).exp()).collect();
                let z: f64 = w.iter().sum();
                for (tok, wt) in w.iter().enumerate() {
                    let pt = p * wt / z;
                    let st2 = task.step(*st, tok);
                    if task.solved(st2) {
                        q[*origin] += pt;
                    } else if !decided(task, st2) {
                        let mut t2 = toks.clone();
                        t2.push(tok);
                        next.push((*origin, t2, st2, pt));
                    }
                }
            }
        }
        frontier = next;
    }
    q
}

/// Whether no later token can change the outcome: solved, ended, out of tokens, or too few
/// tokens left to complete the target from the matched part (the fastest completion appends
/// its missing tokens, since `matched` is the longest suffix that is a prefix of the target).
pub(crate) fn decided(task: &crate::tasks::planted::Planted, st: crate::tasks::planted::State) -> bool {
    task.done(st) || task.length - st.pos < task.target.len() - st.matched
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::device::seeded;
    use crate::models::mlp::{MlpArch, MlpConfig};
    use crate::rng::item_rng;
    use crate::tasks::planted::Planted;

    /// The sum over the viable tree agrees with 20,000 rollouts of the same policy (within 4
    /// standard errors), for prefixes with slack 0, 1 and 2; the tree sizes are the ones the
    /// cost rule reads.
    #[test]
    fn exact_q_agrees_with_many_rollouts() {
        let dev = Device::flex();
        let task = Planted::default();
        let config = MlpConfig::new(15, 10).with_arch(Some(MlpArch::Made));
        let model = seeded(&dev, 3, || config.init(&dev));
        let mut sizes = TreeSizes::new(&task);
        // slack = tokens left - tokens missing: 4 - 4 = 0; 4 - 3 = 1 (after a fallback of the
        // match from 3 to 0); 6 - 4 = 2.
        let prefixes = [vec![1, 1, 1, 1, 1, 3], vec![3, 6, 0, 1, 3, 6], vec![1, 1, 1, 3]];
        let open: Vec<(usize, usize, Vec<usize>)> = prefixes.iter().map(|p| (0, 0, p.clone())).collect();
        let exact = exact_values(&model, &config, &task, &open, 1.0, &dev);
        assert_eq!(sizes.nodes(&task, task.state(&prefixes[0])), 4, "slack 0: itself and 3 of the 4 missing tokens");
        assert!(sizes.nodes(&task, task.state(&prefixes[2])) < 3 * 128);
        let n = 20_000;
        let opts = SampleOpts { temperature: 1.0, max_tokens: 64, max_steps: 64, batch: 8192 };
        for (p, e) in prefixes.iter().zip(&exact) {
            let mut rngs: Vec<_> = (0..n).map(|i| item_rng(9, 0, i)).collect();
            let samples = generate_planted_until(
                &model,
                &config,
                &task,
                &vec![p.clone(); n as usize],
                &mut rngs,
                opts,
                &dev,
                &|_| false,
            );
            let wins: f64 = samples
                .iter()
                .map(|g| {
                    let mut full = p.clone();
                    full.extend(g.tokens.iter().map(|&x| x as usize));
                    task.reward(&full)
                })
                .sum();
            let mc = wins / n as f64;
            let se = (e * (1.0 - e) / n as f64).sqrt();
            assert!(*e > 0.0 && (mc - e).abs() <= 4.0 * se, "{p:?}: exact {e} vs {mc} from {n} rollouts");
        }
    }
}
