//! Per-step rewards of one `rl` iteration: the outcome, `Q` (Monte-Carlo rollouts of the
//! current policy on the planted task, or a verifier's `Q`) and the prover's advantage `A`,
//! turned into per-token weights by [`crate::policy_gradient::step_weights`].

use burn::prelude::*;

use super::{STREAM_Q, Settings};
use crate::contract::StageError;
use crate::generate::{SampleOpts, generate_planted};
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
    let baselines = loo_baselines(&batch.problems, &outcomes);
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
            Weighted {
                prefix,
                response: batch.responses[i].clone(),
                weights: step_of[i].iter().map(|&h| per_step.get(h).copied().unwrap_or(0.0)).collect(),
            }
        })
        .collect();
    let reward = outcomes.iter().sum::<f64>() / n.max(1) as f64;
    Ok((weighted, reward, dense.0 / dense.1.max(1) as f64))
}

/// `Q^pi` of every step of every planted response: the mean outcome of `n` rollouts of the
/// current policy from the prefix ending with that step (exact for finished prefixes).
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
    let mut open: Vec<(usize, usize, Vec<usize>)> = Vec::new(); // response, step, prefix
    for (i, r) in responses.iter().enumerate() {
        let toks: Vec<usize> = r.iter().map(|&x| x as usize).collect();
        let mut row = vec![0.0; toks.len()];
        for h in 1..=toks.len() {
            let st = task.state(&toks[..h]);
            if task.solved(st) || task.done(st) {
                row[h - 1] = task.reward(&toks[..h]);
            } else {
                open.push((i, h - 1, toks[..h].to_vec()));
            }
        }
        q.push(row);
    }
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
    let generated = generate_planted(model, config, task, &prefixes, &mut rngs, opts, dev);
    for (k, (i, h, prefix)) in open.iter().enumerate() {
        let wins: f64 = generated[k * n..(k + 1) * n]
            .iter()
            .map(|g| {
                let mut full = prefix.clone();
                full.extend(g.tokens.iter().map(|&x| x as usize));
                task.reward(&full)
            })
            .sum();
        q[*i][*h] = wins / n as f64;
    }
    q
}
