//! `command` stages: a shell command with declared inputs and outputs passed as paths.
//!
//! `${params.*}` and `${seed}` are filled from the job (they stay symbolic in the key's
//! command text, their values are hashed as params and seed), shell-quoted by
//! [`quote_value`] unless written `${raw:params.*}`; `${inputs.P}` / `${outputs.P}`
//! expand to absolute (shell-quoted) paths and are also
//! exported as `PIPELINE_INPUT_P` / `PIPELINE_OUTPUT_P`; `PIPELINE_PARAMS` holds the stage's
//! params as JSON, `PIPELINE_SEED` the seed. stdout and stderr go to the stage log. On Linux
//! the command is killed if `pipeline` dies (PR_SET_PDEATHSIG), so a killed run leaves no
//! orphan writing into a directory nobody will commit.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use super::{ExecError, Job, env_name};
use crate::engine::spec::interp::{Ns, Template};
use crate::engine::value::Value;

/// Quote `s` for `sh` when it contains anything but safe characters.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) { s.to_string() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

/// The `command` kind's implementation version, in every command stage's key. 1: substituted
/// `${params.*}` / `${sweep.*}` values are shell-quoted (0 pasted them raw), so the same
/// command text can run a different command line, and old entries must not be served.
pub const COMMAND_VERSION: u32 = 1;

/// A value as shell words: a scalar is one quoted word; a list is one quoted word per element
/// (so `--ks ${params.ks}` passes `--ks 1 2 4`, and an empty list passes nothing); a mapping
/// is one quoted word of JSON.
pub fn quote_value(v: &Value) -> String {
    match v {
        Value::List(items) => items.iter().map(|i| shell_quote(&i.render())).collect::<Vec<_>>().join(" "),
        other => shell_quote(&other.render()),
    }
}

/// The final command line: input and output references replaced by quoted paths.
pub fn render(job: &Job<'_>) -> Result<String, ExecError> {
    let cmd = job.cmd.ok_or_else(|| ExecError::Stage("command stage without a command".into()))?;
    let t = Template::parse(cmd, None).map_err(|e| ExecError::Stage(e.message))?;
    t.render_final(|r| {
        let map = match r.ns {
            Ns::Inputs => &job.inputs,
            Ns::Outputs => &job.outputs,
            Ns::Seed => return Ok(job.seed.to_string()),
            Ns::Params => {
                let mut v = job.params.get(r.head());
                for part in &r.path[1..] {
                    v = match v {
                        Some(crate::engine::value::Value::Map(m)) => m.get(part),
                        _ => None,
                    };
                }
                let v = v.ok_or_else(|| ExecError::Stage(format!("unresolved reference `{r}`")))?;
                return Ok(if r.raw { v.render() } else { quote_value(v) });
            }
            Ns::Sweep => return Err(ExecError::Stage(format!("unresolved reference `{r}`"))),
        };
        map.get(r.head())
            .map(|p| if r.raw { p.to_string_lossy().into_owned() } else { shell_quote(&p.to_string_lossy()) })
            .ok_or_else(|| ExecError::Stage(format!("no path for `{r}`")))
    })
}

pub fn run(job: &Job<'_>) -> Result<(), ExecError> {
    let line = render(job)?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(job.log).map_err(ExecError::Spawn)?;
    let log_err = log.try_clone().map_err(ExecError::Spawn)?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(&line).current_dir(job.dir).stdin(Stdio::null()).stdout(log).stderr(log_err);
    for (port, path) in &job.inputs {
        cmd.env(env_name("PIPELINE_INPUT_", port), path);
    }
    for (port, path) in &job.outputs {
        cmd.env(env_name("PIPELINE_OUTPUT_", port), path);
    }
    let params = serde_json::to_string(job.params).unwrap_or_else(|_| "{}".into());
    cmd.env("PIPELINE_PARAMS", params)
        .env("PIPELINE_SEED", job.seed.to_string())
        .env("PIPELINE_STAGE", job.stage)
        .env("PIPELINE_INSTANCE", job.instance)
        .env("PIPELINE_KEY", job.key.0.as_str())
        .env("PIPELINE_OUTPUT_DIR", job.out_dir);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let status = match job.timeout {
        None => cmd.status().map_err(ExecError::Spawn)?,
        Some(limit) => wait_with_timeout(&mut cmd, limit)?,
    };
    if status.success() {
        Ok(())
    } else if let Some(code) = status.code() {
        Err(ExecError::Exit(code))
    } else {
        Err(ExecError::Signal(status.signal().unwrap_or(0)))
    }
}

/// How long a command that ran past its `timeout:` gets between SIGTERM and SIGKILL.
const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Run the command in its own process group and wait at most `limit`; past it, the whole group
/// (the shell and everything it started) gets SIGTERM, then SIGKILL after [`GRACE`].
fn wait_with_timeout(cmd: &mut Command, limit: std::time::Duration) -> Result<std::process::ExitStatus, ExecError> {
    use std::sync::mpsc;
    cmd.process_group(0);
    forward_signals_to_groups();
    let mut child = cmd.spawn().map_err(ExecError::Spawn)?;
    let pgid = child.id() as libc::pid_t;
    let _registered = GroupSlot::register(pgid);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let signal = |sig| {
        // SAFETY: kill has no memory effects; a negative pid names the process group.
        unsafe { libc::kill(-pgid, sig) };
    };
    match rx.recv_timeout(limit) {
        Ok(status) => status.map_err(ExecError::Spawn),
        Err(_) => {
            signal(libc::SIGTERM);
            if rx.recv_timeout(GRACE).is_err() {
                signal(libc::SIGKILL);
                let _ = rx.recv();
            }
            // Children that outlived the shell in the group.
            signal(libc::SIGKILL);
            Err(ExecError::Timeout(limit))
        }
    }
}

/// Process groups of running commands with a `timeout:`. In their own group they no longer get
/// the terminal's Ctrl-C, and `PR_SET_PDEATHSIG` reaches only their shell, so `pipeline`
/// forwards SIGINT, SIGTERM and SIGHUP to these groups (as SIGTERM) before it dies.
static GROUPS: [std::sync::atomic::AtomicI32; 64] = [const { std::sync::atomic::AtomicI32::new(0) }; 64];

/// A slot in [`GROUPS`], freed on drop. More than 64 at once are not tracked.
struct GroupSlot(Option<usize>);

impl GroupSlot {
    fn register(pgid: libc::pid_t) -> GroupSlot {
        use std::sync::atomic::Ordering;
        GroupSlot(GROUPS.iter().position(|g| g.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst).is_ok()))
    }
}

impl Drop for GroupSlot {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            GROUPS[i].store(0, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

extern "C" fn forward(sig: libc::c_int) {
    for g in &GROUPS {
        let pgid = g.load(std::sync::atomic::Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: kill is async-signal-safe.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
        }
    }
    // SAFETY: signal and raise are async-signal-safe; the default action then ends the process
    // as it would have without this handler.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

fn forward_signals_to_groups() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: installs a handler that only calls async-signal-safe functions.
            unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("/a/b.parquet"), "/a/b.parquet");
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
