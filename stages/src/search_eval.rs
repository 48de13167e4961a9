//! The `search-eval` kind: best-of-N against beam search scored by the effective reward, on
//! held-out problems (paper Sec. 4.1, Fig. 4 and 5a).
//!
//! Methods (one row family each in `results`):
//! - `pass`: Pass@N with the exact checker (the ceiling); `majority`: majority vote over the N
//!   stated answers (ties go to the answer seen first);
//! - `bon-orm`: best-of-N ranked by the ORM (`orm` port); `bon-pav`: best-of-N ranked by the
//!   `verifier` used as an ORM (its `Q` at the last step);
//! - `beam-pqv`: beam search scored by `Q` alone; `beam-pav`: by `Q + alpha * A`, `A` from the
//!   verifier's prover (a PAV) or, with `k`, from the Best-of-K transform of its `Q` (so a PQV
//!   serves as a Bo-K PAV without retraining). Beam width B = N, `expand` (C) steps per member.
//!
//! The best-of-N methods share one set of N responses per problem (sample `s` drawn as the
//! `sample` kind draws it), and each N uses the first N of them, so the curves are nested.
//! `results` (results.parquet): method, n int32, accuracy, acc_lo, acc_hi (95% bootstrap over
//! problems), tokens int64 (every generated token, discarded beam expansions included),
//! steps_sampled int64, verifier_calls int64, problems int32, seed int64, gain_vs_orm (accuracy
//! minus `bon-orm`'s at the same N; null without it). `efficiency` (efficiency.parquet): per
//! method, the smallest measured compute (tokens) at which it reaches `bon-orm`'s accuracy at
//! the largest N, and its ratio to that compute.

use burn::prelude::Device;
use rand::Rng;

use crate::contract::{PortSpec, Stage, StageContext, StageError, StageInfo};
use crate::generate::SampleOpts;
use crate::models::checkpoint::{Checkpoint, PolicyModel};
use crate::models::device::device;
use crate::models::verifier::{ProverSpec, VerifierCheckpoint};
use crate::params::Params;
use crate::rng::item_rng;
use crate::search::{BeamOpts, Ledger, Memo, Response, Valuer, beam_search};
use crate::table::read_problems;
use crate::task::Task;
use crate::train_policy::port;

mod adapters;
mod tables;
pub use adapters::{PolicyProposer, VerifierValuer};
use tables::{write_efficiency, write_picks, write_results};

pub struct SearchEval;

const METHODS: &[&str] = &["pass", "majority", "bon-orm", "bon-pav", "beam-pqv", "beam-pav"];
const STREAM_BOOTSTRAP: u64 = 61;
const BOOTSTRAP: usize = 1000;

fn param_err(field: &str, message: impl Into<String>) -> StageError {
    StageError::Param { field: field.into(), message: message.into() }
}

/// One row of the results table.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub method: String,
    pub n: i32,
    pub accuracy: f64,
    pub acc_lo: f64,
    pub acc_hi: f64,
    pub ledger: Ledger,
    pub problems: i32,
    pub gain_vs_orm: Option<f64>,
}

/// The 95% percentile bootstrap interval of the mean of `hits` over resampled problems.
pub fn bootstrap(hits: &[bool], seed: u64, key: u64) -> (f64, f64) {
    let n = hits.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mut rng = item_rng(seed, STREAM_BOOTSTRAP, key);
    let mut means: Vec<f64> =
        (0..BOOTSTRAP).map(|_| (0..n).filter(|_| hits[rng.random_range(0..n)]).count() as f64 / n as f64).collect();
    means.sort_by(f64::total_cmp);
    (means[BOOTSTRAP * 25 / 1000], means[BOOTSTRAP * 975 / 1000 - 1])
}

/// The index of the first maximum of `scores`.
fn argmax(scores: &[f64]) -> usize {
    scores.iter().enumerate().fold(0, |best, (i, &s)| if s > scores[best] { i } else { best })
}

/// The response holding the majority answer among `(answer, correct)` pairs (empty answers do
/// not vote; ties go to the answer seen first), if any response states an answer.
pub fn majority(answers: &[(String, bool)]) -> Option<usize> {
    let mut counts: Vec<(&str, usize, usize)> = Vec::new(); // answer, votes, first response
    for (i, (a, _)) in answers.iter().enumerate().filter(|(_, (a, _))| !a.is_empty()) {
        match counts.iter_mut().find(|c| c.0 == a) {
            Some(c) => c.1 += 1,
            None => counts.push((a, 1, i)),
        }
    }
    counts
        .iter()
        .fold(None, |best: Option<&(&str, usize, usize)>, c| match best {
            Some(b) if b.1 >= c.1 => best,
            _ => Some(c),
        })
        .map(|c| c.2)
}

/// What one method chose for one problem at one N.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub method: String,
    pub n: i32,
    pub problem_id: i64,
    /// The chosen response (`pass`: the first right one, else the first).
    pub steps: Vec<String>,
    pub correct: bool,
    /// The score it was chosen by (null for `pass` and `majority`).
    pub score: Option<f64>,
}

/// Summarise per-problem hits and ledgers of one method at one N.
fn row(method: &str, n: usize, hits: &[bool], ledgers: &[Ledger], seed: u64) -> ResultRow {
    let key = (METHODS.iter().position(|m| *m == method).unwrap_or(99) as u64) << 32 | n as u64;
    let (acc_lo, acc_hi) = bootstrap(hits, seed, key);
    let mut ledger = Ledger::default();
    for l in ledgers {
        ledger += *l;
    }
    ResultRow {
        method: method.to_string(),
        n: n as i32,
        accuracy: hits.iter().filter(|&&h| h).count() as f64 / hits.len().max(1) as f64,
        acc_lo,
        acc_hi,
        ledger,
        problems: hits.len() as i32,
        gain_vs_orm: None,
    }
}

/// Best-of-N rows (and picks) from N responses per problem: their checks, and the ORM and
/// verifier scores of each response (`None` when that verifier is not wired).
#[allow(clippy::too_many_arguments)]
pub fn best_of_n_rows(
    ids: &[i64],
    responses: &[Vec<Response>],
    checks: &[Vec<(String, bool)>],
    orm: Option<&[Vec<f64>]>,
    pav: Option<&[Vec<f64>]>,
    ns: &[usize],
    methods: &[String],
    seed: u64,
) -> (Vec<ResultRow>, Vec<Pick>) {
    let mut rows = Vec::new();
    let mut picks = Vec::new();
    for &n in ns {
        for method in methods.iter().filter(|m| !m.starts_with("beam")) {
            let mut hits = Vec::with_capacity(responses.len());
            let mut ledgers = Vec::with_capacity(responses.len());
            for (p, resp) in responses.iter().enumerate() {
                let k = n.min(resp.len());
                let check = &checks[p][..k];
                let (chosen, score) = match method.as_str() {
                    "pass" => (Some(check.iter().position(|c| c.1).unwrap_or(0)), None),
                    "majority" => (majority(check), None),
                    "bon-orm" => ranked(orm, p, k),
                    _ => ranked(pav, p, k),
                };
                let hit = chosen.is_some_and(|i| check[i].1);
                hits.push(hit);
                picks.push(Pick {
                    method: method.clone(),
                    n: n as i32,
                    problem_id: ids[p],
                    steps: chosen.map(|i| resp[i].steps.clone()).unwrap_or_default(),
                    correct: hit,
                    score,
                });
                ledgers.push(Ledger {
                    tokens: resp[..k].iter().map(|r| r.tokens).sum(),
                    steps_sampled: resp[..k].iter().map(|r| r.steps.len() as u64).sum(),
                    verifier_calls: if method.starts_with("bon") { k as u64 } else { 0 },
                });
            }
            rows.push(row(method, n, &hits, &ledgers, seed));
        }
    }
    (rows, picks)
}

/// The best of the first `k` scores of problem `p`, and its score.
fn ranked(scores: Option<&[Vec<f64>]>, p: usize, k: usize) -> (Option<usize>, Option<f64>) {
    match scores {
        Some(s) => {
            let i = argmax(&s[p][..k]);
            (Some(i), Some(s[p][i]))
        }
        None => (None, None),
    }
}

/// Fill `gain_vs_orm` and compute the efficiency rows.
pub fn compare_to_orm(rows: &mut [ResultRow]) -> Vec<EfficiencyRow> {
    let orm: Vec<(i32, f64, u64)> =
        rows.iter().filter(|r| r.method == "bon-orm").map(|r| (r.n, r.accuracy, r.ledger.tokens)).collect();
    let Some(&(orm_n, orm_acc, orm_tokens)) = orm.iter().max_by_key(|o| o.0) else { return Vec::new() };
    for r in rows.iter_mut() {
        r.gain_vs_orm = orm.iter().find(|o| o.0 == r.n).map(|o| r.accuracy - o.1);
    }
    let mut methods: Vec<&str> = Vec::new();
    for r in rows.iter() {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    methods
        .into_iter()
        .map(|m| {
            let own: Vec<&ResultRow> = rows.iter().filter(|r| r.method == m).collect();
            let matched = own.iter().filter(|r| r.accuracy >= orm_acc).min_by_key(|r| (r.ledger.tokens, r.n));
            let last = own.iter().max_by_key(|r| r.n);
            let gains: Vec<f64> = own.iter().filter_map(|r| r.gain_vs_orm).collect();
            EfficiencyRow {
                method: m.to_string(),
                orm_n,
                orm_accuracy: orm_acc,
                orm_tokens,
                match_n: matched.map(|r| r.n),
                match_tokens: matched.map(|r| r.ledger.tokens),
                compute_ratio: matched.map(|r| r.ledger.tokens as f64 / orm_tokens.max(1) as f64),
                efficiency: matched.map(|r| orm_tokens as f64 / r.ledger.tokens.max(1) as f64),
                gain_at_max_n: last.and_then(|r| r.gain_vs_orm),
                mean_gain: (!gains.is_empty()).then(|| gains.iter().sum::<f64>() / gains.len() as f64),
            }
        })
        .collect()
}

/// One row of the efficiency table.
#[derive(Debug, Clone, PartialEq)]
pub struct EfficiencyRow {
    pub method: String,
    /// `bon-orm`'s largest N, its accuracy and tokens: the target.
    pub orm_n: i32,
    pub orm_accuracy: f64,
    pub orm_tokens: u64,
    /// The cheapest measured N (by tokens) at which the method reaches the target.
    pub match_n: Option<i32>,
    pub match_tokens: Option<u64>,
    /// `match_tokens / orm_tokens`: below 1 is more compute-efficient than the ORM.
    pub compute_ratio: Option<f64>,
    /// `orm_tokens / match_tokens`: the paper's "N x more compute-efficient".
    pub efficiency: Option<f64>,
    /// Accuracy minus `bon-orm`'s at the largest N, and the mean over the N both ran.
    pub gain_at_max_n: Option<f64>,
    pub mean_gain: Option<f64>,
}

/// `n` as one integer or a list; each at least 1; sorted, without repeats.
fn ns_param(p: &Params<'_>) -> Result<Vec<usize>, StageError> {
    let mut ns = match p.raw("n") {
        Some(v) if v.is_u64() => vec![p.uint_in("n", 1, 1, 1 << 16)?],
        _ => p.uint_list_or("n", &[2, 4, 8, 16, 32, 64, 128], 1 << 16)?,
    };
    if ns.is_empty() || ns.contains(&0) {
        return Err(param_err("n", "expected N >= 1 (or a list of them), e.g. `n: [2, 4, 8, 16]`"));
    }
    ns.sort_unstable();
    ns.dedup();
    Ok(ns.into_iter().map(|n| n as usize).collect())
}

/// Load a verifier from `port`, check what it predicts and that it scores the policy's task.
fn load_verifier(
    ctx: &StageContext<'_>,
    port_name: &str,
    task: &serde_json::Map<String, serde_json::Value>,
    dev: &Device,
) -> Result<Option<VerifierCheckpoint>, StageError> {
    let Some(path) = ctx.inputs.get(port_name) else { return Ok(None) };
    let ckpt = VerifierCheckpoint::load(path, dev)?;
    let target = ckpt.meta.target.as_str();
    match (port_name, target) {
        ("orm", "orm") | ("verifier", "pqv" | "pav") => {}
        ("orm", _) => {
            return Err(StageError::Failed(format!(
                "the `orm` port holds a `{target}` verifier; wire a `train-verifier` stage with `target: orm` \
                 (a step verifier belongs on the `verifier` port)"
            )));
        }
        _ => {
            return Err(StageError::Failed(format!(
                "the `verifier` port holds a `{target}` verifier, which scores whole responses only; beam search \
                 needs step values: wire a `train-verifier` stage with `target: pqv` or `target: pav`"
            )));
        }
    }
    // A verifier trained from scratch (no `policy` wired) does not know its task.
    if !ckpt.meta.task.is_empty() && &ckpt.meta.task != task {
        return Err(StageError::Failed(format!(
            "the `{port_name}` verifier was trained on responses to another task ({}) than the policy's ({}); \
             wire a verifier trained on this policy's samples",
            serde_json::Value::Object(ckpt.meta.task.clone()),
            serde_json::Value::Object(task.clone())
        )));
    }
    Ok(Some(ckpt))
}

impl Stage for SearchEval {
    fn info(&self) -> StageInfo {
        StageInfo {
            kind: "search-eval",
            doc: "best-of-N (ORM, PAV-as-ORM, majority, Pass@N) vs beam search scored by Q or Q + alpha * A",
            params: vec![
                "n",
                "expand",
                "alpha",
                "k",
                "methods",
                "split",
                "problems",
                "temperature",
                "max_steps",
                "max_tokens",
                "batch",
                "device",
            ],
            inputs: vec![
                PortSpec::input("problems", "a `problems` table (the `split` rows are searched)"),
                PortSpec::input("policy", "the base policy checkpoint (a transformer on a text task)"),
                PortSpec::optional("orm", "an ORM (`train-verifier`, `target: orm`) for `bon-orm`"),
                PortSpec::optional("verifier", "a PQV or PAV for `bon-pav`, `beam-pqv` and `beam-pav`"),
            ],
            outputs: vec![
                PortSpec::output("results", "results.parquet", "per method and N: accuracy with 95% CI and compute"),
                PortSpec::output("efficiency", "efficiency.parquet", "per method: compute to match ORM best-of-N"),
                PortSpec::output("picks", "picks.parquet", "per method, N and problem: the chosen response"),
            ],
        }
    }

    fn version(&self) -> u32 {
        // 2: the transformer decodes on the host (models/host.rs): the same function, other
        // float roundings, so sampled tokens can differ from version 1's.
        // 3: gemm's AVX-512 kernels (its `x86-v4` feature, ADR 0009) on machines that have
        // them: other float roundings there.
        3
    }

    fn run(&self, ctx: &mut StageContext<'_>) -> Result<(), StageError> {
        let p = Params::new(ctx.params);
        let ns = ns_param(&p)?;
        let expand = p.uint_in("expand", 3, 1, 1024)? as usize;
        let split = p.str_or("split", "test")?;
        if !["all", "train", "test"].contains(&split.as_str()) {
            return Err(param_err("split", format!("expected `all`, `train` or `test`, found `{split}`")));
        }
        let limit = p.uint_or("problems", 0, 1 << 40)? as usize;
        let opts = SampleOpts {
            temperature: p.float_or("temperature", 1.0, 0.0, 100.0)?,
            max_steps: p.uint_in("max_steps", 64, 1, 1 << 20)? as usize,
            max_tokens: p.uint_in("max_tokens", 512, 1, 1 << 20)? as usize,
            batch: p.uint_in("batch", 256, 1, 1 << 20)? as usize,
        };
        let alpha = match p.raw("alpha") {
            None => None,
            Some(v) => match v.as_f64() {
                Some(a) if a.is_finite() => Some(a),
                _ => return Err(param_err("alpha", format!("expected a finite number (e.g. 0.5), found {v}"))),
            },
        };
        let k = match p.raw("k") {
            None => None,
            Some(_) => Some(p.uint_in("k", 4, 1, 1 << 20)? as u32),
        };
        let dev = device(&p.str_or("device", "cpu")?).map_err(|m| param_err("device", m))?;
        let policy = Checkpoint::load(port(ctx.inputs, "policy", "search-eval")?, &dev)?;
        let PolicyModel::Transformer(_, model) = &policy.model else {
            return Err(StageError::Failed(
                "search-eval serves the text tasks (arith, jsonl); the `policy` is an MLP of the planted task".into(),
            ));
        };
        let task = Task::from_params(&Params::new(&policy.task))?;
        let orm = load_verifier(ctx, "orm", &policy.task, &dev)?;
        let verifier = load_verifier(ctx, "verifier", &policy.task, &dev)?;
        let available = |m: &str| match m {
            "bon-orm" => orm.is_some(),
            "bon-pav" | "beam-pqv" | "beam-pav" => verifier.is_some(),
            _ => true,
        };
        let methods: Vec<String> = match p.raw("methods") {
            None => METHODS.iter().filter(|m| available(m)).map(|m| m.to_string()).collect(),
            Some(_) => p.str_list_or("methods", &[])?,
        };
        for m in &methods {
            if !METHODS.contains(&m.as_str()) {
                return Err(param_err("methods", format!("unknown method `{m}`; expected some of {METHODS:?}")));
            }
            if !available(m) {
                let port = if m == "bon-orm" { "orm" } else { "verifier" };
                return Err(param_err(
                    "methods",
                    format!("`{m}` needs the `{port}` port: add `needs: {{{port}: STAGE}}`"),
                ));
            }
        }
        // The prover of `beam-pav`: the verifier's own, or Best-of-K by the transform of its Q.
        let meta = verifier.as_ref().map(|v| {
            let mut meta = v.meta.clone();
            if let Some(k) = k {
                meta.prover = ProverSpec::BestOfK(k);
            }
            meta
        });
        if methods.iter().any(|m| m == "beam-pav") && meta.as_ref().is_some_and(|m| m.prover == ProverSpec::None) {
            return Err(param_err(
                "k",
                "`beam-pav` needs an advantage: the `verifier` is a PQV (no prover); set `k` to use Best-of-K of \
                 the base policy as the prover, or wire a PAV",
            ));
        }
        let alpha = alpha.or(meta.as_ref().map(|m| m.alpha)).unwrap_or(0.5);

        let problems: Vec<_> = read_problems(port(ctx.inputs, "problems", "search-eval")?)?
            .into_iter()
            .filter(|r| split == "all" || r.split == split)
            .take(if limit == 0 { usize::MAX } else { limit })
            .collect();
        if problems.is_empty() {
            return Err(StageError::Failed(format!("no `{split}` problems to search; check the `split` param")));
        }
        policy.check_prompts(&problems, "search-eval")?;
        let ids: Vec<i64> = problems.iter().map(|r| r.problem_id).collect();
        let prompts: Vec<String> = problems.iter().map(|r| r.prompt.clone()).collect();
        let proposer = PolicyProposer { model, prompts: prompts.clone(), opts, device: dev.clone() };
        let check = |p: usize, steps: &[String]| task.check_text(&problems[p].answer, steps);
        let started = std::time::Instant::now();
        let mut rows = Vec::new();
        let mut picks = Vec::new();

        // Best-of-N: one set of responses, scored once by each verifier.
        let nmax = *ns.last().unwrap_or(&1);
        if methods.iter().any(|m| !m.starts_with("beam")) {
            let responses = crate::search::sample_responses(&proposer, &ids, nmax, ctx.seed)?;
            let checks: Vec<Vec<(String, bool)>> =
                responses.iter().enumerate().map(|(p, rs)| rs.iter().map(|r| check(p, &r.steps)).collect()).collect();
            let last_q = |ckpt: &VerifierCheckpoint| -> Result<Vec<Vec<f64>>, StageError> {
                let mut valuer =
                    VerifierValuer { ckpt, prompts: prompts.clone(), batch: opts.batch, device: dev.clone() };
                let items: Vec<(usize, &[String])> = responses
                    .iter()
                    .enumerate()
                    .flat_map(|(p, rs)| rs.iter().map(move |r| (p, r.steps.as_slice())))
                    .collect();
                let values = valuer.values(&items)?;
                let mut it = values.into_iter().map(|v| v.last().map_or(0.0, |h| h[0]));
                Ok(responses.iter().map(|rs| it.by_ref().take(rs.len()).collect()).collect())
            };
            let orm_scores = match (&orm, methods.iter().any(|m| m == "bon-orm")) {
                (Some(c), true) => Some(last_q(c)?),
                _ => None,
            };
            let pav_scores = match (&verifier, methods.iter().any(|m| m == "bon-pav")) {
                (Some(c), true) => Some(last_q(c)?),
                _ => None,
            };
            let (bon_rows, bon_picks) = best_of_n_rows(
                &ids,
                &responses,
                &checks,
                orm_scores.as_deref(),
                pav_scores.as_deref(),
                &ns,
                &methods,
                ctx.seed,
            );
            rows.extend(bon_rows);
            picks.extend(bon_picks);
            writeln!(ctx.log, "best-of-{nmax}: {} problems in {:.1?}", ids.len(), started.elapsed())?;
        }

        // Beam search: one memo of verifier values shared by every width and both scorings.
        if let (Some(ckpt), Some(meta)) = (&verifier, &meta) {
            let mut valuer =
                Memo::new(VerifierValuer { ckpt, prompts: prompts.clone(), batch: opts.batch, device: dev.clone() });
            for method in methods.iter().filter(|m| m.starts_with("beam")) {
                let a = if method == "beam-pav" { alpha } else { 0.0 };
                for &n in &ns {
                    let t0 = std::time::Instant::now();
                    let beam = BeamOpts {
                        width: n,
                        expand,
                        alpha: a,
                        max_steps: opts.max_steps,
                        max_tokens: opts.max_tokens as u64,
                    };
                    let found = beam_search(&proposer, &mut valuer, meta, &ids, beam, ctx.seed)?;
                    let hits: Vec<bool> = found.iter().enumerate().map(|(p, f)| check(p, &f.steps).1).collect();
                    let ledgers: Vec<Ledger> = found.iter().map(|f| f.ledger).collect();
                    let r = row(method, n, &hits, &ledgers, ctx.seed);
                    for ((f, &hit), &problem_id) in found.into_iter().zip(&hits).zip(&ids) {
                        let (n, method) = (n as i32, method.clone());
                        picks.push(Pick { method, n, problem_id, steps: f.steps, correct: hit, score: Some(f.q) });
                    }
                    writeln!(
                        ctx.log,
                        "{method} N={n}: accuracy {:.3}, {} tokens, {:.1} problems/s",
                        r.accuracy,
                        r.ledger.tokens,
                        ids.len() as f64 / t0.elapsed().as_secs_f64().max(1e-9)
                    )?;
                    rows.push(r);
                }
            }
            writeln!(ctx.log, "verifier: {} distinct prefixes evaluated", valuer.evaluated)?;
        }
        let efficiency = compare_to_orm(&mut rows);
        for r in &rows {
            writeln!(
                ctx.log,
                "{:<9} N={:<4} accuracy {:.3} [{:.3}, {:.3}]  tokens {}",
                r.method, r.n, r.accuracy, r.acc_lo, r.acc_hi, r.ledger.tokens
            )?;
        }
        writeln!(ctx.log, "total {:.1?} for {} problems", started.elapsed(), ids.len())?;
        write_results(port(ctx.outputs, "results", "search-eval")?, &rows, ctx.seed)?;
        write_efficiency(port(ctx.outputs, "efficiency", "search-eval")?, &efficiency)?;
        write_picks(port(ctx.outputs, "picks", "search-eval")?, &picks)
    }
}

#[cfg(test)]
#[path = "search_eval_tests.rs"]
mod tests;
