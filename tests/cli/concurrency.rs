//! Several runs at once: two processes on one cache compute a shared key once; serial and
//! parallel runs agree on keys and bytes (also over seeded random DAGs, against an oracle).

use std::collections::BTreeMap;
use std::fs;

use crate::fixture::{Project, RunReport, output, wait_for};

/// `up` blocks until `go` exists; `down` reads it. `mark` differs per file, so each process
/// announces that it is running stages.
fn shared_upstream(mark: &str) -> String {
    format!(
        r#"
        stages:
          up:
            kind: command
            cmd: >-
              echo x >> counts/up_started;
              i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done;
              test -e go && echo x >> counts/up && echo up > ${{outputs.t}}
            outputs: {{t: t.txt}}
          {mark}:
            kind: command
            cmd: echo x >> counts/{mark}; echo {mark} > ${{outputs.t}}
            outputs: {{t: t.txt}}
          down:
            kind: command
            needs: {{src: up}}
            cmd: echo x >> counts/down; cat ${{inputs.src}} > ${{outputs.t}}; echo down >> ${{outputs.t}}
            outputs: {{t: t.txt}}
        "#
    )
}

#[test]
fn two_concurrent_runs_compute_a_shared_key_once() {
    let p = Project::new();
    p.write("one.yaml", &shared_upstream("mark_one"));
    p.write("two.yaml", &shared_upstream("mark_two"));
    let (one, two) = (p.keys("one.yaml"), p.keys("two.yaml"));
    assert_eq!(one["up"], two["up"]);
    assert_eq!(one["down"], two["down"]);

    let json = |file: &str| {
        let mut c = p.command();
        c.args(["--json", "run", file, "-j", "2"]);
        c
    };
    let mut first = json("one.yaml").stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut second = json("two.yaml").stdout(std::process::Stdio::piped()).spawn().unwrap();
    // Both processes are scheduling (each ran its own marker stage next to `up`), and one of
    // them is inside `up`; the other waits for the key.
    wait_for("both runs and `up` to start", 60, || {
        p.count("mark_one") == 1 && p.count("mark_two") == 1 && p.count("up_started") >= 1
    });
    fs::write(p.path("go"), "").unwrap();

    let mut reports = Vec::new();
    for child in [&mut first, &mut second] {
        let mut stdout = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "a concurrent run failed: {status}\n{stdout}");
        let r: RunReport = serde_json::from_str(&stdout).unwrap();
        reports.push(r);
    }
    assert_eq!(p.count("up_started"), 1, "`up` was started twice");
    assert_eq!(p.count("up"), 1, "`up` was computed twice");
    assert_eq!(p.count("down"), 1, "`down` was computed twice");
    let ran_up: Vec<&str> = reports.iter().map(|r| r.status("up")).collect();
    assert!(ran_up.contains(&"ran") && ran_up.contains(&"cached"), "{ran_up:?}");
    assert_eq!(p.view("one/down/t.txt"), "up\ndown\n");
    assert_eq!(p.view("two/down/t.txt"), "up\ndown\n");
    p.pipeline(&["verify"]).expect_code(0);
}

/// Output files of every entry in the cache: key -> (file -> bytes), manifests and logs aside.
fn object_bytes(p: &Project, cache: &str) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for key in crate::fixture::list_dir(&p.path(cache).join("objects")) {
        let dir = p.path(cache).join("objects").join(&key);
        let files = crate::fixture::list_dir(&dir)
            .into_iter()
            .filter(|f| f != "manifest.json" && f != "stage.log")
            .map(|f| {
                let bytes = fs::read(dir.join(&f)).unwrap();
                (f, bytes)
            })
            .collect();
        out.insert(key, files);
    }
    out
}

fn run_in(p: &Project, cache: &str, file: &str, jobs: &str) -> RunReport {
    let mut c = p.bare_command();
    c.args(["--cache", cache, "--json", "run", file, "-j", jobs]);
    let r: RunReport = output(&mut c).expect_code(0).json();
    assert_eq!(r.cached, 0, "fresh cache");
    r
}

#[test]
fn serial_and_parallel_runs_give_identical_keys_and_bytes() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        params: {n: 5}
        stages:
          make:
            kind: command
            cmd: seq 1 ${params.n} > ${outputs.t}
            outputs: {t: t.txt}
          train:
            kind: command
            needs: {src: make}
            sweep: {lr: [1, 2, 3, 4], depth: [1, 2]}
            cmd: awk -v lr=${sweep.lr} -v d=${sweep.depth} '{print $1 * lr + d}' ${inputs.src} > ${outputs.t}
            outputs: {t: t.txt}
          summary:
            kind: command
            needs: {runs: "train[*]"}
            cmd: cd ${inputs.runs} && for f in $(find . -name t.txt | sort); do echo "$f $(awk '{s += $1} END {print s}' $f)"; done > ${outputs.t}
            outputs: {t: t.txt}
          side:
            kind: command
            cmd: echo side > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    let serial = run_in(&p, "serial", "p.yaml", "1");
    let parallel = run_in(&p, "parallel", "p.yaml", "4");
    assert_eq!(serial.keys(), parallel.keys());
    assert_eq!(serial.keys().len(), 11);
    let (a, b) = (object_bytes(&p, "serial"), object_bytes(&p, "parallel"));
    assert_eq!(a.len(), 11);
    assert_eq!(a, b);
    assert!(fs::read_to_string(p.path("serial/views/p/summary/t.txt")).unwrap().contains("./lr=4/depth=2/t.txt 70"));
}

/// A small deterministic generator (xorshift), so the random DAGs are the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn random_dags_serial_and_parallel_match_an_oracle() {
    for seed in [1u64, 7, 42] {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let n = 10;
        let mut yaml = String::from("stages:\n");
        // Oracle: each stage's output is its name, then its inputs' outputs in port order.
        let mut expected: Vec<String> = Vec::new();
        for i in 0..n {
            let ups: Vec<usize> = (0..i).filter(|_| rng.below(3) == 0).collect();
            let needs: Vec<String> = ups.iter().map(|u| format!("i{u}: s{u}")).collect();
            let cats: String = ups.iter().map(|u| format!(" ${{inputs.i{u}}}")).collect();
            yaml.push_str(&format!("  s{i}:\n    kind: command\n"));
            if !ups.is_empty() {
                yaml.push_str(&format!("    needs: {{{}}}\n", needs.join(", ")));
            }
            yaml.push_str(&format!("    cmd: (echo s{i}; cat /dev/null{cats}) > ${{outputs.t}}\n"));
            yaml.push_str("    outputs: {t: t.txt}\n");
            let mut text = format!("s{i}\n");
            for u in &ups {
                text.push_str(&expected[*u]);
            }
            expected.push(text);
        }
        let p = Project::new();
        p.write("p.yaml", &yaml);
        let serial = run_in(&p, "serial", "p.yaml", "1");
        let parallel = run_in(&p, "parallel", "p.yaml", "4");
        assert_eq!(serial.keys(), parallel.keys(), "seed {seed}");
        assert_eq!(object_bytes(&p, "serial"), object_bytes(&p, "parallel"), "seed {seed}");
        for (i, want) in expected.iter().enumerate() {
            for cache in ["serial", "parallel"] {
                let got = fs::read_to_string(p.path(&format!("{cache}/views/p/s{i}/t.txt"))).unwrap();
                assert_eq!(&got, want, "seed {seed}, stage s{i}, {cache}\n{yaml}");
            }
        }
    }
}
