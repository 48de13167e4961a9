//! Test-time search: best-of-N over whole responses and step-level beam search, with an exact
//! compute ledger. `search-eval` runs them with a policy checkpoint and verifier checkpoints;
//! the tests run them with a scripted policy and an oracle verifier.
//!
//! Beam search (paper Sec. 2, after Snell et al.): the beam holds at most `width` (B) prefixes
//! per problem. At depth 0 the problem is expanded into `B * C` first steps (the root stands for
//! B copies of the empty prefix, so the beam is full from the first step on); at each later
//! depth every unfinished member samples `C` next steps. Each new prefix is scored once, by
//! `Q + alpha * A` at its last step ([`VerifierMeta::scores`]); the finished members and the
//! new prefixes compete for the B places (ties keep the earlier candidate). A candidate is
//! finished when its step ends the response (`EOS`, or a truncated line), or when it reaches the
//! step or token limit. When no member is unfinished, the answer is the finished member with
//! the highest `Q` at its last step (the paper picks the final candidate by `Q^pi` alone).
//!
//! Random numbers: the root's expansion `i` draws from sample `i`'s generator
//! ([`crate::sample::sample_rng`]); expansion 0 of a later member continues its parent's
//! generator and expansion `j > 0` draws from a generator keyed by the parent's identity and
//! `j`. So with `B = C = 1` beam search samples exactly what `sample` does with the same seed,
//! and no draw depends on the batch, the other problems or the thread count.

use std::collections::HashMap;

use rand_chacha::ChaCha8Rng;

use crate::contract::StageError;
use crate::models::verifier::{StepScore, VerifierMeta};
use crate::rng::keyed_rng;
use crate::sample::sample_rng;

const STREAM_BEAM: u64 = 51;

/// A request for the next step of one prefix.
#[derive(Debug, Clone, Copy)]
pub struct StepRequest<'a> {
    /// Index of the problem in the search's problem list.
    pub problem: usize,
    pub steps: &'a [String],
    /// Response tokens the prefix already holds (a step's tokens include its newline).
    pub tokens: u64,
}

/// One sampled step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The step's text, without its newline or end token.
    pub text: String,
    /// The response ends with this step (`EOS`, or the line was cut by a limit).
    pub ended: bool,
    /// Tokens generated for it.
    pub tokens: u64,
}

/// One whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub steps: Vec<String>,
    pub tokens: u64,
}

/// What samples steps and responses: a policy checkpoint, or a script in the tests.
pub trait Proposer {
    /// The next step of every request; `rngs[i]` is request `i`'s generator and advances.
    fn next_steps(&self, requests: &[StepRequest<'_>], rngs: &mut [ChaCha8Rng]) -> Result<Vec<Proposal>, StageError>;
    /// Whole responses to `problems[i]`, each drawn with `rngs[i]`.
    fn responses(&self, problems: &[usize], rngs: &mut [ChaCha8Rng]) -> Result<Vec<Response>, StageError>;
}

/// What values prefixes: a verifier checkpoint, or an oracle in the tests.
pub trait Valuer {
    /// Head values (probabilities) at steps `0..=steps.len()` of each `(problem, steps)`.
    fn values(&mut self, items: &[(usize, &[String])]) -> Result<Vec<Vec<Vec<f64>>>, StageError>;
}

/// Compute spent on one problem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Every generated token, discarded beam expansions included.
    pub tokens: u64,
    /// Every sampled step (line).
    pub steps_sampled: u64,
    /// Prefixes or responses scored by a verifier.
    pub verifier_calls: u64,
}

impl std::ops::AddAssign for Ledger {
    fn add_assign(&mut self, o: Ledger) {
        self.tokens += o.tokens;
        self.steps_sampled += o.steps_sampled;
        self.verifier_calls += o.verifier_calls;
    }
}

/// Settings of a beam search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamOpts {
    /// B: prefixes kept per problem.
    pub width: usize,
    /// C: next steps sampled per kept prefix.
    pub expand: usize,
    pub alpha: f64,
    pub max_steps: usize,
    pub max_tokens: u64,
}

/// The answer of a search on one problem and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub steps: Vec<String>,
    /// `Q` at the answer's last step (what it was picked by).
    pub q: f64,
    pub ledger: Ledger,
}

#[derive(Clone)]
struct Candidate {
    steps: Vec<String>,
    tokens: u64,
    done: bool,
    id: u64,
    rng: ChaCha8Rng,
    score: StepScore,
}

fn child_id(parent: u64, j: u64) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&parent.to_le_bytes());
    h.update(&j.to_le_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// Beam search on every problem at once: each depth samples the expansions of all problems in
/// one call to the proposer and scores them in one call to the valuer.
pub fn beam_search(
    proposer: &dyn Proposer,
    valuer: &mut dyn Valuer,
    meta: &VerifierMeta,
    problem_ids: &[i64],
    opts: BeamOpts,
    seed: u64,
) -> Result<Vec<Found>, StageError> {
    let (b, c) = (opts.width.max(1), opts.expand.max(1));
    let mut ledgers = vec![Ledger::default(); problem_ids.len()];
    // Parents to expand this depth: (problem, candidate); the root is one empty candidate whose
    // B * C expansions draw from the sample generators 0..B*C.
    let mut beams: Vec<Vec<Candidate>> = Vec::with_capacity(problem_ids.len());
    let mut root = true;
    loop {
        let mut requests = Vec::new();
        let mut rngs = Vec::new();
        let mut origin = Vec::new(); // (problem, parent index or usize::MAX for the root, child id)
        for (p, &pid) in problem_ids.iter().enumerate() {
            if root {
                for i in 0..(b * c) as u64 {
                    requests.push(StepRequest { problem: p, steps: &[], tokens: 0 });
                    rngs.push(sample_rng(seed, pid, i));
                    origin.push((p, usize::MAX, child_id(pid as u64, i)));
                }
                continue;
            }
            for (m, cand) in beams[p].iter().enumerate() {
                if cand.done {
                    continue;
                }
                for j in 0..c as u64 {
                    requests.push(StepRequest { problem: p, steps: &cand.steps, tokens: cand.tokens });
                    rngs.push(if j == 0 { cand.rng.clone() } else { keyed_rng(seed, STREAM_BEAM, cand.id, j) });
                    origin.push((p, m, child_id(cand.id, j)));
                }
            }
        }
        if requests.is_empty() {
            break;
        }
        let proposals = proposer.next_steps(&requests, &mut rngs)?;
        drop(requests);
        let mut children: Vec<(usize, Candidate)> = Vec::with_capacity(proposals.len());
        for ((prop, rng), &(p, m, id)) in proposals.into_iter().zip(rngs).zip(&origin) {
            let (mut steps, tokens) = match m {
                usize::MAX => (Vec::new(), 0),
                m => (beams[p][m].steps.clone(), beams[p][m].tokens),
            };
            steps.push(prop.text);
            let tokens = tokens + prop.tokens;
            let done = prop.ended || steps.len() >= opts.max_steps || tokens >= opts.max_tokens;
            let ledger = &mut ledgers[p];
            ledger.tokens += prop.tokens;
            ledger.steps_sampled += 1;
            ledger.verifier_calls += 1;
            children
                .push((p, Candidate { steps, tokens, done, id, rng, score: StepScore { q: 0.0, a: 0.0, score: 0.0 } }));
        }
        let items: Vec<(usize, &[String])> = children.iter().map(|(p, k)| (*p, k.steps.as_slice())).collect();
        let values = valuer.values(&items)?;
        drop(items);
        for ((_, k), v) in children.iter_mut().zip(values) {
            k.score = meta.scores(&v, opts.alpha).last().copied().unwrap_or(k.score);
        }
        if root {
            beams = vec![Vec::new(); problem_ids.len()];
            root = false;
        }
        let mut pools: Vec<Vec<Candidate>> =
            beams.iter_mut().map(|beam| beam.drain(..).filter(|k| k.done).collect()).collect();
        for (p, k) in children {
            pools[p].push(k);
        }
        for (beam, mut pool) in beams.iter_mut().zip(pools) {
            // Stable: ties keep the earlier candidate.
            pool.sort_by(|x, y| y.score.score.total_cmp(&x.score.score));
            pool.truncate(b);
            *beam = pool;
        }
    }
    Ok(beams
        .into_iter()
        .zip(ledgers)
        .map(|(beam, ledger)| {
            let best = beam.iter().enumerate().fold(None, |best: Option<(usize, f64)>, (i, k)| match best {
                Some((_, q)) if q >= k.score.q => best,
                _ => Some((i, k.score.q)),
            });
            let steps = best.map(|(i, _)| beam[i].steps.clone()).unwrap_or_default();
            Found { steps, q: best.map_or(0.0, |b| b.1), ledger }
        })
        .collect())
}

/// `n` responses per problem: response `s` of problem `p` from sample `s`'s generator.
pub fn sample_responses(
    proposer: &dyn Proposer,
    problem_ids: &[i64],
    n: usize,
    seed: u64,
) -> Result<Vec<Vec<Response>>, StageError> {
    let problems: Vec<usize> = (0..problem_ids.len()).flat_map(|p| std::iter::repeat_n(p, n)).collect();
    let mut rngs: Vec<ChaCha8Rng> =
        problems.iter().enumerate().map(|(r, &p)| sample_rng(seed, problem_ids[p], (r % n) as u64)).collect();
    let mut all = proposer.responses(&problems, &mut rngs)?.into_iter();
    Ok((0..problem_ids.len()).map(|_| all.by_ref().take(n).collect()).collect())
}

/// Memoises a valuer by `(problem, steps)`: beams often hold the same prefix many times, and
/// a verifier's value of a prefix does not depend on how it was reached.
pub struct Memo<V> {
    pub inner: V,
    seen: HashMap<(usize, Vec<String>), Vec<Vec<f64>>>,
    /// Distinct prefixes actually evaluated.
    pub evaluated: u64,
}

impl<V: Valuer> Memo<V> {
    pub fn new(inner: V) -> Self {
        Memo { inner, seen: HashMap::new(), evaluated: 0 }
    }
}

impl<V: Valuer> Valuer for Memo<V> {
    fn values(&mut self, items: &[(usize, &[String])]) -> Result<Vec<Vec<Vec<f64>>>, StageError> {
        let mut fresh: Vec<(usize, &[String])> = Vec::new();
        let mut queued: HashMap<(usize, &[String]), ()> = HashMap::new();
        for &(p, s) in items {
            if !self.seen.contains_key(&(p, s.to_vec())) && queued.insert((p, s), ()).is_none() {
                fresh.push((p, s));
            }
        }
        let values = self.inner.values(&fresh)?;
        self.evaluated += fresh.len() as u64;
        for ((p, s), v) in fresh.into_iter().zip(values) {
            self.seen.insert((p, s.to_vec()), v);
        }
        Ok(items.iter().map(|&(p, s)| self.seen.get(&(p, s.to_vec())).cloned().unwrap_or_default()).collect())
    }
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
