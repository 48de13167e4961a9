//! `pipeline completions SHELL`: generated scripts that know every subcommand.

use crate::fixture::Project;

const SUBCOMMANDS: &[&str] = &[
    "run",
    "plan",
    "explain",
    "status",
    "show",
    "log",
    "diff",
    "report",
    "dag",
    "verify",
    "check",
    "gc",
    "kinds",
    "completions",
];

#[test]
fn completion_scripts_name_every_subcommand() {
    let p = Project::new();
    // How each script lists a subcommand.
    let entry = |shell: &str, sub: &str| match shell {
        "bash" => format!("pipeline,{sub})"),
        "zsh" => format!("'{sub}:"),
        _ => format!("-a \"{sub}\""),
    };
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef pipeline"), ("fish", "complete -c pipeline")] {
        let out = p.pipeline(&["completions", shell]).expect_code(0);
        assert!(out.stdout.contains(marker), "{shell}: no `{marker}` in\n{}", out.stdout);
        for sub in SUBCOMMANDS {
            let want = entry(shell, sub);
            assert!(out.stdout.contains(&want), "{shell}: completion script lacks `{want}`");
        }
        // Flags of the new commands are there too.
        assert!(out.stdout.contains("against"), "{shell}: no --against");
    }
    assert!(!p.cache().exists(), "completions created a cache");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let p = Project::new();
    let out = p.pipeline(&["completions", "tcsh"]).expect_code(2);
    assert!(out.stderr.contains("bash"), "{}", out.stderr);
}
