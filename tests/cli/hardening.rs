//! The failures a user meets on a bad day: a stage that writes into its input, a view that
//! cannot be updated, a temp dir a command left read-only, files written for people.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::fixture::{Project, RunReport, expect_statuses};

/// `bad` appends to its input (an upstream entry) instead of writing a copy.
const WRITES_INPUT: &str = r#"
    stages:
      a:
        kind: command
        cmd: echo x >> counts/a; echo "content of a" > ${outputs.t}
        outputs: {t: t.txt}
      bad:
        kind: command
        needs: {src: a}
        cmd: echo x >> counts/bad; echo oops >> ${inputs.src}; echo b > ${outputs.t}
        outputs: {t: t.txt}
      after:
        kind: command
        needs: {src: bad}
        cmd: cp ${inputs.src} ${outputs.t}
        outputs: {t: t.txt}
"#;

#[test]
fn committed_entries_are_read_only() {
    let p = Project::new();
    p.write("p.yaml", WRITES_INPUT);
    let r = p.run("p.yaml", &["a"]);
    let dir = p.object_dir(r.key("a"));
    for path in [dir.clone(), dir.join("t.txt"), dir.join("manifest.json"), dir.join("stage.log")] {
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o222, 0, "{} is writable ({mode:o})", path.display());
    }
    // gc still removes a read-only entry (and verify --fix, through the same path).
    p.write(
        "empty.yaml",
        "stages:\n  z:\n    kind: command\n    cmd: echo z > ${outputs.t}\n    outputs: {t: t.txt}\n",
    );
    p.pipeline(&["gc", "empty.yaml", "--yes"]).expect_code(0);
    assert!(!dir.exists(), "gc could not remove a sealed entry");
}

#[test]
fn a_stage_that_changes_its_input_fails_and_the_damaged_entry_is_recomputed() {
    let p = Project::new();
    p.write("p.yaml", WRITES_INPUT);
    // Root ignores file modes (CI runs as root), so the check after the stage must catch it.
    let out = p.run_code("p.yaml", &[], 1);
    let r: RunReport = out.json();
    assert_eq!(r.statuses(), expect_statuses(&[("a", "ran"), ("bad", "failed"), ("after", "skipped")]));
    let err = r.get("bad").error.clone().unwrap();
    if is_root() {
        // Modes do not stop root: the check after the stage does.
        assert!(
            err.contains("changed its input `src`")
                && err.contains("`t.txt`")
                && err.contains("`a`")
                && err.contains("recomputed"),
            "{err}"
        );
    } else {
        // The sealed file refused the write.
        assert_eq!(err, "command exited with status 1");
    }
    let entry = p.object_dir(r.key("a"));
    if entry.exists() {
        // Non-root: the write was refused by the sealed file, and the entry is intact.
        assert_eq!(fs::read_to_string(entry.join("t.txt")).unwrap(), "content of a\n");
    }
    // Never served damaged: the next run recomputes `a` (or finds it intact) and `bad` fails again.
    let out = p.run_code("p.yaml", &[], 1);
    let r2: RunReport = out.json();
    assert_eq!(r2.status("bad"), "failed");
    let a_runs = p.count("a");
    assert!(a_runs == 2 || !is_root(), "a ran {a_runs} times");
    p.pipeline(&["verify"]).expect_code(0);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn view_update_failures_are_in_the_human_summary() {
    let p = Project::new();
    p.write("p.yaml", "stages:\n  a:\n    kind: command\n    cmd: echo a > ${outputs.t}\n    outputs: {t: t.txt}\n");
    // A file where the pipeline's view directory should be.
    fs::create_dir_all(p.cache().join("views")).unwrap();
    fs::write(p.cache().join("views/p"), "in the way").unwrap();
    let out = p.pipeline(&["run", "p.yaml"]).expect_code(0);
    assert!(out.stderr.contains("warning: could not update the view of `a`"), "{}", out.stderr);
}

#[test]
fn gc_removes_a_temp_dir_that_a_command_left_read_only() {
    let p = Project::new();
    p.write("p.yaml", "stages:\n  a:\n    kind: command\n    cmd: echo a > ${outputs.t}\n    outputs: {t: t.txt}\n");
    p.run("p.yaml", &[]);
    let junk = p.cache().join("tmp/deadbeef.1.1");
    fs::create_dir_all(junk.join("out/sub")).unwrap();
    fs::write(junk.join("out/sub/f"), "x").unwrap();
    for d in [junk.join("out/sub"), junk.join("out"), junk.clone()] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o500)).unwrap();
    }
    let out = p.pipeline(&["gc", "p.yaml", "--yes"]).expect_code(0);
    assert!(!junk.exists(), "{}", out.stderr);
    p.pipeline(&["gc", "p.yaml", "--yes"]).expect_code(0);
}

#[test]
fn gc_without_a_terminal_does_not_ask_and_removes() {
    let p = Project::new();
    p.write("p.yaml", "stages:\n  a:\n    kind: command\n    cmd: echo a > ${outputs.t}\n    outputs: {t: t.txt}\n");
    let r = p.run("p.yaml", &[]);
    p.write("q.yaml", "stages:\n  b:\n    kind: command\n    cmd: echo b > ${outputs.t}\n    outputs: {t: t.txt}\n");
    let out = p.pipeline(&["gc", "q.yaml"]).expect_code(0);
    assert!(!out.stderr.contains("[y/N]"), "{}", out.stderr);
    assert!(!p.object_dir(r.key("a")).exists());
}

#[test]
fn the_html_report_is_readable_by_others() {
    let p = Project::new();
    p.write("p.yaml", "stages:\n  a:\n    kind: command\n    cmd: echo a > ${outputs.t}\n    outputs: {t: t.txt}\n");
    p.run("p.yaml", &[]);
    p.pipeline(&["report", "p.yaml", "-o", "r.html"]).expect_code(0);
    let mode = fs::metadata(p.path("r.html")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o044, 0o044, "report mode {mode:o}: group and others cannot read it");
}

/// Values reach the program as written: one argument each, never re-parsed by the shell.
#[test]
fn substituted_values_are_quoted_and_raw_opts_out() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        params:
          msg: "two words; touch INJECTED $(touch INJECTED2) 'q'"
          ks: [1, 2, "a b"]
          flags: "-n -e"
        stages:
          a:
            kind: command
            sweep: {tag: ["x y", "plain"]}
            cmd: printf '[%s]\n' ${params.msg} ${params.ks} ${sweep.tag} > ${outputs.t}; printf '<%s>' ${raw:params.flags} >> ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    let r = p.run("p.yaml", &[]);
    assert!(!p.path("INJECTED").exists() && !p.path("INJECTED2").exists(), "the value ran as shell code");
    let out = std::fs::read_to_string(p.object_dir(r.key("a[tag=x y]")).join("t.txt")).unwrap();
    assert_eq!(
        out, "[two words; touch INJECTED $(touch INJECTED2) 'q']\n[1]\n[2]\n[a b]\n[x y]\n<-n><-e>",
        "raw lets the shell split `-n -e` into two words"
    );
}

const NONDETERMINISTIC: &str = r#"
    stages:
      a:
        kind: command
        cmd: echo x >> counts/a; od -An -N8 -tx8 /dev/urandom > ${outputs.t}
        outputs: {t: t.txt}
      b:
        kind: command
        needs: {src: a}
        cmd: echo x >> counts/b; cat ${inputs.src} > ${outputs.t}
        outputs: {t: t.txt}
      c:
        kind: command
        cmd: echo x >> counts/c; echo c > ${outputs.t}
        outputs: {t: t.txt}
"#;

#[test]
fn force_recomputes_the_named_stage_and_its_descendants_and_replaces_the_entries() {
    let p = Project::new();
    p.write("p.yaml", NONDETERMINISTIC);
    let first = p.run("p.yaml", &[]);
    let before = p.view("p/b/t.txt");
    let forced = p.run("p.yaml", &["--force", "a"]);
    assert_eq!(forced.statuses(), expect_statuses(&[("a", "ran"), ("b", "ran"), ("c", "cached")]));
    assert_eq!(forced.keys(), first.keys(), "same ingredients, same keys");
    assert_eq!((p.count("a"), p.count("b"), p.count("c")), (2, 2, 1));
    let after = p.view("p/b/t.txt");
    assert_ne!(after, before, "the new result replaced the old one");
    assert_eq!(after, p.view("p/a/t.txt"));
    p.pipeline(&["verify"]).expect_code(0);
    // A forced instance that is not among the targets runs too, and so does what it feeds.
    let r = p.run("p.yaml", &["c", "--force", "b"]);
    assert_eq!(r.status("b"), "ran");
    assert_eq!(r.status("a"), "cached");
    let r = p.run("p.yaml", &["a", "--force", "a"]);
    assert_eq!(r.status("b"), "ran", "a downstream entry must not keep the replaced result");
    assert_eq!(p.view("p/b/t.txt"), p.view("p/a/t.txt"));
    let out = p.pipeline(&["run", "p.yaml", "--force", "nope"]).expect_code(2);
    assert!(out.stderr.contains("no stage or instance named `nope`"), "{}", out.stderr);
}

#[test]
fn fail_fast_starts_nothing_after_the_first_failure() {
    let p = Project::new();
    p.write(
        "p.yaml",
        "stages:\n  a:\n    kind: command\n    cmd: exit 3\n    outputs: {t: t.txt}\n  b:\n    kind: command\n    cmd: echo x >> counts/b; echo b > ${outputs.t}\n    outputs: {t: t.txt}\n",
    );
    let out = p.run_code("p.yaml", &["-j", "1", "--fail-fast"], 1);
    let r: RunReport = out.json();
    assert_eq!(r.statuses(), expect_statuses(&[("a", "failed"), ("b", "skipped")]));
    assert_eq!(p.count("b"), 0);
    assert!(out.stderr.contains("`b` (after `a` failed)"), "{}", out.stderr);
    // The default keeps going.
    let r: RunReport = p.run_code("p.yaml", &["-j", "1"], 1).json();
    assert_eq!(r.status("b"), "ran");
}

#[test]
fn a_command_past_its_timeout_is_stopped_and_fails() {
    let p = Project::new();
    p.write(
        "p.yaml",
        "stages:\n  slow:\n    kind: command\n    timeout: 1\n    cmd: sleep 60 & echo $! > counts/child; wait\n    outputs: {t: t.txt}\n",
    );
    let out = p.run_code("p.yaml", &[], 1);
    let r: RunReport = out.json();
    let err = r.get("slow").error.clone().unwrap();
    assert!(err.contains("longer than its timeout of 1s"), "{err}");
    // The whole process group went, the shell's child included.
    let child: i32 = p.read("counts/child").trim().parse().unwrap();
    // Signals are delivered asynchronously: give the child its moment to exit (it would sleep
    // on for 60 s if the group had not been signalled).
    crate::fixture::wait_for("the command's child to end", 30, || !process_alive(child));
    // A timeout on a built-in kind is a spec error.
    p.write("q.yaml", "stages:\n  probs:\n    kind: problems\n    timeout: 30m\n    params: {task: arith}\n");
    let out = p.pipeline(&["run", "q.yaml"]).expect_code(2);
    assert!(
        out.stderr.contains("E074") && out.stderr.contains("`timeout` applies to `command` stages"),
        "{}",
        out.stderr
    );
    p.write("q.yaml", "stages:\n  s:\n    kind: command\n    timeout: soon\n    cmd: 'true'\n    outputs: [t]\n");
    let out = p.pipeline(&["run", "q.yaml"]).expect_code(2);
    assert!(out.stderr.contains("a duration such as 90"), "{}", out.stderr);
}

#[test]
fn a_run_says_that_it_waits_for_gc() {
    let p = Project::new();
    p.write("p.yaml", "stages:\n  a:\n    kind: command\n    cmd: echo a > ${outputs.t}\n    outputs: {t: t.txt}\n");
    p.run("p.yaml", &[]);
    // Hold the exclusive gc lock from another process until told to let go.
    let mut holder = std::process::Command::new("flock")
        .args(["-x", "cache/gc.lock", "-c", "touch counts/locked; while [ ! -e counts/release ]; do sleep 0.05; done"])
        .current_dir(p.root())
        .spawn()
        .expect("flock is installed");
    crate::fixture::wait_for("the lock holder", 30, || p.path("counts/locked").exists());
    let err_file = p.path("counts/run.err");
    let mut run = p
        .command()
        .args(["run", "p.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    crate::fixture::wait_for("the run to say it waits", 30, || {
        fs::read_to_string(&err_file).is_ok_and(|t| t.contains("waiting for `pipeline gc` to finish"))
    });
    fs::write(p.path("counts/release"), "").unwrap();
    assert!(holder.wait().unwrap().success());
    assert!(run.wait().unwrap().success(), "{}", fs::read_to_string(&err_file).unwrap());
}

/// A command with a timeout runs in its own process group, out of reach of the terminal's
/// Ctrl-C: `pipeline` passes the signal on, so nothing outlives it.
#[test]
fn ctrl_c_reaches_a_command_with_a_timeout() {
    let p = Project::new();
    p.write(
        "p.yaml",
        "stages:\n  slow:\n    kind: command\n    timeout: 600\n    cmd: sleep 300 & echo $! > counts/child; wait\n    outputs: {t: t.txt}\n",
    );
    let mut run = p
        .command()
        .args(["run", "p.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::fixture::wait_for("the command to start", 60, || {
        fs::read_to_string(p.path("counts/child")).is_ok_and(|t| t.ends_with('\n'))
    });
    // SAFETY: sends SIGINT to the child process this test spawned.
    unsafe { libc::kill(run.id() as i32, libc::SIGINT) };
    let status = run.wait().unwrap();
    assert!(!status.success());
    let child: i32 = p.read("counts/child").trim().parse().unwrap();
    crate::fixture::wait_for("the command's child to end", 30, || !process_alive(child));
}

/// Alive and not a zombie waiting for a reaper (in a container, pid 1 may never reap it).
fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

/// `c` starts after `bad` damaged their shared input: it must not build on the damage.
#[test]
fn a_stage_never_starts_on_an_input_damaged_earlier_in_the_run() {
    let p = Project::new();
    let yaml = r#"
        stages:
          a:
            kind: command
            cmd: echo "content of a" > ${outputs.t}
            outputs: {t: t.txt}
          bad:
            kind: command
            needs: {src: a}
            cmd: echo oops >> ${inputs.src} || exit 0; echo b > ${outputs.t}
            outputs: {t: t.txt}
          c:
            kind: command
            needs: {src: a, after: bad}
            cmd: cp ${inputs.src} ${outputs.t}
            outputs: {t: t.txt}
          d:
            kind: command
            needs: {src: a}
            cmd: cp ${inputs.src} ${outputs.t}
            outputs: {t: t.txt}
    "#;
    p.write("p.yaml", yaml);
    let r: RunReport = p.run_code("p.yaml", &["-j", "1"], 1).json();
    assert_eq!(r.status("bad"), "failed");
    // d ran after bad (topological order, one job at a time) and read `a` as it is now.
    let d = r.status("d");
    if d == "ran" {
        assert_eq!(p.view("p/d/t.txt"), "content of a\n", "d built on a damaged input");
    } else {
        assert_eq!(d, "failed", "{:?}", r.statuses());
        assert!(
            r.get("d").error.clone().unwrap().contains("damaged before the stage started"),
            "{:?}",
            r.get("d").error
        );
    }
}

/// A stage that writes into its gathered-input directory fails, and the directory is rebuilt.
#[test]
fn a_stage_that_changes_its_gathered_inputs_fails_and_the_tree_is_rebuilt() {
    let p = Project::new();
    let yaml = |cmd: &str| {
        format!(
            "stages:\n  s:\n    kind: command\n    sweep: {{x: [1, 2]}}\n    cmd: echo ${{sweep.x}} > ${{outputs.t}}\n    outputs: {{t: t.txt}}\n  g:\n    kind: command\n    needs: {{all: \"s[*]\"}}\n    cmd: {cmd}\n    outputs: {{t: t.txt}}\n"
        )
    };
    p.write("p.yaml", &yaml("touch ${inputs.all}/extra; ls ${inputs.all} > ${outputs.t}"));
    let r: RunReport = p.run_code("p.yaml", &[], 1).json();
    assert_eq!(r.status("g"), "failed");
    p.write("p.yaml", &yaml("ls ${inputs.all} > ${outputs.t}"));
    let r = p.run("p.yaml", &[]);
    assert_eq!(r.status("g"), "ran");
    assert_eq!(p.view("p/g/t.txt"), "x=1\nx=2\n", "the tree still holds what the failed stage added");
}

/// An empty sweep value has one name everywhere: `x=` in views and in gathered inputs (hive
/// partitioning reads it as null).
#[test]
fn an_empty_sweep_value_is_named_the_same_in_views_and_gathers() {
    let p = Project::new();
    p.write(
        "p.yaml",
        "stages:\n  s:\n    kind: command\n    sweep: {x: ['', a]}\n    cmd: echo v${sweep.x} > ${outputs.t}\n    outputs: {t: t.txt}\n  g:\n    kind: command\n    needs: {all: \"s[*]\"}\n    cmd: ls ${inputs.all} > ${outputs.t}\n    outputs: {t: t.txt}\n",
    );
    p.run("p.yaml", &[]);
    assert_eq!(p.view("p/s/x=/t.txt"), "v\n");
    assert_eq!(p.view("p/g/t.txt"), "x=\nx=a\n");
}
