//! Multi-step modular arithmetic: the paper's reasoning chains in miniature.
//!
//! A problem is a start value and a list of operations, e.g. `start 17 | + 5 | * 3 | - 40`.
//! A response is one line per step, each applying one operation to the running value and
//! stating the result (`17 + 5 = 22`), then a last line `answer: 66`. Arithmetic is modulo a
//! prime, so every operation is a bijection: a single wrong step always makes the answer
//! wrong, and no later step can repair it by accident. The checker is exact.
//!
//! The teacher (supervised data for the base policy) makes a wrong step with probability
//! `error_rate` (it states a wrong result and carries on from it) and emits a no-progress step
//! (restating the previous line) with probability `noop_rate`, so a policy trained on it is
//! right often but not always, and has steps that make no progress, as the paper's policies do.

use rand::Rng;

/// An operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
}

impl Op {
    pub fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
            Op::Mul => '*',
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "+" => Some(Op::Add),
            "-" => Some(Op::Sub),
            "*" => Some(Op::Mul),
            _ => None,
        }
    }

    pub fn apply(self, a: u64, b: u64, m: u64) -> u64 {
        match self {
            Op::Add => (a + b) % m,
            Op::Sub => (a + m - b % m) % m,
            Op::Mul => (a * b) % m,
        }
    }
}

/// Task params.
#[derive(Debug, Clone, PartialEq)]
pub struct Arith {
    /// Operations per problem.
    pub steps: usize,
    /// Prime modulus of the arithmetic.
    pub modulus: u64,
    /// Operands are drawn from `1..=max_operand`.
    pub max_operand: u64,
    pub ops: Vec<Op>,
}

impl Default for Arith {
    fn default() -> Self {
        Arith { steps: 4, modulus: 97, max_operand: 9, ops: vec![Op::Add, Op::Sub, Op::Mul] }
    }
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub start: u64,
    pub ops: Vec<(Op, u64)>,
}

impl Problem {
    pub fn prompt(&self) -> String {
        let ops: Vec<String> = self.ops.iter().map(|(o, b)| format!("{} {b}", o.symbol())).collect();
        format!("start {} | {}", self.start, ops.join(" | "))
    }
}

/// Teacher noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Teacher {
    pub error_rate: f64,
    pub noop_rate: f64,
}

impl Arith {
    /// Check the params; the message names the param and says what is expected.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps == 0 || self.steps > 64 {
            return Err(format!("`steps` must be in 1..=64, got {}", self.steps));
        }
        if !is_prime(self.modulus) {
            return Err(format!(
                "`modulus` must be a prime (so that one wrong step always gives a wrong answer), got {}; try 97",
                self.modulus
            ));
        }
        if self.max_operand == 0 || self.max_operand >= self.modulus {
            return Err(format!("`max_operand` must be in 1..{}, got {}", self.modulus, self.max_operand));
        }
        if self.ops.is_empty() {
            return Err("`ops` must list at least one of \"+\", \"-\", \"*\"".into());
        }
        Ok(())
    }

    pub fn problem(&self, rng: &mut impl Rng) -> Problem {
        let start = rng.random_range(0..self.modulus);
        let ops = (0..self.steps)
            .map(|_| (self.ops[rng.random_range(0..self.ops.len())], rng.random_range(1..=self.max_operand)))
            .collect();
        Problem { start, ops }
    }

    /// The exact answer.
    pub fn answer(&self, p: &Problem) -> u64 {
        p.ops.iter().fold(p.start, |a, &(o, b)| o.apply(a, b, self.modulus))
    }

    /// A teacher response: one line per step (plus restated lines), then `answer: X`.
    pub fn teacher(&self, p: &Problem, t: Teacher, rng: &mut impl Rng) -> Vec<String> {
        let mut lines = Vec::new();
        let mut cur = p.start;
        for &(o, b) in &p.ops {
            if let Some(last) = lines.last().cloned()
                && rng.random::<f64>() < t.noop_rate
            {
                lines.push(last);
            }
            let mut next = o.apply(cur, b, self.modulus);
            if rng.random::<f64>() < t.error_rate {
                // A wrong result, uniformly among the other residues.
                next = (next + rng.random_range(1..self.modulus)) % self.modulus;
            }
            lines.push(format!("{cur} {} {b} = {next}", o.symbol()));
            cur = next;
        }
        lines.push(format!("answer: {cur}"));
        lines
    }

    /// The stated answer of a response (its last line `answer: X`), if it has one.
    pub fn extract(&self, steps: &[String]) -> Option<u64> {
        steps.last()?.trim().strip_prefix("answer:")?.trim().parse().ok()
    }

    /// Exact check of a response against the problem.
    pub fn correct(&self, p: &Problem, steps: &[String]) -> bool {
        self.extract(steps) == Some(self.answer(p))
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::item_rng;

    #[test]
    fn an_exact_teacher_is_always_right() {
        let a = Arith::default();
        let t = Teacher { error_rate: 0.0, noop_rate: 0.3 };
        for i in 0..2000 {
            let mut rng = item_rng(5, 0, i);
            let p = a.problem(&mut rng);
            let r = a.teacher(&p, t, &mut rng);
            assert!(a.correct(&p, &r), "{}\n{}", p.prompt(), r.join("\n"));
        }
    }

    #[test]
    fn one_wrong_step_makes_the_answer_wrong() {
        // Corrupt exactly one step's result and recompute the rest from it, as a policy that
        // carries its own mistake forward would.
        let a = Arith::default();
        for i in 0..2000 {
            let mut rng = item_rng(6, 0, i);
            let p = a.problem(&mut rng);
            let bad = rng.random_range(0..p.ops.len());
            let delta = rng.random_range(1..a.modulus);
            let mut cur = p.start;
            for (k, &(o, b)) in p.ops.iter().enumerate() {
                cur = o.apply(cur, b, a.modulus);
                if k == bad {
                    cur = (cur + delta) % a.modulus;
                }
            }
            let resp = vec![format!("answer: {cur}")];
            assert!(!a.correct(&p, &resp), "{} step {bad}", p.prompt());
        }
    }

    #[test]
    fn a_noisy_teacher_is_right_about_as_often_as_its_error_rate_says() {
        let a = Arith::default();
        let t = Teacher { error_rate: 0.1, noop_rate: 0.0 };
        let n = 4000;
        let right = (0..n)
            .filter(|&i| {
                let mut rng = item_rng(7, 0, i);
                let p = a.problem(&mut rng);
                let r = a.teacher(&p, t, &mut rng);
                a.correct(&p, &r)
            })
            .count() as f64
            / n as f64;
        let expect = 0.9f64.powi(a.steps as i32);
        let tol = 4.0 * (expect * (1.0 - expect) / n as f64).sqrt();
        assert!((right - expect).abs() < tol, "{right} vs {expect}");
    }

    #[test]
    fn responses_have_one_line_per_step_and_an_answer_line() {
        let a = Arith::default();
        let p = Problem { start: 17, ops: vec![(Op::Add, 5), (Op::Mul, 3), (Op::Sub, 9)] };
        let r = a.teacher(&p, Teacher { error_rate: 0.0, noop_rate: 0.0 }, &mut item_rng(0, 0, 0));
        assert_eq!(r, ["17 + 5 = 22", "22 * 3 = 66", "66 - 9 = 57", "answer: 57"]);
        assert_eq!(p.prompt(), "start 17 | + 5 | * 3 | - 9");
        assert_eq!(a.extract(&["x".into()]), None);
    }

    #[test]
    fn bad_params_are_named() {
        assert!(Arith { modulus: 100, ..Arith::default() }.validate().unwrap_err().contains("`modulus`"));
        assert!(Arith { max_operand: 97, ..Arith::default() }.validate().unwrap_err().contains("`max_operand`"));
        assert!(Arith { steps: 0, ..Arith::default() }.validate().unwrap_err().contains("`steps`"));
        assert!(Arith::default().validate().is_ok());
    }
}
