//! Search with a scripted policy (the arithmetic teacher, wrong at each step with a known
//! rate) and an oracle verifier (its exact `Q`), where the right answers are known.

use rand::Rng;
use serde_json::Map;

use super::*;
use crate::models::verifier::ProverSpec;
use crate::rng::item_rng;
use crate::tasks::arith::{Arith, Problem};

/// The teacher as a policy: step `h` applies operation `h` to the last stated result and is
/// wrong with probability `error`; after the last operation it states the answer and ends.
struct Script {
    task: Arith,
    problems: Vec<Problem>,
    error: f64,
}

impl Script {
    fn new(n: usize, ops: usize, error: f64) -> Script {
        let task = Arith { steps: ops, modulus: 97, max_operand: 9, ..Arith::default() };
        let problems = (0..n as u64).map(|i| task.problem(&mut item_rng(3, 0, i))).collect();
        Script { task, problems, error }
    }

    fn running(&self, p: usize, steps: &[String]) -> u64 {
        steps.last().and_then(|s| s.rsplit(' ').next()?.parse().ok()).unwrap_or(self.problems[p].start)
    }

    fn step(&self, p: usize, steps: &[String], rng: &mut ChaCha8Rng) -> Proposal {
        let prob = &self.problems[p];
        let cur = self.running(p, steps);
        let Some(&(op, b)) = prob.ops.get(steps.len()) else {
            let text = format!("answer: {cur}");
            return Proposal { tokens: text.len() as u64 + 1, text, ended: true };
        };
        let mut next = op.apply(cur, b, self.task.modulus);
        if rng.random::<f64>() < self.error {
            next = (next + rng.random_range(1..self.task.modulus)) % self.task.modulus;
        }
        let text = format!("{cur} {} {b} = {next}", op.symbol());
        Proposal { tokens: text.len() as u64 + 1, text, ended: false }
    }

    fn ids(&self) -> Vec<i64> {
        (0..self.problems.len() as i64).map(|i| 100 + i).collect()
    }

    fn correct(&self, p: usize, steps: &[String]) -> bool {
        self.task.correct(&self.problems[p], steps)
    }
}

impl Proposer for Script {
    fn next_steps(&self, requests: &[StepRequest<'_>], rngs: &mut [ChaCha8Rng]) -> Result<Vec<Proposal>, StageError> {
        Ok(requests.iter().zip(rngs).map(|(r, rng)| self.step(r.problem, r.steps, rng)).collect())
    }

    fn responses(&self, problems: &[usize], rngs: &mut [ChaCha8Rng]) -> Result<Vec<Response>, StageError> {
        Ok(problems
            .iter()
            .zip(rngs)
            .map(|(&p, rng)| {
                let mut r = Response { steps: Vec::new(), tokens: 0 };
                loop {
                    let s = self.step(p, &r.steps, rng);
                    r.steps.push(s.text);
                    r.tokens += s.tokens;
                    if s.ended {
                        return r;
                    }
                }
            })
            .collect())
    }
}

/// The exact `Q` of the script: 0 after a wrong step, else the chance that the remaining
/// operations all go right; at the answer line, whether it is right.
struct Oracle<'a>(&'a Script);

impl Valuer for Oracle<'_> {
    fn values(&mut self, items: &[(usize, &[String])]) -> Result<Vec<Vec<Vec<f64>>>, StageError> {
        let s = self.0;
        Ok(items
            .iter()
            .map(|&(p, steps)| {
                let prob = &s.problems[p];
                let mut cur = prob.start;
                let mut ok = true;
                (0..=steps.len())
                    .map(|h| {
                        if h > 0 {
                            let line = &steps[h - 1];
                            match prob.ops.get(h - 1) {
                                Some(&(op, b)) => {
                                    cur = op.apply(cur, b, s.task.modulus);
                                    ok &= line.ends_with(&format!("= {cur}"));
                                }
                                None => return vec![f64::from(s.correct(p, &steps[..h]))],
                            }
                        }
                        let left = prob.ops.len().saturating_sub(h) as i32;
                        vec![if ok { (1.0 - s.error).powi(left) } else { 0.0 }]
                    })
                    .collect()
            })
            .collect())
    }
}

fn q_only() -> VerifierMeta {
    VerifierMeta { target: "pqv".into(), prover: ProverSpec::None, alpha: 0.0, task: Map::new() }
}

fn beam(width: usize, expand: usize) -> BeamOpts {
    BeamOpts { width, expand, alpha: 0.0, max_steps: 64, max_tokens: 1 << 20 }
}

#[test]
fn with_an_oracle_beam_search_beats_best_of_n_at_equal_tokens() {
    // p(correct) = 0.65^6 = 0.075 per response: best-of-N with the oracle as ORM is Pass@N.
    let s = Script::new(200, 6, 0.35);
    let ids = s.ids();
    let found = beam_search(&s, &mut Oracle(&s), &q_only(), &ids, beam(2, 3), 7).unwrap();
    let beam_acc = found.iter().enumerate().filter(|(p, f)| s.correct(*p, &f.steps)).count() as f64 / 200.0;
    let beam_tokens: u64 = found.iter().map(|f| f.ledger.tokens).sum();
    let responses = sample_responses(&s, &ids, 16, 7).unwrap();
    // The smallest N whose responses cost at least the beam's tokens.
    let n = (1..=16)
        .find(|&n| responses.iter().flat_map(|r| &r[..n]).map(|r| r.tokens).sum::<u64>() >= beam_tokens)
        .expect("16 responses cost more than the beam");
    let bon_acc = responses.iter().enumerate().filter(|(p, r)| r[..n].iter().any(|x| s.correct(*p, &x.steps))).count()
        as f64
        / 200.0;
    eprintln!("beam {beam_acc:.3} ({beam_tokens} tokens) vs best-of-{n} {bon_acc:.3}");
    assert!((5..=7).contains(&n), "B = 2, C = 3 costs about 6 responses, got {n}");
    assert!(beam_acc > bon_acc + 0.3, "beam {beam_acc} vs best-of-{n} {bon_acc}");
    // Each depth, 2 x 3 expansions all wrong has probability 0.35^6: the beam almost never fails.
    assert!(beam_acc > 0.95, "{beam_acc}");
}

#[test]
fn the_compute_ledger_is_exact_on_a_hand_checked_case() {
    // start 3 | + 2 | - 1 (mod 97) with an exact script:
    // every line is 10 tokens: "3 + 2 = 5\n", "5 - 1 = 4\n", "answer: 4" + EOS.
    let mut s = Script::new(1, 2, 0.0);
    s.problems =
        vec![Problem { start: 3, ops: vec![(crate::tasks::arith::Op::Add, 2), (crate::tasks::arith::Op::Sub, 1)] }];
    let ids = s.ids();
    let found = beam_search(&s, &mut Oracle(&s), &q_only(), &ids, beam(2, 2), 1).unwrap();
    assert_eq!(found[0].steps, ["3 + 2 = 5", "5 - 1 = 4", "answer: 4"]);
    // Depth 0: B * C = 4 expansions of the problem; depths 1 and 2: 2 members x 2.
    assert_eq!(found[0].ledger, Ledger { tokens: 120, steps_sampled: 12, verifier_calls: 12 });
    // A step limit of 2 stops every candidate after its second line.
    let limited = BeamOpts { max_steps: 2, ..beam(2, 2) };
    let found = beam_search(&s, &mut Oracle(&s), &q_only(), &ids, limited, 1).unwrap();
    assert_eq!(found[0].ledger, Ledger { tokens: 80, steps_sampled: 8, verifier_calls: 8 });
    // A token limit of 15 stops them after their second line too (10 + 10 >= 15).
    let limited = BeamOpts { max_tokens: 15, ..beam(3, 1) };
    let found = beam_search(&s, &mut Oracle(&s), &q_only(), &ids, limited, 1).unwrap();
    assert_eq!(found[0].ledger, Ledger { tokens: 60, steps_sampled: 6, verifier_calls: 6 });
    // Best-of-3: three whole responses of 30 tokens.
    let responses = sample_responses(&s, &ids, 3, 1).unwrap();
    assert_eq!(responses[0].iter().map(|r| r.tokens).sum::<u64>(), 90);
}

#[test]
fn one_member_and_one_expansion_samples_what_sampling_does() {
    let s = Script::new(50, 5, 0.3);
    let ids = s.ids();
    let found = beam_search(&s, &mut Oracle(&s), &q_only(), &ids, beam(1, 1), 11).unwrap();
    let sampled = sample_responses(&s, &ids, 1, 11).unwrap();
    for (f, r) in found.iter().zip(&sampled) {
        assert_eq!(f.steps, r[0].steps);
        assert_eq!(f.ledger.tokens, r[0].tokens);
    }
    // Some of them are wrong: the draws are not all alike.
    assert!(found.iter().enumerate().any(|(p, f)| !s.correct(p, &f.steps)));
}

#[test]
fn beam_results_do_not_depend_on_the_other_problems() {
    let s = Script::new(30, 4, 0.3);
    let ids = s.ids();
    let all = beam_search(&s, &mut Oracle(&s), &q_only(), &ids, beam(3, 2), 5).unwrap();
    // Problem 7 alone, under its own id, gets the same answer and ledger.
    let one = Script { problems: vec![s.problems[7].clone()], ..Script::new(0, 4, 0.3) };
    let alone = beam_search(&one, &mut Oracle(&one), &q_only(), &[ids[7]], beam(3, 2), 5).unwrap();
    assert_eq!(alone[0], all[7]);
}

#[test]
fn the_memo_evaluates_each_prefix_once_and_returns_the_same_values() {
    let s = Script::new(20, 4, 0.3);
    let ids = s.ids();
    let plain = beam_search(&s, &mut Oracle(&s), &q_only(), &ids, beam(4, 3), 2).unwrap();
    let mut memo = Memo::new(Oracle(&s));
    let memoised = beam_search(&s, &mut memo, &q_only(), &ids, beam(4, 3), 2).unwrap();
    assert_eq!(plain, memoised);
    let calls: u64 = plain.iter().map(|f| f.ledger.verifier_calls).sum();
    assert!(memo.evaluated < calls, "{} distinct of {calls}", memo.evaluated);
}
