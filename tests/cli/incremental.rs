//! Only what changed reruns: cache hits, param and deps invalidation, YAML formatting that
//! must not change keys, and identical keys computed once.

use std::fs;

use crate::fixture::{Project, expect_statuses};

/// make -> double -> train[lr] -> summary (gather), plus `other` (needs make) and an
/// independent `side`. Every command counts its executions in counts/<stage>.
const CHAIN: &str = r#"
    params: {n: 3}
    stages:
      make:
        kind: command
        cmd: echo x >> counts/make; echo ${params.n} > ${outputs.t}
        outputs: {t: t.txt}
      double:
        kind: command
        needs: {src: make}
        params: {factor: 2}
        cmd: echo x >> counts/double; echo $(( $(cat ${inputs.src}) * ${params.factor} )) > ${outputs.t}
        outputs: {t: t.txt}
      train:
        kind: command
        needs: {src: double}
        sweep: {lr: [0.1, 0.01]}
        params: {lr: "${sweep.lr}"}
        cmd: echo x >> counts/train; echo "$(cat ${inputs.src})" ${params.lr} > ${outputs.t}
        outputs: {t: t.txt}
      summary:
        kind: command
        needs: {runs: "train[*]"}
        cmd: echo x >> counts/summary; cat ${inputs.runs}/*/t.txt | sort > ${outputs.t}
        outputs: {t: t.txt}
      other:
        kind: command
        needs: {src: make}
        cmd: echo x >> counts/other; cat ${inputs.src} > ${outputs.t}
        outputs: {t: t.txt}
      side:
        kind: command
        cmd: echo x >> counts/side; echo side > ${outputs.t}
        outputs: {t: t.txt}
"#;

#[test]
fn second_run_is_served_from_cache_even_when_the_scripts_are_gone() {
    let p = Project::new();
    p.write("gen.sh", "echo 21\n");
    p.write("double.sh", "echo $(( $(cat \"$1\") * 2 ))\n");
    p.write(
        "p.yaml",
        r#"
        stages:
          gen:
            kind: command
            cmd: sh gen.sh > ${outputs.t}
            outputs: {t: t.txt}
          double:
            kind: command
            needs: {src: gen}
            cmd: sh double.sh ${inputs.src} > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    let first = p.run("p.yaml", &[]);
    assert_eq!((first.ran, first.cached), (2, 0));
    assert_eq!(p.view("p/double/t.txt"), "42\n");

    // Recomputing is now impossible: the scripts are gone (they are not `deps`, so the keys
    // do not change). The run must still succeed, from the cache.
    fs::remove_file(p.path("gen.sh")).unwrap();
    fs::remove_file(p.path("double.sh")).unwrap();
    let second = p.run("p.yaml", &[]);
    assert_eq!(second.statuses(), expect_statuses(&[("gen", "cached"), ("double", "cached")]));
    assert_eq!((second.ran, second.cached), (0, 2));
    assert_eq!(second.keys(), first.keys());
    assert_eq!(p.view("p/double/t.txt"), "42\n");

    // And plan agrees with what run did.
    assert!(p.plan("p.yaml").iter().all(|r| r.status == "cached"));
}

#[test]
fn changing_a_param_reruns_exactly_that_stage_and_its_descendants() {
    let p = Project::new();
    p.write("p.yaml", CHAIN);
    let first = p.run("p.yaml", &[]);
    assert_eq!(first.ran, 7, "{:?}", first.statuses());
    assert_eq!(p.view("p/summary/t.txt"), "6 0.01\n6 0.1\n");

    p.write("p.yaml", &CHAIN.replace("factor: 2", "factor: 3"));
    let second = p.run("p.yaml", &[]);
    assert_eq!(
        second.statuses(),
        expect_statuses(&[
            ("make", "cached"),
            ("double", "ran"),
            ("train[lr=0.1]", "ran"),
            ("train[lr=0.01]", "ran"),
            ("summary", "ran"),
            ("other", "cached"),
            ("side", "cached"),
        ])
    );
    for unchanged in ["make", "other", "side"] {
        assert_eq!(second.key(unchanged), first.key(unchanged), "{unchanged}");
        assert_eq!(p.count(unchanged), 1, "{unchanged} was recomputed");
    }
    assert_eq!(p.count("double"), 2);
    assert_eq!(p.count("train"), 4);
    assert_eq!(p.view("p/summary/t.txt"), "9 0.01\n9 0.1\n");

    // Back to the old value: everything is still in the cache.
    p.write("p.yaml", CHAIN);
    let third = p.run("p.yaml", &[]);
    assert_eq!(third.ran, 0, "{:?}", third.statuses());
    assert_eq!(third.keys(), first.keys());
    assert_eq!(p.view("p/summary/t.txt"), "6 0.01\n6 0.1\n");
}

#[test]
fn changing_a_global_param_reruns_only_the_stages_that_read_it() {
    let p = Project::new();
    p.write("p.yaml", CHAIN);
    p.run("p.yaml", &[]);
    p.write("p.yaml", &CHAIN.replace("params: {n: 3}", "params: {n: 4}"));
    let second = p.run("p.yaml", &[]);
    assert_eq!(second.status("side"), "cached");
    for ran in ["make", "double", "train[lr=0.1]", "train[lr=0.01]", "summary", "other"] {
        assert_eq!(second.status(ran), "ran", "{ran}");
    }
    assert_eq!(p.view("p/other/t.txt"), "4\n");
}

#[test]
fn changing_a_deps_file_reruns_that_stage_and_not_its_siblings() {
    let p = Project::new();
    p.write("a.sh", "echo a1\n");
    p.write("c.sh", "echo c1\n");
    p.write(
        "p.yaml",
        r#"
        stages:
          a:
            kind: command
            deps: [a.sh]
            cmd: echo x >> counts/a; sh a.sh > ${outputs.t}
            outputs: {t: t.txt}
          b:
            kind: command
            needs: {src: a}
            cmd: echo x >> counts/b; cat ${inputs.src} > ${outputs.t}
            outputs: {t: t.txt}
          c:
            kind: command
            deps: [c.sh]
            cmd: echo x >> counts/c; sh c.sh > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    let first = p.run("p.yaml", &[]);
    assert_eq!(first.ran, 3);

    // Rewriting the same bytes (a new mtime) changes nothing: deps are hashed by content.
    p.write("a.sh", "echo a1\n");
    assert_eq!(p.run("p.yaml", &[]).ran, 0);

    p.write("a.sh", "echo a2\n");
    let plan = p.plan("p.yaml");
    let a = plan.iter().find(|r| r.instance == "a").unwrap();
    assert_eq!(a.status, "run");
    assert_eq!(a.reasons, ["dependency file `a.sh` changed"]);

    let second = p.run("p.yaml", &[]);
    assert_eq!(second.statuses(), expect_statuses(&[("a", "ran"), ("b", "ran"), ("c", "cached")]));
    assert_eq!((p.count("a"), p.count("b"), p.count("c")), (2, 2, 1));
    assert_eq!(p.view("p/b/t.txt"), "a2\n");
}

/// The same pipeline as [`FORMATTED_BLOCK`], written differently.
const FORMATTED_BLOCK: &str = r#"
    params:
      n: 3
      mode: fast
    stages:
      make:
        kind: command
        cmd: echo ${params.n} ${params.mode} > ${outputs.t}
        outputs:
          t: t.txt
      train:
        kind: command
        needs:
          src: make
        sweep:
          lr:
            - 0.1
            - 0.01
        params:
          lr: ${sweep.lr}
          layers: [8, 16]
        seed: 7
        cmd: cat ${inputs.src} > ${outputs.t}; echo ${params.lr} >> ${outputs.t}
        outputs:
          t: t.txt
"#;

const FORMATTED_FLOW_REORDERED: &str = r#"
    # The same pipeline: flow style, keys and stages reordered, comments everywhere.
    stages:
      train: {outputs: {t: t.txt}, cmd: "cat ${inputs.src} > ${outputs.t}; echo ${params.lr} >> ${outputs.t}",
              seed: 7, params: {layers: [8, 16], lr: "${sweep.lr}"},   # trailing comment
              sweep: {lr: [0.1, 0.01]}, needs: {src: make}, kind: command}
      make:
        outputs: {t: t.txt}   # a comment
        # a comment line inside a stage
        cmd: 'echo ${params.n} ${params.mode} > ${outputs.t}'
        kind: command
    params: {mode: fast, n: 3}
"#;

#[test]
fn comments_key_order_and_flow_style_change_no_key() {
    let p = Project::new();
    p.write("p.yaml", FORMATTED_BLOCK);
    let keys = p.keys("p.yaml");
    assert_eq!(keys.len(), 3, "{keys:?}");

    p.write("p.yaml", &format!("# a new comment\n{}", crate::fixture::dedent(FORMATTED_BLOCK)));
    assert_eq!(p.keys("p.yaml"), keys, "a comment changed a key");

    p.write("p.yaml", FORMATTED_FLOW_REORDERED);
    assert_eq!(p.keys("p.yaml"), keys, "formatting or key order changed a key");

    // The comparison is not vacuous: a real edit does change keys.
    p.write("p.yaml", &FORMATTED_BLOCK.replace("layers: [8, 16]", "layers: [8, 32]"));
    let edited = p.keys("p.yaml");
    assert_eq!(edited["make"], keys["make"]);
    assert_ne!(edited["train[lr=0.1]"], keys["train[lr=0.1]"]);
}

#[test]
fn identical_keys_are_computed_once() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        stages:
          make:
            kind: command
            cmd: echo x >> counts/make; echo data > ${outputs.t}
            outputs: {t: t.txt}
          # Swept, but nothing in it reads the axis: every point has the same key.
          prep:
            kind: command
            needs: {src: make}
            sweep: {x: [1, 2, 3]}
            cmd: echo x >> counts/prep; cat ${inputs.src} > ${outputs.t}
            outputs: {t: t.txt}
          # Reads the axis: one execution per point, sharing one `make`.
          train:
            kind: command
            needs: {src: make}
            sweep: {lr: [0.1, 0.2]}
            cmd: echo x >> counts/train; echo ${sweep.lr} > ${outputs.t}
            outputs: {t: t.txt}
          # The same definition as `make` under another name.
          make_again:
            kind: command
            cmd: echo x >> counts/make; echo data > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    let r = p.run("p.yaml", &["-j", "4"]);
    let prep_keys: Vec<&str> = ["prep[x=1]", "prep[x=2]", "prep[x=3]"].iter().map(|i| r.key(i)).collect();
    assert!(prep_keys.iter().all(|k| *k == prep_keys[0]), "{prep_keys:?}");
    assert_eq!(r.key("make"), r.key("make_again"));
    assert_ne!(r.key("train[lr=0.1]"), r.key("train[lr=0.2]"));

    assert_eq!(p.count("make"), 1, "make and make_again share a key");
    assert_eq!(p.count("prep"), 1, "prep's points share a key");
    assert_eq!(p.count("train"), 2);
    // One execution per key; the other instances of a key are reported as cached.
    assert_eq!(r.ran, 4, "{:?}", r.statuses());
    assert_eq!(r.cached, 3, "{:?}", r.statuses());
    assert_eq!(p.objects().len(), 4);
    // Every instance still has its view.
    for x in 1..=3 {
        assert_eq!(p.view(&format!("p/prep/x={x}/t.txt")), "data\n");
    }
    assert_eq!(p.view("p/make_again/t.txt"), "data\n");
}

#[test]
fn running_a_target_runs_it_and_its_ancestors_only() {
    let p = Project::new();
    p.write("p.yaml", CHAIN);
    let r = p.run("p.yaml", &["double"]);
    assert_eq!(r.statuses(), expect_statuses(&[("make", "ran"), ("double", "ran")]));
    assert_eq!((p.count("side"), p.count("train")), (0, 0));

    // One instance by its full name.
    let r = p.run("p.yaml", &["train[lr=0.1]"]);
    assert_eq!(r.statuses(), expect_statuses(&[("make", "cached"), ("double", "cached"), ("train[lr=0.1]", "ran")]));

    let out = p.pipeline(&["run", "p.yaml", "dubble"]).expect_code(2);
    assert!(out.stderr.contains("no stage or instance named `dubble`"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `double`?"), "{}", out.stderr);
}

/// Regression: quoted scalars were coerced like plain ones (`"3"` became the number 3), and
/// `${...}` locations inside them were one column off.
#[test]
fn quoted_scalars_stay_strings_and_keep_their_own_key() {
    let p = Project::new();
    let yaml = r#"
        stages:
          a:
            kind: command
            params: {quoted: "3", plain: 3, yes: "true", flag: true, version: '1.10'}
            cmd: echo "$PIPELINE_PARAMS" > ${outputs.t}
            outputs: {t: t.txt}
        "#;
    p.write("p.yaml", yaml);
    p.run("p.yaml", &[]);
    let params: serde_json::Value = serde_json::from_str(&p.view("p/a/t.txt")).unwrap();
    assert_eq!(params, serde_json::json!({"quoted": "3", "plain": 3, "yes": "true", "flag": true, "version": "1.10"}));
    let key = p.keys("p.yaml")["a"].clone();
    p.write("p.yaml", &yaml.replace(r#"quoted: "3""#, "quoted: 3"));
    assert_ne!(p.keys("p.yaml")["a"], key, "the string \"3\" and the number 3 must not share a key");
}
