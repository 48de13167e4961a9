//! Bad input: every class of spec error exits 2 with `file:line:column`, what was expected, a
//! did-you-mean where one applies, and runs nothing.

use crate::fixture::{Output, Project, locations, redactions};

/// A valid stage that counts its executions; appended to every bad pipeline so that "nothing
/// was run" is observable.
const CANARY: &str = r#"
  canary:
    kind: command
    cmd: echo x >> counts/canary; echo ok > ${outputs.t}
    outputs: {t: t.txt}
"#;

/// Write `p.yaml` (the text after `stages:` gets the canary stage appended), run it, and check
/// the common contract of a spec error. Returns the output for specific checks.
#[track_caller]
fn spec_error(text: &str) -> (Project, Output) {
    let p = Project::new();
    let mut yaml = crate::fixture::dedent(text).trim_end().to_string() + "\n";
    if yaml.contains("stages:\n") {
        yaml.push_str(&crate::fixture::dedent(CANARY).lines().map(|l| format!("  {l}\n")).collect::<String>());
    }
    std::fs::write(p.path("p.yaml"), yaml).unwrap();
    let out = p.pipeline(&["run", "p.yaml"]).expect_code(2);
    check_nothing_ran(&p, &out);
    (p, out)
}

#[track_caller]
fn check_nothing_ran(p: &Project, out: &Output) {
    assert!(out.stderr.contains("nothing was run"), "{}", out.stderr);
    assert_eq!(out.stdout, "", "a spec error prints nothing on stdout");
    assert_eq!(p.count("canary"), 0, "a stage ran despite the spec error");
    assert!(p.objects().is_empty(), "the cache got entries: {:?}", p.objects());
}

/// Check that the report contains each part; miette wraps long lines, so whitespace (and the
/// `│` that starts a continued header line) is collapsed on both sides first.
#[track_caller]
fn assert_has(out: &Output, parts: &[&str]) {
    let flat = collapse(&out.stderr.replace("\n  │ ", " "));
    for part in parts {
        assert!(flat.contains(&collapse(part)), "missing {part:?} in:\n{}", out.stderr);
    }
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn missing_file() {
    let p = Project::new();
    let out = p.pipeline(&["run", "nope.yaml"]).expect_code(2);
    check_nothing_ran(&p, &out);
    assert_has(&out, &["cannot read pipeline file `nope.yaml`: not found"]);

    // A missing base of `extends` points at the `extends` line.
    let (_, out) = spec_error("extends: base.yaml\nstages:\n");
    assert_has(&out, &["p.yaml:1:10", "cannot read pipeline file `base.yaml`: not found"]);
}

#[test]
fn empty_file() {
    let (_, out) = spec_error("");
    assert_has(&out, &["p.yaml:1:1", "pipeline file `p.yaml` is empty"]);
    let (_, out) = spec_error("# only a comment\n\n");
    assert_has(&out, &["p.yaml:1:1", "is empty"]);
}

#[test]
fn yaml_syntax_error() {
    let (_, out) = spec_error(
        r#"
        stages:
          a: {kind: command, cmd: "echo", outputs: [t]
          b:
            kind: command
        "#,
    );
    assert_has(&out, &["× p.yaml:3:3: YAML syntax error: invalid indentation in flow construct"]);

    let (_, out) = spec_error("stages:\n  a:\n    kind: command\n    kind: command\n");
    assert_has(&out, &["p.yaml:4:5", "duplicate key `kind` (first defined at line 3)"]);
}

#[test]
fn wrong_types() {
    let (_, out) = spec_error(
        r#"
        seed: -3
        stages:
          a:
            kind: command
            cmd: [echo, hi]
            outputs: 5
            deps: {a: b}
            resources: {cpus: many}
        "#,
    );
    assert_has(
        &out,
        &[
            "p.yaml:1:7: `seed`: expected a non-negative integer, found int `-3`",
            "p.yaml:5:10: `stages.a.cmd`: expected a shell command string, found a list",
            "p.yaml:6:14: `stages.a.outputs`: expected a list of port names or a mapping port -> file name, found int `5`",
            "p.yaml:7:11: `stages.a.deps`: expected a file path, found a mapping",
            "p.yaml:8:23: `stages.a.resources.cpus`: expected an integer >= 1, found string `many`",
        ],
    );

    let (_, out) = spec_error("stages: [a, b]\n");
    assert_has(&out, &["p.yaml:1:9", "`stages`: expected a mapping of stage names to stages, found a list"]);
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let (_, out) = spec_error(
        r#"
        stages:
          a:
            kind: command
            cmdd: echo hi > ${outputs.t}
            outputs: [t]
        "#,
    );
    assert_has(&out, &["p.yaml:4:5: unknown key `cmdd` in stage `a`", "did you mean `cmd`?"]);

    let (_, out) = spec_error("parms: {n: 1}\nstages:\n");
    assert_has(&out, &["p.yaml:1:1: unknown key `parms`", "did you mean `params`?"]);
}

#[test]
fn unknown_kind_suggests_command() {
    let (_, out) = spec_error(
        r#"
        stages:
          a:
            kind: comand
            cmd: echo hi > ${outputs.t}
            outputs: [t]
        "#,
    );
    assert_has(&out, &["p.yaml:3:11: unknown kind `comand` in stage `a`", "did you mean `command`?"]);
}

#[test]
fn unknown_stage_in_needs() {
    let (_, out) = spec_error(
        r#"
        stages:
          make:
            kind: command
            cmd: echo hi > ${outputs.t}
            outputs: [t]
          use:
            kind: command
            needs: {src: maek}
            cmd: cat ${inputs.src} > ${outputs.t}
            outputs: [t]
        "#,
    );
    assert_has(&out, &["p.yaml:8:18: stage `use` needs unknown stage `maek`", "did you mean `make`?"]);
    // Reported once, at the need; `${inputs.src}` is not a second error.
    assert_has(&out, &["the pipeline spec has 1 error;"]);
}

#[test]
fn unknown_ports() {
    let (_, out) = spec_error(
        r#"
        stages:
          make:
            kind: command
            cmd: echo hi > ${outputs.table}
            outputs: [table, extra]
          use:
            kind: command
            needs: {src: make.tabel}
            cmd: cat ${inputs.src} > ${outputs.t}
            outputs: [t]
          use2:
            kind: command
            needs: {src: make.table}
            cmd: cat ${inputs.srcs} > ${outputs.tt}
            outputs: [t]
          use3:
            kind: command
            needs: {src: make}
            cmd: cat ${inputs.src} > ${outputs.t}
            outputs: [t]
        "#,
    );
    assert_has(
        &out,
        &[
            "p.yaml:8:18: stage `make` has no output `tabel`",
            "did you mean `table`? (outputs of `make`: `table`, `extra`)",
            "p.yaml:14:14: stage `use2` has no input port `srcs`",
            "did you mean `src`?",
            "p.yaml:14:31: stage `use2` has no output port `tt`",
            "did you mean `t`?",
            // `make` has two outputs, so a bare `make` is ambiguous.
            "p.yaml:18:18:",
            "`make.table`",
        ],
    );
}

#[test]
fn report_tables_name_outputs_of_the_stage() {
    let (_, out) = spec_error(
        r#"
        stages:
          make:
            kind: command
            cmd: echo hi > ${outputs.table}
            outputs: [table, extra]
            report: [tabel, table, table]
          make2:
            kind: problems
            params: {task: arith, train: 2, test: 1}
            report: {problems: split}
        "#,
    );
    assert_has(
        &out,
        &[
            "p.yaml:6:14: `stages.make.report` names `tabel`, which is not an output of the stage",
            "did you mean `table`?",
            "p.yaml:6:28: `stages.make.report` names `table` twice",
            "p.yaml:10:24: `stages.make2.report.problems`",
            "a list of column names",
        ],
    );
}

#[test]
fn unknown_references() {
    let (_, out) = spec_error(
        r#"
        params: {n: 3}
        stages:
          a:
            kind: command
            params: {m: "${params.nn}"}
            cmd: echo ${parms.n} ${sweep.lr} > ${outputs.t}
            outputs: [t]
        "#,
    );
    assert_has(
        &out,
        &[
            "p.yaml:5:18: unknown param `nn` in `${params.nn}` (stage `a`)",
            "did you mean `n`?",
            "p.yaml:6:15: unknown reference namespace `parms` in `${parms.n}`",
            "did you mean `params`?",
        ],
    );
    // A literal `$${` is not a reference.
    let p = Project::new();
    p.write(
        "p.yaml",
        "stages:\n  a:\n    kind: command\n    cmd: printf '%s' '$${HOME}' > ${outputs.t}\n    outputs: {t: t.txt}\n",
    );
    p.run("p.yaml", &[]);
    assert_eq!(p.view("p/a/t.txt"), "${HOME}");
}

#[test]
fn cycles_are_named() {
    let (_, out) = spec_error(
        r#"
        stages:
          a:
            kind: command
            needs: {x: b}
            cmd: cat ${inputs.x} > ${outputs.t}
            outputs: [t]
          b:
            kind: command
            needs: {x: a}
            cmd: cat ${inputs.x} > ${outputs.t}
            outputs: [t]
        "#,
    );
    assert_has(&out, &["p.yaml:4:16: stages form a cycle: a -> b -> a"]);

    let (_, out) = spec_error(
        r#"
        stages:
          a:
            kind: command
            needs: {x: c}
            cmd: cat ${inputs.x} > ${outputs.t}
            outputs: [t]
          b:
            kind: command
            needs: {x: a}
            cmd: cat ${inputs.x} > ${outputs.t}
            outputs: [t]
          c:
            kind: command
            needs: {x: b}
            cmd: cat ${inputs.x} > ${outputs.t}
            outputs: [t]
          self:
            kind: command
            needs: {x: self}
            cmd: cat ${inputs.x} > ${outputs.t}
            outputs: [t]
        "#,
    );
    assert_has(&out, &["stages form a cycle: a -> b -> c -> a", "stages form a cycle: self -> self"]);

    // `extends` cycles too.
    let p = Project::new();
    p.write("one.yaml", "extends: two.yaml\n");
    p.write("two.yaml", "extends: one.yaml\n");
    let out = p.pipeline(&["run", "one.yaml"]).expect_code(2);
    check_nothing_ran(&p, &out);
    assert_has(&out, &["`extends` forms a cycle: one.yaml -> two.yaml -> one.yaml"]);
}

#[test]
fn output_paths_that_escape_are_refused() {
    let (_, out) = spec_error(
        r#"
        stages:
          a:
            kind: command
            cmd: echo hi > ${outputs.t}
            outputs: {t: ../x.txt, u: /tmp/abs.txt, v: stage.log, w: ckpt/model.bin}
        "#,
    );
    assert_has(
        &out,
        &[
            "p.yaml:5:18: output `t` of stage `a`: file `../x.txt` escapes the stage's directory",
            "p.yaml:5:31: output `u` of stage `a`: file `/tmp/abs.txt` is an absolute path",
            "output `v` of stage `a`: file `stage.log` is reserved by the cache",
            // Regression: a nested output passed validation, then failed every run at commit.
            "output `w` of stage `a`: file `ckpt/model.bin` is a nested path",
        ],
    );
}

#[test]
fn missing_deps_file() {
    let (_, out) = spec_error(
        r#"
        stages:
          a:
            kind: command
            deps: [script.py]
            cmd: python3 script.py > ${outputs.t}
            outputs: [t]
        "#,
    );
    assert_has(&out, &["p.yaml:4:12: dependency `script.py` of stage `a` cannot be read"]);
}

#[test]
fn sweep_errors() {
    let (_, out) = spec_error(
        r#"
        params: {n: 1}
        sweep: {params.m: [1, 2]}
        stages:
          a:
            kind: command
            sweep: {lr: [0.1, 0.1], x: [1, 2], zip: [[lr, y]]}
            cmd: echo ${sweep.lr} > ${outputs.t}
            outputs: [t]
        "#,
    );
    assert_has(
        &out,
        &[
            "the whole-pipeline sweep sweeps `params.m`, but there is no global param `m`",
            "sweep axis `lr` lists 0.1 twice",
            "`y` is not an axis of this sweep",
        ],
    );
}

#[test]
fn zip_and_exclude_entries_that_would_be_ignored_are_errors() {
    // Regression: a mixed `zip: [[x, y], z]` silently dropped the group `[x, y]` (x and y then
    // formed a grid), and an exclude value the axis does not list silently excluded nothing.
    let (_, out) = spec_error(
        r#"
        stages:
          a:
            kind: command
            sweep: {x: [1, 2], y: [3, 4], z: [5, 6], zip: [[x, y], z], exclude: [{x: 1.0}]}
            cmd: echo ${sweep.x} ${sweep.y} ${sweep.z} > ${outputs.t}
            outputs: [t]
        "#,
    );
    assert_has(
        &out,
        &[
            "p.yaml:4:52: `stages.a.sweep.zip`: expected an axis name, found a list",
            "p.yaml:4:78: exclude: axis `x` does not list 1.0, so this excludes nothing",
        ],
    );
}

#[test]
fn sweep_values_that_render_alike_are_an_error() {
    // Regression: `[1, "1"]` made two instances named `a[x=1]` whose gather directories
    // collided, so every downstream gather failed with "File exists".
    let (_, out) = spec_error(
        r#"
        stages:
          a:
            kind: command
            sweep: {x: [1, "1"]}
            cmd: echo ${sweep.x} > ${outputs.t}
            outputs: [t]
        "#,
    );
    assert_has(&out, &["p.yaml:4:20: sweep axis `x` lists 1 and \"1\", which both read `1`"]);
}

#[test]
fn every_error_is_reported_at_once() {
    let (p, out) = spec_error(
        r#"
        params: {n: 3}
        stages:
          a:
            kind: command
            cmdd: echo hi > ${outputs.t}
            outputs: [t]
          b:
            kind: comand
            cmd: echo ${params.nn} > ${outputs.t}
            outputs: [t]
          c:
            kind: command
            needs: {x: aa}
            cmd: cat ${inputs.x} > ${outputs.t}
            outputs: {t: ../x}
        "#,
    );
    let locs = locations(&out.stderr, "p.yaml");
    let mut distinct = locs.clone();
    distinct.dedup();
    assert!(distinct.len() >= 5, "expected several locations, got {locs:?}\n{}", out.stderr);
    let mut sorted = locs.clone();
    sorted.sort();
    assert_eq!(locs, sorted, "errors are reported in file order");
    // Five: the broken need `x: aa` is reported once, not again at `${inputs.x}`, and the
    // misspelt `cmdd` once (as an unknown key), not again as a missing `cmd:`.
    assert_has(&out, &["error: the pipeline spec has 5 errors; nothing was run"]);
    assert!(!out.stderr.contains("needs `cmd:`"), "{}", out.stderr);
    assert!(!out.stderr.contains("has no input port `x`"), "{}", out.stderr);

    redactions(&p).bind(|| insta::assert_snapshot!("spec_error_report", out.stderr));
}

#[test]
fn usage_errors_exit_2() {
    let p = Project::new();
    p.write("p.yaml", "stages:\n  a:\n    kind: command\n    cmd: echo > ${outputs.t}\n    outputs: [t]\n");
    let out = p.pipeline(&["run", "p.yaml", "-j", "0"]).expect_code(2);
    assert!(out.stderr.contains("--jobs must be at least 1"), "{}", out.stderr);
    let out = p.pipeline(&["frobnicate"]).expect_code(2);
    assert!(out.stderr.contains("frobnicate"), "{}", out.stderr);
    let out = p.pipeline(&["gc"]).expect_code(2);
    assert!(out.stderr.contains("gc needs to know what to keep"), "{}", out.stderr);
    let out = p.pipeline(&["gc", "--older-than", "3 weeks"]).expect_code(2);
    assert!(out.stderr.contains("unknown unit"), "{}", out.stderr);
    assert!(p.objects().is_empty());
}

#[test]
fn extends_errors_point_into_the_extending_file() {
    let p = Project::new();
    p.write("base.yaml", "params: {n: 1}\nstages:\n  make:\n    kind: command\n    cmd: echo ${params.n} > ${outputs.t}\n    outputs: [t]\n");
    p.write(
        "sweep.yaml",
        r#"
        extends: base.yaml
        params: {nn: 2}
        sweep: {params.n: [1, 2]}
        stages:
          maek:
            params: {x: 1}
          make:
            cmd: echo other
        "#,
    );
    let out = p.pipeline(&["run", "sweep.yaml"]).expect_code(2);
    check_nothing_ran(&p, &out);
    assert_has(
        &out,
        &[
            "sweep.yaml:2:10: param `nn` is not defined by the extended pipeline and no stage uses it",
            "did you mean `n`?",
            "sweep.yaml:5:3: stage `maek` has no `kind`",
            "did you mean `make`? (a stage without `kind:` patches a stage of the extended file)",
            "sweep.yaml:8:5: unknown key `cmd` in stage `make` (a patch of the stage defined in an extended file",
        ],
    );
}

#[test]
fn two_bases_with_different_seeds_are_an_error() {
    let p = Project::new();
    p.write("a.yaml", "seed: 1\nstages:\n  a:\n    kind: command\n    cmd: echo a > ${outputs.t}\n    outputs: [t]\n");
    p.write("b.yaml", "seed: 2\nstages:\n  b:\n    kind: command\n    cmd: echo b > ${outputs.t}\n    outputs: [t]\n");
    p.write("both.yaml", "extends: [a.yaml, b.yaml]\n");
    let out = p.pipeline(&["plan", "both.yaml"]).expect_code(2);
    assert_has(&out, &["two extended files set different `seed:` values", "b.yaml:1:7"]);
    // Setting it in the extending file settles it; so does a param set differently by both.
    p.write("both.yaml", "extends: [a.yaml, b.yaml]\nseed: 3\n");
    p.pipeline(&["plan", "both.yaml"]).expect_code(0);
    p.write("a.yaml", &format!("params: {{n: 1}}\n{}", p.read("a.yaml")));
    p.write("b.yaml", &format!("params: {{n: 2}}\n{}", p.read("b.yaml")));
    let out = p.pipeline(&["plan", "both.yaml"]).expect_code(2);
    assert_has(&out, &["param `n` has different values in two extended files (1 and 2)"]);
    p.write("both.yaml", "extends: [a.yaml, b.yaml]\nseed: 3\nparams: {n: 5}\n");
    p.pipeline(&["plan", "both.yaml"]).expect_code(0);
}

#[test]
fn a_builtin_param_without_a_value_is_an_error_not_a_silent_default() {
    let (_, out) = spec_error(
        "stages:\n  probs:\n    kind: problems\n    params:\n      task: arith\n      train:\n      test: ~\n",
    );
    assert_has(&out, &["E073", "p.yaml:6:7", "param `train` of stage `probs` has no value", "delete the line"]);
    assert_has(&out, &["p.yaml:7:13", "param `test` of stage `probs` has no value"]);
}

#[test]
fn a_sweep_too_large_to_expand_is_an_error() {
    let axis =
        |name: &str| format!("      {name}: [{}]\n", (0..100).map(|i| i.to_string()).collect::<Vec<_>>().join(", "));
    let text = format!(
        "stages:\n  big:\n    kind: command\n    cmd: 'true'\n    outputs: [t]\n    sweep:\n{}{}{}{}",
        axis("a"),
        axis("b"),
        axis("c"),
        axis("d")
    );
    let (_, out) = spec_error(&text);
    assert_has(&out, &["E072", "p.yaml:7:", "the sweep has 100000000 points", "more than the limit of 1000000"]);
}

#[test]
fn a_reference_inside_shell_quotes_is_an_error() {
    let (_, out) = spec_error(
        "params: {x: 'a;touch pwned'}\nstages:\n  s:\n    kind: command\n    cmd: tool '${params.x}' > ${outputs.t}\n    outputs: [t]\n",
    );
    assert_has(&out, &["E075", "p.yaml:5:16", "`${params.x}` stands inside quotes", "`${raw:params.x}`"]);
}
