//! The search traits on the built-in models: a transformer policy proposes steps and whole
//! responses, a verifier checkpoint values prefixes.

use burn::prelude::Device;
use rand_chacha::ChaCha8Rng;

use crate::contract::StageError;
use crate::generate::{Budget, SampleOpts, generate_text, generate_text_budgeted};
use crate::models::transformer::Transformer;
use crate::models::verifier::VerifierCheckpoint;
use crate::rollouts::text_prefix;
use crate::search::{Proposal, Proposer, Response, StepRequest, Valuer};
use crate::tokenizer::{self, NEWLINE};

/// Samples steps and responses from a transformer policy.
pub struct PolicyProposer<'a> {
    pub model: &'a Transformer,
    pub prompts: Vec<String>,
    pub opts: SampleOpts,
    pub device: Device,
}

impl Proposer for PolicyProposer<'_> {
    fn next_steps(&self, requests: &[StepRequest<'_>], rngs: &mut [ChaCha8Rng]) -> Result<Vec<Proposal>, StageError> {
        let (prefixes, budgets): (Vec<Vec<u32>>, Vec<Budget>) = requests
            .iter()
            .map(|r| {
                let budget = Budget {
                    max_steps: 1,
                    max_tokens: (self.opts.max_tokens as u64).saturating_sub(r.tokens) as usize,
                };
                (text_prefix(&self.prompts[r.problem], r.steps).0, budget)
            })
            .unzip();
        let generated = generate_text_budgeted(self.model, &prefixes, &budgets, rngs, self.opts, &self.device);
        Ok(generated
            .into_iter()
            .map(|g| {
                let ended = g.tokens.last() != Some(&NEWLINE);
                let body = if ended { &g.tokens[..] } else { &g.tokens[..g.tokens.len() - 1] };
                Proposal { text: tokenizer::decode(body), ended, tokens: g.tokens.len() as u64 }
            })
            .collect())
    }

    fn responses(&self, problems: &[usize], rngs: &mut [ChaCha8Rng]) -> Result<Vec<Response>, StageError> {
        let prefixes: Vec<Vec<u32>> = problems.iter().map(|&p| tokenizer::encode_prompt(&self.prompts[p])).collect();
        Ok(generate_text(self.model, &prefixes, rngs, self.opts, &self.device)
            .into_iter()
            .map(|g| Response { steps: tokenizer::steps(&tokenizer::decode(&g.tokens)), tokens: g.tokens.len() as u64 })
            .collect())
    }
}

/// Values prefixes with a verifier checkpoint, read at the newline ending each step.
pub struct VerifierValuer<'a> {
    pub ckpt: &'a VerifierCheckpoint,
    pub prompts: Vec<String>,
    pub batch: usize,
    pub device: Device,
}

impl Valuer for VerifierValuer<'_> {
    fn values(&mut self, items: &[(usize, &[String])]) -> Result<Vec<Vec<Vec<f64>>>, StageError> {
        let mut seqs = Vec::with_capacity(items.len());
        let mut positions = Vec::with_capacity(items.len());
        for &(p, steps) in items {
            let (tokens, _) = text_prefix(&self.prompts[p], steps);
            let mut pos = vec![tokenizer::encode_prompt(&self.prompts[p]).len() - 1];
            for s in steps {
                pos.push(pos.last().copied().unwrap_or(0) + s.len() + 1);
            }
            seqs.push(tokens);
            positions.push(pos);
        }
        self.ckpt.values_at(&seqs, &positions, self.batch, &self.device)
    }
}
