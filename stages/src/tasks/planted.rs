//! The planted-subsequence task of the paper's didactic experiment (Setlur et al. 2024, §3).
//!
//! Tokens `0..vocab`, responses of `length` tokens; the end token masks whatever follows it.
//! The reward is 1 iff the planted sequence `target` appears contiguously before the end token.
//! One step is one token.
//!
//! The hint prover `mu_gamma` gives the next token of `target` (after the longest suffix of the
//! response that is a prefix of `target`) weight `gamma` and every other token weight 1. Its
//! values are exact by dynamic programming over (position, matched length), which is what
//! makes the didactic experiment checkable: `Q`, `V` and advantages need no Monte Carlo.

use rand::Rng;

/// The task's constants (the paper's values by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planted {
    pub vocab: usize,
    pub end: usize,
    pub length: usize,
    pub target: Vec<usize>,
}

impl Default for Planted {
    fn default() -> Self {
        Planted { vocab: 15, end: 14, length: 10, target: vec![3, 6, 0, 3, 5] }
    }
}

/// Where a response stands: tokens emitted, matched prefix length of the target, and whether it
/// ended (end token seen) — everything the reward and the prover depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct State {
    pub pos: usize,
    pub matched: usize,
    pub ended: bool,
}

impl Planted {
    /// Check the constants; the message names the param and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.vocab < 2 {
            return Err(format!("`vocab` must be at least 2, got {}", self.vocab));
        }
        if self.end >= self.vocab {
            return Err(format!("`end` token {} must be below `vocab` {}", self.end, self.vocab));
        }
        if self.target.is_empty() || self.target.len() > self.length {
            return Err(format!(
                "`target` must have 1..={} tokens (the response length), got {}",
                self.length,
                self.target.len()
            ));
        }
        if let Some(t) = self.target.iter().find(|&&t| t >= self.vocab || t == self.end) {
            return Err(format!("`target` token {t} must be below `vocab` and not the end token"));
        }
        Ok(())
    }

    pub fn start(&self) -> State {
        State { pos: 0, matched: 0, ended: false }
    }

    /// Whether the target is complete (the reward is then 1 whatever follows).
    pub fn solved(&self, s: State) -> bool {
        s.matched == self.target.len()
    }

    /// No further token changes the outcome.
    pub fn done(&self, s: State) -> bool {
        s.ended || self.solved(s) || s.pos == self.length
    }

    /// Matched length after appending `tok` when the last `k` tokens equal `target[..k]`
    /// (the KMP automaton over the target).
    pub fn advance(&self, k: usize, tok: usize) -> usize {
        let t = &self.target;
        let mut seq: Vec<usize> = t[..k].to_vec();
        seq.push(tok);
        (1..=seq.len().min(t.len())).rev().find(|&m| seq[seq.len() - m..] == t[..m]).unwrap_or(0)
    }

    /// The state after one more token.
    pub fn step(&self, s: State, tok: usize) -> State {
        if self.done(s) {
            return State { pos: (s.pos + 1).min(self.length), ..s };
        }
        if tok == self.end {
            return State { pos: s.pos + 1, ended: true, ..s };
        }
        State { pos: s.pos + 1, matched: self.advance(s.matched, tok), ended: false }
    }

    /// The state after a whole prefix.
    pub fn state(&self, tokens: &[usize]) -> State {
        tokens.iter().fold(self.start(), |s, &t| self.step(s, t))
    }

    pub fn reward(&self, tokens: &[usize]) -> f64 {
        if self.solved(self.state(tokens)) { 1.0 } else { 0.0 }
    }

    /// Next-token distribution of the hint prover `mu_gamma` with `matched` target tokens.
    pub fn prover_probs(&self, matched: usize, gamma: f64) -> Vec<f64> {
        let mut w = vec![1.0; self.vocab];
        if matched < self.target.len() {
            w[self.target[matched]] = gamma;
        }
        let z: f64 = w.iter().sum();
        w.iter().map(|x| x / z).collect()
    }

    /// Sample one response from `mu_gamma`, continuing `prefix`.
    pub fn sample_prover(&self, rng: &mut impl Rng, gamma: f64, prefix: &[usize]) -> Vec<usize> {
        let mut out = prefix.to_vec();
        let mut s = self.state(prefix);
        while out.len() < self.length {
            let probs = self.prover_probs(s.matched, gamma);
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut tok = self.vocab - 1;
            for (t, p) in probs.iter().enumerate() {
                acc += p;
                if u < acc {
                    tok = t;
                    break;
                }
            }
            out.push(tok);
            s = self.step(s, tok);
        }
        out
    }
}

/// Exact values of `mu_gamma`: `v[pos][k]` is the probability of ending correct from a live
/// state with `pos` tokens emitted and `k` target tokens matched.
#[derive(Debug, Clone)]
pub struct ProverValues {
    pub gamma: f64,
    v: Vec<Vec<f64>>,
}

impl ProverValues {
    /// Dynamic programming backwards over positions: O(length × |target| × vocab).
    pub fn new(task: &Planted, gamma: f64) -> ProverValues {
        let (n, m) = (task.length, task.target.len());
        let mut v = vec![vec![0.0; m + 1]; n + 1];
        for pos in (0..=n).rev() {
            for k in 0..=m {
                v[pos][k] = if k == m {
                    1.0
                } else if pos == n {
                    0.0
                } else {
                    let probs = task.prover_probs(k, gamma);
                    (0..task.vocab).filter(|&t| t != task.end).map(|t| probs[t] * v[pos + 1][task.advance(k, t)]).sum()
                };
            }
        }
        ProverValues { gamma, v }
    }

    /// Value of a state: 1 once solved, 0 once ended unsolved or out of tokens.
    pub fn value(&self, task: &Planted, s: State) -> f64 {
        if task.solved(s) {
            1.0
        } else if s.ended || s.pos >= task.length {
            0.0
        } else {
            self.v[s.pos][s.matched]
        }
    }

    /// `Q(s_h, a_h)`: the value after the prefix `tokens` (the action is its last token).
    pub fn q(&self, task: &Planted, tokens: &[usize]) -> f64 {
        self.value(task, task.state(tokens))
    }

    /// `A(s_h, a_h) = Q(s_h, a_h) - Q(s_{h-1}, a_{h-1})` for the last token of `tokens`.
    pub fn advantage(&self, task: &Planted, tokens: &[usize]) -> f64 {
        match tokens.split_last() {
            Some((_, before)) => self.q(task, tokens) - self.q(task, before),
            None => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::item_rng;

    #[test]
    fn reward_needs_the_target_before_the_end_token() {
        let t = Planted::default();
        assert_eq!(t.reward(&[3, 6, 0, 3, 5, 1, 1, 1, 1, 1]), 1.0);
        assert_eq!(t.reward(&[1, 1, 3, 6, 0, 3, 5, 14, 1, 1]), 1.0);
        assert_eq!(t.reward(&[1, 14, 3, 6, 0, 3, 5, 1, 1, 1]), 0.0, "after the end token");
        assert_eq!(t.reward(&[3, 6, 0, 3, 6, 0, 3, 5, 1, 1]), 1.0, "overlap handled by KMP");
        assert_eq!(t.reward(&[3, 6, 0, 3, 1, 5, 1, 1, 1, 1]), 0.0);
    }

    #[test]
    fn kmp_falls_back_to_the_longest_matching_suffix() {
        let t = Planted::default();
        // After 3 6 0 3, a 6 continues the suffix "3" into "3 6".
        assert_eq!(t.advance(4, 6), 2);
        assert_eq!(t.advance(4, 5), 5);
        assert_eq!(t.advance(2, 3), 1);
        assert_eq!(t.advance(0, 9), 0);
    }

    #[test]
    fn exact_value_matches_monte_carlo_within_its_error() {
        let t = Planted::default();
        for gamma in [5.0, 15.0] {
            let pv = ProverValues::new(&t, gamma);
            let exact = pv.value(&t, t.start());
            let n = 20_000;
            let hits: f64 = (0..n).map(|i| t.reward(&t.sample_prover(&mut item_rng(1, 0, i), gamma, &[]))).sum();
            let est = hits / n as f64;
            // 4 standard errors of a binomial proportion.
            let tol = 4.0 * (exact * (1.0 - exact) / n as f64).sqrt();
            assert!((est - exact).abs() < tol, "gamma {gamma}: MC {est} vs exact {exact} (tol {tol})");
        }
    }

    #[test]
    fn sampler_matches_the_prover_distribution() {
        // Goodness of fit of the first token: chi-square with vocab-1 = 14 degrees of freedom;
        // 36.12 is the 0.999 quantile, so a correct sampler fails one seed in a thousand.
        let t = Planted::default();
        let gamma = 5.0;
        let probs = t.prover_probs(0, gamma);
        let n = 20_000;
        let mut counts = vec![0usize; t.vocab];
        for i in 0..n {
            counts[t.sample_prover(&mut item_rng(2, 0, i), gamma, &[])[0]] += 1;
        }
        let chi2: f64 = counts
            .iter()
            .zip(&probs)
            .map(|(&c, &p)| {
                let e = p * n as f64;
                (c as f64 - e).powi(2) / e
            })
            .sum();
        assert!(chi2 < 36.12, "chi2 = {chi2}, counts {counts:?}");
    }

    #[test]
    fn advantages_telescope_to_the_final_reward_minus_the_start_value() {
        let t = Planted::default();
        let pv = ProverValues::new(&t, 10.0);
        let resp = t.sample_prover(&mut item_rng(3, 0, 0), 10.0, &[]);
        let sum: f64 = (1..=resp.len()).map(|h| pv.advantage(&t, &resp[..h])).sum();
        let expect = t.reward(&resp) - pv.value(&t, t.start());
        assert!((sum - expect).abs() < 1e-12, "{sum} vs {expect}");
    }

    #[test]
    fn bad_constants_are_named() {
        let t = Planted { end: 20, ..Planted::default() };
        assert!(t.validate().unwrap_err().contains("`end`"));
        let t = Planted { target: vec![3, 14], ..Planted::default() };
        assert!(t.validate().unwrap_err().contains("`target`"));
        assert!(Planted::default().validate().is_ok());
    }
}

#[cfg(test)]
mod cross_check {
    use super::*;

    /// Values computed independently by pipelines/scripts/planted.py (a direct recursion over
    /// states, `value(0, 0, gamma)`), rounded to 3 decimals.
    #[test]
    fn start_values_agree_with_the_python_reference() {
        let t = Planted::default();
        for (gamma, want) in [(5.0, 0.005), (10.0, 0.046), (15.0, 0.118), (20.0, 0.203), (40.0, 0.489)] {
            let got = ProverValues::new(&t, gamma).value(&t, t.start());
            assert!((got - want).abs() < 0.0006, "gamma {gamma}: {got} vs {want}");
        }
    }
}
