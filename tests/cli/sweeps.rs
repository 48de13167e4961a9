//! Sweeps: stage sweeps and their downstream expansion, gathers, whole-pipeline sweeps through
//! `extends` with grid, zip and exclude, and the hive-style views.

use std::fs;

use crate::fixture::{Project, expect_statuses};

#[test]
fn stage_sweep_expands_per_point_and_downstream_follows() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        stages:
          make:
            kind: command
            cmd: echo x >> counts/make; echo base > ${outputs.t}
            outputs: {t: t.txt}
          train:
            kind: command
            needs: {src: make}
            sweep: {lr: [0.1, 0.01]}
            params: {lr: "${sweep.lr}"}
            cmd: echo "$(cat ${inputs.src})" lr=${sweep.lr} "param=$PIPELINE_PARAMS" > ${outputs.t}
            outputs: {t: t.txt}
          eval:
            kind: command
            needs: {model: train}
            cmd: echo "eval of $(cat ${inputs.model})" > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    let r = p.run("p.yaml", &[]);
    assert_eq!(
        r.statuses(),
        expect_statuses(&[
            ("make", "ran"),
            ("train[lr=0.1]", "ran"),
            ("train[lr=0.01]", "ran"),
            ("eval[lr=0.1]", "ran"),
            ("eval[lr=0.01]", "ran"),
        ])
    );
    assert_eq!(p.count("make"), 1, "the shared upstream ran once");
    assert_eq!(r.get("eval[lr=0.01]").stage, "eval");
    // A value that is exactly one reference keeps its type: lr is a number in PIPELINE_PARAMS.
    assert_eq!(p.view("p/train/lr=0.1/t.txt"), "base lr=0.1 param={\"lr\":0.1}\n");
    assert_eq!(p.view("p/eval/lr=0.01/t.txt"), "eval of base lr=0.01 param={\"lr\":0.01}\n");
    assert_eq!(p.view("p/eval/lr=0.1/t.txt"), "eval of base lr=0.1 param={\"lr\":0.1}\n");

    // Views are relative links into objects/<key>/.
    let link = p.cache().join("views/p/eval/lr=0.1/t.txt");
    let target = fs::read_link(&link).expect("views are symlinks");
    assert!(target.is_relative(), "{}", target.display());
    assert!(target.to_string_lossy().contains(&format!("objects/{}/t.txt", r.key("eval[lr=0.1]"))));
}

#[test]
fn gather_gets_a_directory_with_one_subdirectory_per_point() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        stages:
          train:
            kind: command
            sweep: {lr: [0.1, 0.01], depth: [1, 2]}
            cmd: echo ${sweep.lr}/${sweep.depth} > ${outputs.t}
            outputs: {t: t.txt}
          summary:
            kind: command
            needs: {runs: "train[*]"}
            cmd: >-
              test "$PIPELINE_INPUT_RUNS" = ${inputs.runs} &&
              cd ${inputs.runs} && for f in $(find . -name t.txt | sort); do echo "$f $(cat $f)"; done > ${outputs.t}
            outputs: {t: t.txt}
          by_depth:
            kind: command
            needs: {runs: "train[lr]"}
            cmd: cd ${inputs.runs} && for f in $(find . -name t.txt | sort); do echo "$f $(cat $f)"; done > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    let r = p.run("p.yaml", &[]);
    assert_eq!(r.get("summary").status, "ran");
    assert_eq!(
        p.view("p/summary/t.txt"),
        "./lr=0.01/depth=1/t.txt 0.01/1\n\
         ./lr=0.01/depth=2/t.txt 0.01/2\n\
         ./lr=0.1/depth=1/t.txt 0.1/1\n\
         ./lr=0.1/depth=2/t.txt 0.1/2\n"
    );
    // Gathering one axis leaves the other one to expand the stage.
    assert_eq!(r.status("by_depth[depth=1]"), "ran");
    assert_eq!(p.view("p/by_depth/depth=1/t.txt"), "./lr=0.01/t.txt 0.01/1\n./lr=0.1/t.txt 0.1/1\n");
    assert_eq!(p.view("p/by_depth/depth=2/t.txt"), "./lr=0.01/t.txt 0.01/2\n./lr=0.1/t.txt 0.1/2\n");
}

#[test]
fn whole_pipeline_sweep_through_extends_expands_only_what_reads_the_param() {
    let p = Project::new();
    p.write(
        "pipelines/base.yaml",
        r#"
        params: {n: 1, label: base}
        stages:
          make:
            kind: command
            cmd: echo x >> ../counts/make; echo n=${params.n} > ${outputs.t}
            outputs: {t: t.txt}
          fixed:
            kind: command
            params: {label: "${params.label}"}
            cmd: echo x >> ../counts/fixed; echo ${params.label} > ${outputs.t}
            outputs: {t: t.txt}
          combine:
            kind: command
            needs: {a: make, b: fixed}
            cmd: cat ${inputs.a} ${inputs.b} > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    p.write(
        "sweeps/ns.yaml",
        r#"
        extends: ../pipelines/base.yaml
        params: {label: swept}
        sweep: {params.n: [1, 2, 3]}
        "#,
    );
    let r = p.run("sweeps/ns.yaml", &[]);
    assert_eq!(r.pipeline, "ns");
    assert_eq!(
        r.statuses(),
        expect_statuses(&[
            ("make[n=1]", "ran"),
            ("make[n=2]", "ran"),
            ("make[n=3]", "ran"),
            ("fixed", "ran"),
            ("combine[n=1]", "ran"),
            ("combine[n=2]", "ran"),
            ("combine[n=3]", "ran"),
        ])
    );
    assert_eq!(p.count("make"), 3);
    assert_eq!(p.count("fixed"), 1, "a stage that does not read the swept param runs once");
    // Commands run in the directory of the file that defines the stage (pipelines/).
    assert_eq!(p.view("ns/combine/n=2/t.txt"), "n=2\nswept\n");
    assert_eq!(p.view("ns/make/n=3/t.txt"), "n=3\n");
    assert_eq!(p.view("ns/fixed/t.txt"), "swept\n");

    // The base pipeline alone shares `make[n=1]`'s computation (same key), but not `fixed`,
    // whose label the sweep file overrode.
    let base = p.run("pipelines/base.yaml", &[]);
    assert_eq!(base.key("make"), r.key("make[n=1]"));
    assert_eq!(base.status("make"), "cached");
    assert_eq!(base.status("fixed"), "ran");
}

#[test]
fn an_extending_stage_without_kind_patches_params() {
    let p = Project::new();
    p.write(
        "base.yaml",
        r#"
        stages:
          make:
            kind: command
            params: {factor: 2, keep: k}
            cmd: echo ${params.factor} ${params.keep} > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    p.write(
        "patched.yaml",
        r#"
        extends: base.yaml
        stages:
          make:
            params: {factor: 5}
        "#,
    );
    p.run("patched.yaml", &[]);
    assert_eq!(p.view("patched/make/t.txt"), "5 k\n");
}

#[test]
fn zip_pairs_axes_and_exclude_drops_points() {
    let p = Project::new();
    p.write(
        "base.yaml",
        r#"
        params: {a: 1, b: 10}
        stages:
          s:
            kind: command
            cmd: echo ${params.a} ${params.b} > ${outputs.t}
            outputs: {t: t.txt}
          only_a:
            kind: command
            cmd: echo ${params.a} > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    p.write(
        "grid.yaml",
        "extends: base.yaml\nsweep: {params.a: [1, 2], params.b: [10, 20], exclude: [{params.a: 1, params.b: 20}]}\n",
    );
    p.write(
        "zip.yaml",
        "extends: base.yaml\nsweep: {params.a: [1, 2, 3], params.b: [10, 20, 30], zip: [[params.a, params.b]]}\n",
    );
    p.write(
        "zip_ex.yaml",
        r#"
        extends: base.yaml
        sweep:
          params.a: [1, 2, 3]
          params.b: [10, 20, 30]
          zip: [[params.a, params.b]]
          exclude:
            - {params.a: 2}
        "#,
    );
    assert_eq!(p.instances("grid.yaml"), ["s[a=1,b=10]", "s[a=2,b=10]", "s[a=2,b=20]", "only_a[a=1]", "only_a[a=2]"]);
    assert_eq!(
        p.instances("zip.yaml"),
        ["s[a=1,b=10]", "s[a=2,b=20]", "s[a=3,b=30]", "only_a[a=1]", "only_a[a=2]", "only_a[a=3]"]
    );
    assert_eq!(p.instances("zip_ex.yaml"), ["s[a=1,b=10]", "s[a=3,b=30]", "only_a[a=1]", "only_a[a=3]"]);

    let stages: Vec<String> = p.plan("zip.yaml").into_iter().map(|r| r.stage).collect();
    assert_eq!(stages, ["s", "s", "s", "only_a", "only_a", "only_a"]);
    p.run("zip.yaml", &[]);
    assert_eq!(p.view("zip/s/a=2/b=20/t.txt"), "2 20\n");
    assert_eq!(p.view("zip/only_a/a=3/t.txt"), "3\n");
    assert!(!p.cache().join("views/zip/s/a=2/b=10").exists());
}

#[test]
fn stage_sweep_zip_and_exclude() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        stages:
          s:
            kind: command
            sweep:
              x: [1, 2, 3]
              y: [a, b, c]
              z: [true, false]
              zip: [[x, y]]
              exclude: [{x: 2, z: false}]
            cmd: echo ${sweep.x}${sweep.y}${sweep.z} > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    assert_eq!(
        p.instances("p.yaml"),
        ["s[x=1,y=a,z=true]", "s[x=1,y=a,z=false]", "s[x=2,y=b,z=true]", "s[x=3,y=c,z=true]", "s[x=3,y=c,z=false]",]
    );
    p.run("p.yaml", &[]);
    assert_eq!(p.view("p/s/x=3/y=c/z=false/t.txt"), "3cfalse\n");
}

#[test]
fn sweep_values_are_escaped_in_views_and_gathers() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        stages:
          s:
            kind: command
            sweep: {name: ["a/b", "x=y", "50%", "..", "with space"]}
            cmd: echo ${sweep.name} > ${outputs.t}
            outputs: {t: t.txt}
          g:
            kind: command
            needs: {all: "s[*]"}
            cmd: cd ${inputs.all} && find . -name t.txt | sort | while read -r f; do echo "$f $(cat "$f")"; done > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    let r = p.run("p.yaml", &[]);
    assert_eq!(r.status("s[name=a/b]"), "ran");
    for (segment, value) in
        [("a%2Fb", "a/b"), ("x%3Dy", "x=y"), ("50%25", "50%"), ("%2E%2E", ".."), ("with space", "with space")]
    {
        assert_eq!(p.view(&format!("p/s/name={segment}/t.txt")), format!("{value}\n"), "{segment}");
    }
    assert_eq!(
        p.view("p/g/t.txt"),
        "./name=%2E%2E/t.txt ..\n./name=50%25/t.txt 50%\n./name=a%2Fb/t.txt a/b\n./name=with space/t.txt with space\n./name=x%3Dy/t.txt x=y\n"
    );
    // Nothing escaped the view directory.
    assert_eq!(crate::fixture::list_dir(&p.cache().join("views/p")), ["g", "s"]);
}

#[test]
fn seeds_can_be_swept_and_reach_the_command() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        seed: 11
        stages:
          fixed:
            kind: command
            cmd: echo "${seed} $PIPELINE_SEED" > ${outputs.t}
            outputs: {t: t.txt}
          swept:
            kind: command
            sweep: {s: [1, 2]}
            seed: ${sweep.s}
            cmd: echo "${seed} $PIPELINE_SEED" > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    let r = p.run("p.yaml", &[]);
    assert_eq!(p.view("p/fixed/t.txt"), "11 11\n");
    assert_eq!(p.view("p/swept/s=2/t.txt"), "2 2\n");
    assert_ne!(r.key("swept[s=1]"), r.key("swept[s=2]"), "the seed is part of the key");
}

#[test]
fn a_sweep_value_removed_from_the_file_leaves_the_views() {
    let p = Project::new();
    let pipeline = |values: &str| {
        format!(
            r#"
        stages:
          train:
            kind: command
            sweep: {{lr: [{values}]}}
            cmd: echo ${{sweep.lr}} > ${{outputs.t}}
            outputs: {{t: t.txt}}
        "#
        )
    };
    p.write("p.yaml", &pipeline("0.1, 0.2, 0.3"));
    p.run("p.yaml", &[]);
    assert_eq!(p.view("p/train/lr=0.2/t.txt"), "0.2\n");
    p.write("p.yaml", &pipeline("0.1, 0.3"));
    let r = p.run("p.yaml", &[]);
    assert_eq!(r.status("train[lr=0.1]"), "cached");
    // A glob over the view must not return the point that left the pipeline.
    assert!(fs::symlink_metadata(p.cache().join("views/p/train/lr=0.2")).is_err());
    assert_eq!(p.view("p/train/lr=0.3/t.txt"), "0.3\n");
}

#[test]
fn gather_key_does_not_depend_on_the_order_of_sweep_values() {
    let p = Project::new();
    let pipeline = |values: &str| {
        format!(
            r#"
        stages:
          train:
            kind: command
            sweep: {{lr: [{values}]}}
            cmd: echo ${{sweep.lr}} > ${{outputs.t}}
            outputs: {{t: t.txt}}
          summary:
            kind: command
            needs: {{runs: "train[*]"}}
            cmd: ls ${{inputs.runs}} > ${{outputs.t}}
            outputs: {{t: t.txt}}
        "#
        )
    };
    p.write("a.yaml", &pipeline("0.1, 0.01, 0.001"));
    p.write("b.yaml", &pipeline("0.001, 0.1, 0.01"));
    let (a, b) = (p.keys("a.yaml"), p.keys("b.yaml"));
    assert_eq!(a["train[lr=0.1]"], b["train[lr=0.1]"]);
    assert_eq!(a["summary"], b["summary"], "reordering sweep values changes no key");
}

#[test]
fn a_stage_joining_two_zipped_global_axes_gets_only_the_sweep_points() {
    let p = Project::new();
    p.write(
        "base.yaml",
        r#"
        params: {k: 1, alpha: 10}
        stages:
          a:
            kind: command
            cmd: echo ${params.k} > ${outputs.t}
            outputs: {t: t.txt}
          b:
            kind: command
            cmd: echo ${params.alpha} > ${outputs.t}
            outputs: {t: t.txt}
          c:
            kind: command
            needs: {a: a, b: b}
            cmd: cat ${inputs.a} ${inputs.b} > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    p.write(
        "zip.yaml",
        "extends: base.yaml\nsweep: {params.k: [1, 2], params.alpha: [10, 20], zip: [[params.k, params.alpha]]}\n",
    );
    p.write(
        "ex.yaml",
        "extends: base.yaml\nsweep: {params.k: [1, 2], params.alpha: [10, 20], exclude: [{params.k: 1, params.alpha: 20}]}\n",
    );
    let c = |file: &str| -> Vec<String> { p.instances(file).into_iter().filter(|i| i.starts_with("c[")).collect() };
    assert_eq!(c("zip.yaml"), ["c[k=1,alpha=10]", "c[k=2,alpha=20]"]);
    assert_eq!(c("ex.yaml"), ["c[k=1,alpha=10]", "c[k=2,alpha=10]", "c[k=2,alpha=20]"]);
}

#[test]
fn two_bases_extending_one_file_share_its_stages_unless_they_patch_them_differently() {
    let p = Project::new();
    p.write(
        "base.yaml",
        "stages:\n  make:\n    kind: command\n    cmd: echo make > ${outputs.out}\n    outputs: {out: out.txt}\n",
    );
    p.write("left.yaml", "extends: base.yaml\nstages:\n  l:\n    kind: command\n    needs: {m: make}\n    cmd: cat ${inputs.m} > ${outputs.out}\n    outputs: {out: out.txt}\n");
    p.write("right.yaml", "extends: base.yaml\nstages:\n  r:\n    kind: command\n    needs: {m: make}\n    cmd: cat ${inputs.m} > ${outputs.out}\n    outputs: {out: out.txt}\n");
    p.write("both.yaml", "extends: [left.yaml, right.yaml]\n");
    let rows = p.plan("both.yaml");
    let names: Vec<&str> = rows.iter().map(|r| r.instance.as_str()).collect();
    assert_eq!(names.iter().filter(|n| **n == "make").count(), 1, "{names:?}");
    assert!(names.contains(&"l") && names.contains(&"r"), "{names:?}");
    // A base that patches the shared stage makes it two different definitions.
    p.write("patched.yaml", "extends: base.yaml\nstages:\n  make: {seed: 3}\n");
    p.write("clash.yaml", "extends: [left.yaml, patched.yaml]\n");
    let out = p.pipeline(&["plan", "clash.yaml"]).expect_code(2);
    assert!(
        out.stderr.contains("E015") && out.stderr.contains("stage `make` is defined by two extended files"),
        "{}",
        out.stderr
    );
}
