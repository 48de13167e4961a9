//! Continuing prefixes: who rolls out (the hint prover or a policy checkpoint), how a prefix
//! is identified and encoded, and what its rollouts gave. `rollout-label` drives this.

use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::contract::StageError;
use crate::generate::{Budget, SampleOpts, generate_planted, generate_text_budgeted};
use crate::models::checkpoint::{Checkpoint, PolicyModel};
use crate::rng::keyed_rng;
use crate::table::ProblemRow;
use crate::task::Task;
use crate::tasks::planted::Planted;
use crate::tokenizer::{self, NEWLINE};

const STREAM_ROLLOUT: u64 = 41;

/// The 64-bit identity of a prefix: its problem and its steps.
pub fn prefix_key(problem_id: i64, steps: &[String]) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&problem_id.to_le_bytes());
    for s in steps {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    let bytes = h.finalize();
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// Who continues a prefix.
// One roller exists per stage run: boxing the checkpoint would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Roller {
    /// The planted task's hint prover `mu_gamma`, sampled exactly.
    Hint { task: Planted, gamma: f64 },
    /// A policy checkpoint, with the task it was trained on.
    Policy { ckpt: Checkpoint, task: Task, opts: SampleOpts, device: burn::prelude::Device },
}

/// One prefix to roll out.
pub struct Work<'a> {
    pub problem: &'a ProblemRow,
    pub steps: &'a [String],
    pub key: u64,
}

/// What the rollouts of one prefix gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    pub rollouts: u32,
    pub successes: u32,
    pub tokens: u64,
}

impl Roller {
    /// Roll out every prefix `n_mc` times.
    pub fn roll(&self, work: &[Work<'_>], n_mc: usize, seed: u64) -> Result<Vec<Outcome>, StageError> {
        let rngs = |w: &Work<'_>| -> Vec<ChaCha8Rng> {
            (0..n_mc as u64).map(|j| keyed_rng(seed, STREAM_ROLLOUT, w.key, j)).collect()
        };
        match self {
            Roller::Hint { task, gamma } => work
                .par_iter()
                .map(|w| {
                    let prefix = planted_tokens(w.steps)?;
                    let mut out = Outcome { rollouts: n_mc as u32, ..Outcome::default() };
                    for mut rng in rngs(w) {
                        let full = task.sample_prover(&mut rng, *gamma, &prefix);
                        out.successes += task.reward(&full) as u32;
                        out.tokens += (full.len() - prefix.len()) as u64;
                    }
                    Ok(out)
                })
                .collect(),
            Roller::Policy { ckpt, task, opts, device } => {
                let mut all_rngs: Vec<ChaCha8Rng> = work.iter().flat_map(rngs).collect();
                let rows = work.len() * n_mc;
                let mut out = vec![Outcome { rollouts: n_mc as u32, ..Outcome::default() }; work.len()];
                match (&ckpt.model, task) {
                    (PolicyModel::Mlp(config, model), Task::Planted(t)) => {
                        let prefixes: Vec<Vec<usize>> = work
                            .iter()
                            .map(|w| planted_tokens(w.steps))
                            .collect::<Result<Vec<_>, _>>()?
                            .into_iter()
                            .flat_map(|p| std::iter::repeat_n(p, n_mc))
                            .collect();
                        let generated = generate_planted(model, config, t, &prefixes, &mut all_rngs, *opts, device);
                        for (r, g) in generated.iter().enumerate() {
                            let o = &mut out[r / n_mc];
                            let mut full = prefixes[r].clone();
                            full.extend(g.tokens.iter().map(|&x| x as usize));
                            o.successes += t.reward(&full) as u32;
                            o.tokens += g.tokens.len() as u64;
                        }
                    }
                    (PolicyModel::Transformer(_, model), Task::Arith(_) | Task::Jsonl(_)) => {
                        let mut prefixes = Vec::with_capacity(rows);
                        let mut budgets = Vec::with_capacity(rows);
                        for w in work {
                            let (tokens, used) = text_prefix(&w.problem.prompt, w.steps);
                            let budget = Budget {
                                max_steps: opts.max_steps.saturating_sub(w.steps.len()),
                                max_tokens: opts.max_tokens.saturating_sub(used),
                            };
                            if budget.max_steps == 0 || budget.max_tokens == 0 {
                                // Every rollout would fail at once: q = 0 by the budget, not the policy.
                                return Err(StageError::Failed(format!(
                                    "a prefix of problem {} ({} steps, {used} response tokens) leaves no room for \
                                     a continuation under `max_steps` {} and `max_tokens` {}; give this stage at \
                                     least the limits the seed responses were sampled with",
                                    w.problem.problem_id,
                                    w.steps.len(),
                                    opts.max_steps,
                                    opts.max_tokens
                                )));
                            }
                            for _ in 0..n_mc {
                                prefixes.push(tokens.clone());
                                budgets.push(budget);
                            }
                        }
                        let generated =
                            generate_text_budgeted(model, &prefixes, &budgets, &mut all_rngs, *opts, device);
                        for (r, g) in generated.iter().enumerate() {
                            let w = &work[r / n_mc];
                            let mut text = w.steps.join("\n");
                            if !w.steps.is_empty() {
                                text.push('\n');
                            }
                            text.push_str(&tokenizer::decode(&g.tokens));
                            let (_, ok) = task.check_text(&w.problem.answer, &tokenizer::steps(&text));
                            let o = &mut out[r / n_mc];
                            o.successes += ok as u32;
                            o.tokens += g.tokens.len() as u64;
                        }
                    }
                    _ => {
                        return Err(StageError::Failed(format!(
                            "the rollout policy's model does not fit its task `{}` (an MLP serves `planted`, a transformer the text tasks)",
                            task.name()
                        )));
                    }
                }
                Ok(out)
            }
        }
    }
}

/// The tokens of a planted prefix (its steps are token ids).
pub(crate) fn planted_tokens(steps: &[String]) -> Result<Vec<usize>, StageError> {
    steps
        .iter()
        .map(|s| {
            s.parse().map_err(|_| {
                StageError::Failed(format!(
                    "a planted response's step `{s}` is not a token id; were the seeds sampled for the planted task?"
                ))
            })
        })
        .collect()
}

/// `BOS prompt '\n' step_1 '\n' ... step_h '\n'` and the number of response tokens it holds.
pub fn text_prefix(prompt: &str, steps: &[String]) -> (Vec<u32>, usize) {
    let mut tokens = tokenizer::encode_prompt(prompt);
    let start = tokens.len();
    for s in steps {
        tokens.extend(s.bytes().map(|b| b as u32 + 3));
        tokens.push(NEWLINE);
    }
    let used = tokens.len() - start;
    (tokens, used)
}
