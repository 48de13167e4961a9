//! Search throughput on the CPU default: problems per second for best-of-N and for beam search
//! (B x C expansions per depth, every problem's expansions sampled in one batched call and
//! scored in one batched verifier call), on the arithmetic setting of pipelines/arith.yaml
//! (2-operation chains mod 7, the small transformer policy, a verifier on the policy's trunk).
//!
//! The verifier's value head is untrained: accuracy is not the point here, throughput is.
//!
//! Run: `cargo bench -p pav-stages --bench search` (add `-- quick` for fewer problems and a
//! shorter policy training). Figures are in docs/performance.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pav_stages::generate::SampleOpts;
use pav_stages::models::checkpoint::{Checkpoint, PolicyModel};
use pav_stages::models::verifier::{ProverSpec, Verifier, VerifierCheckpoint, VerifierMeta};
use pav_stages::search::{BeamOpts, Memo, beam_search, sample_responses};
use pav_stages::search_eval::{PolicyProposer, VerifierValuer};
use pav_stages::table::read_problems;
use pav_stages::{Stage, StageContext};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn run(
    stage: &dyn Stage,
    dir: &Path,
    name: &str,
    params: Value,
    inputs: &[(&str, &Path)],
) -> BTreeMap<String, PathBuf> {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).expect("output directory");
    let outputs: BTreeMap<String, PathBuf> =
        stage.info().outputs.iter().map(|p| (p.name.to_string(), out.join(p.file))).collect();
    let inputs: BTreeMap<String, PathBuf> = inputs.iter().map(|(k, v)| (k.to_string(), v.to_path_buf())).collect();
    let params = params.as_object().cloned().unwrap_or_default();
    let mut log = Vec::new();
    let mut ctx = StageContext { params: &params, seed: 0, dir, inputs: &inputs, outputs: &outputs, log: &mut log };
    stage.run(&mut ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
    outputs
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let d = tmp.path();
    let task = json!({"task": "arith", "steps": 2, "modulus": 7, "max_operand": 3, "ops": ["+", "-"]});
    let with = |extra: Value| {
        let mut m = task.as_object().cloned().unwrap_or_default();
        m.extend(extra.as_object().cloned().unwrap_or_default());
        Value::Object(m)
    };
    let test = if quick { 32 } else { 128 };
    let probs = run(&pav_stages::problems::Problems, d, "problems", with(json!({"train": 256, "test": test})), &[]);
    let model = json!({"d_model": 64, "layers": 2, "heads": 4, "d_ff": 256, "context": 96,
                       "iterations": if quick { 100 } else { 400 }, "learning_rate": 0.003, "traces": 1});
    let pol =
        run(&pav_stages::train_policy::TrainPolicy, d, "policy", with(model), &[("problems", &probs["problems"])]);
    let device = burn::prelude::Device::flex();
    let ckpt = Checkpoint::load(&pol["policy"], &device).expect("policy");
    let PolicyModel::Transformer(config, trunk) = &ckpt.model else { panic!("a transformer policy") };
    let meta =
        VerifierMeta { target: "pav".into(), prover: ProverSpec::BestOfK(4), alpha: 0.5, task: ckpt.task.clone() };
    let verifier = VerifierCheckpoint {
        config: config.clone(),
        model: Verifier::new(trunk.clone(), config.d_model, 1, &device),
        meta: meta.clone(),
    };
    let problems: Vec<_> =
        read_problems(&probs["problems"]).expect("problems").into_iter().filter(|p| p.split == "test").collect();
    let ids: Vec<i64> = problems.iter().map(|p| p.problem_id).collect();
    let prompts: Vec<String> = problems.iter().map(|p| p.prompt.clone()).collect();
    let opts = SampleOpts { temperature: 1.0, max_steps: 64, max_tokens: 512, batch: 256 };
    let proposer = PolicyProposer { model: trunk, prompts: prompts.clone(), opts, device: device.clone() };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("backend flex, {threads} threads, {} test problems, policy d_model {}", ids.len(), config.d_model);

    let n = 16;
    let start = Instant::now();
    let responses = sample_responses(&proposer, &ids, n, 0).expect("responses");
    let sampling = start.elapsed().as_secs_f64();
    let mut valuer = VerifierValuer { ckpt: &verifier, prompts: prompts.clone(), batch: 256, device: device.clone() };
    let items: Vec<(usize, &[String])> =
        responses.iter().enumerate().flat_map(|(p, rs)| rs.iter().map(move |r| (p, r.steps.as_slice()))).collect();
    let t = Instant::now();
    pav_stages::search::Valuer::values(&mut valuer, &items).expect("values");
    let score = t.elapsed().as_secs_f64();
    let tokens: u64 = responses.iter().flatten().map(|r| r.tokens).sum();
    println!(
        "best-of-{n}: {:.1} problems/s  (sampling {sampling:.2} s, {:.0} tokens/s; scoring {} responses {score:.2} s)",
        ids.len() as f64 / (sampling + score),
        tokens as f64 / sampling,
        items.len()
    );
    for width in [4, 16] {
        let beam = BeamOpts { width, expand: 3, alpha: 0.5, max_steps: 64, max_tokens: 512 };
        let mut memo =
            Memo::new(VerifierValuer { ckpt: &verifier, prompts: prompts.clone(), batch: 256, device: device.clone() });
        let start = Instant::now();
        let found = beam_search(&proposer, &mut memo, &meta, &ids, beam, 0).expect("beam search");
        let secs = start.elapsed().as_secs_f64();
        let tokens: u64 = found.iter().map(|f| f.ledger.tokens).sum();
        let calls: u64 = found.iter().map(|f| f.ledger.verifier_calls).sum();
        println!(
            "beam B={width} C=3: {:.1} problems/s  ({tokens} tokens, {:.0} tokens/s; {calls} verifier calls, {} distinct prefixes scored; {secs:.2} s)",
            ids.len() as f64 / secs,
            tokens as f64 / secs,
            memo.evaluated
        );
    }
}
