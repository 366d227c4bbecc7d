//! Compiling components in a short-lived child process.
//!
//! Cranelift's allocations while compiling a large component (a Python or
//! JavaScript one: 20–30 s, hundreds of MiB) fragment the heap, and the
//! daemon would keep most of it resident afterwards. So the embedder may
//! name a program (the daemon's own executable) that the runtime runs as
//! `<program> __compile --max-instances N --memory-bytes M [--baseline]
//! [--background] <output>`: the child reads the component from its stdin,
//! compiles it with an engine configured exactly like the runtime's
//! Cranelift one, or its Winch one with `--baseline` (same settings, same
//! compatibility hash), at the lowest CPU priority with `--background` (the
//! optimized build that replaces a baseline one, while calls run), and
//! writes the compiled artifact to `<output>` atomically; the
//! runtime then maps that file with `Component::deserialize_file`, like a
//! cache hit after a restart. The memory goes away with the child.
//!
//! The child only compiles: it never instantiates or runs guest code. It
//! gets the bytes the runtime already verified (signature, checksum) through
//! a pipe, so nothing can swap them on disk, and it writes only the cache
//! file the runtime named after their SHA-256.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::LoadError;
use crate::runtime::{PoolRetention, Tier, engine_config};

/// The hidden subcommand the child is run with.
pub const SUBCOMMAND: &str = "__compile";

/// How often the runtime looks whether the child is done.
const POLL: Duration = Duration::from_millis(50);
/// Stderr of the child kept for the error message.
const STDERR_CAPACITY: u64 = 16 * 1024;

/// How much longer than its CPU-time limit a background compile may take in
/// wall time: it runs at the lowest priority, so on a busy machine it gets
/// only what calls leave, but a child that makes no progress at all is still
/// stopped.
const BACKGROUND_WALL_FACTOR: u32 = 10;

/// A program that compiles components in a child process.
#[derive(Debug, Clone)]
pub struct Compiler {
    /// The executable; it must implement [`SUBCOMMAND`] by calling
    /// [`compile_child`].
    pub program: PathBuf,
    /// Longest time a compile may take; past it the child is killed and the
    /// load fails. A background compile is held to it in CPU time (where the
    /// platform tells it), since at the lowest priority its wall time is
    /// whatever the machine's load makes it.
    pub timeout: Duration,
}

impl Compiler {
    /// Compiles with `program`, allowing `timeout` per component.
    pub fn new(program: PathBuf, timeout: Duration) -> Self {
        Self { program, timeout }
    }

    /// Whether the child `pid`, started at `started`, has used up its time:
    /// wall time for a compile someone waits for; CPU time for a background
    /// one, with a wall-time backstop of [`BACKGROUND_WALL_FACTOR`] times
    /// the limit.
    fn overdue(&self, background: bool, pid: u32, started: Instant) -> bool {
        let wall = started.elapsed();
        if !background {
            return wall >= self.timeout;
        }
        if wall >= self.timeout.saturating_mul(BACKGROUND_WALL_FACTOR) {
            return true;
        }
        match cpu_time(pid) {
            Some(cpu) => cpu >= self.timeout,
            None => wall >= self.timeout,
        }
    }
}

/// The CPU time (user and system) process `pid` has used, where the
/// platform reports it (Linux's `/proc/<pid>/stat`).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // fields are counted after its closing one, where field 3 comes first.
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    Some(Duration::from_millis((utime + stime) * 1000 / ticks))
}

/// The engine settings the child must share with the runtime.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineShape {
    pub max_instances: u32,
    pub memory_bytes: usize,
}

/// One compile: the engine's settings, the compiler, and whether it runs
/// in the background.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    pub shape: EngineShape,
    pub tier: Tier,
    pub background: bool,
}

/// Kills the child unless it was reaped: dropped when the load is abandoned
/// (the request gone, a timeout), it leaves no compiler running.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Compiler {
    /// Runs the child on `component` and waits for it to write `output`.
    /// `Ok(false)` if the program could not be started at all (the
    /// executable was removed or replaced on disk): the caller compiles in
    /// process instead.
    pub(crate) async fn compile(
        &self,
        job: Job,
        component: std::sync::Arc<Vec<u8>>,
        output: &Path,
    ) -> Result<bool, LoadError> {
        let mut command = Command::new(&self.program);
        command
            .arg(SUBCOMMAND)
            .arg("--max-instances")
            .arg(job.shape.max_instances.to_string())
            .arg("--memory-bytes")
            .arg(job.shape.memory_bytes.to_string());
        if job.tier == Tier::Baseline {
            command.arg("--baseline");
        }
        if job.background {
            command.arg("--background");
        }
        let spawned = command
            .arg(output)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(program = %self.program.display(), error = %e, "cannot start the compiler process; compiling in process");
                return Ok(false);
            }
        };
        let stdin = child.stdin.take();
        let stderr = child.stderr.take();
        let mut reaper = Reaper(Some(child));

        // The pipes are fed and drained on blocking threads; a child that
        // stops reading ends them with an error, which its exit explains.
        let feeding = tokio::task::spawn_blocking(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(&component);
            }
        });
        let draining = tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            if let Some(stderr) = stderr {
                let mut limited = stderr.take(STDERR_CAPACITY);
                let _ = limited.read_to_string(&mut text);
                // Whatever is beyond the cap is read and dropped, so the
                // child never blocks on a full pipe.
                let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
            }
            text
        });

        let started = Instant::now();
        let status = loop {
            let Some(child) = reaper.0.as_mut() else {
                return Err(LoadError::Compile("compiler process lost".into()));
            };
            match child.try_wait() {
                Ok(Some(status)) => {
                    reaper.0 = None;
                    break status;
                }
                Ok(None) if self.overdue(job.background, child.id(), started) => {
                    drop(reaper);
                    let spent = if job.background { " of CPU time" } else { "" };
                    return Err(LoadError::Compile(format!(
                        "compiling took longer than {} s{spent}; the compiler process was stopped",
                        self.timeout.as_secs()
                    )));
                }
                Ok(None) => tokio::time::sleep(POLL).await,
                Err(e) => {
                    return Err(LoadError::Compile(format!(
                        "cannot wait for the compiler process: {e}"
                    )));
                }
            }
        };
        let _ = feeding.await;
        let stderr = draining.await.unwrap_or_default();
        if status.success() {
            return Ok(true);
        }
        let last = stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("no message");
        Err(LoadError::Compile(format!(
            "the compiler process failed ({status}): {last}"
        )))
    }
}

/// The child's side: reads a component from stdin, compiles it with the
/// engine settings given (Winch's engine if `baseline`), and writes the
/// artifact to `output` (under a temporary name, synced, then renamed, so a
/// crash never leaves a half-written file under the final name).
/// `background` first lowers the process's CPU priority to the lowest, so
/// the compile takes only the time calls leave.
pub fn compile_child(
    max_instances: u32,
    memory_bytes: usize,
    baseline: bool,
    background: bool,
    output: &Path,
) -> Result<(), LoadError> {
    if background {
        // SAFETY: setpriority only changes this process's scheduling
        // priority; it has no memory-safety preconditions.
        let lowered = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
        if lowered != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not lower the compiler's priority");
        }
    }
    let tier = if baseline {
        Tier::Baseline
    } else {
        Tier::Optimized
    };
    let mut component = Vec::new();
    std::io::stdin()
        .read_to_end(&mut component)
        .map_err(|e| LoadError::io("<stdin>", e))?;
    let engine = wasmtime::Engine::new(&engine_config(
        EngineShape {
            max_instances,
            memory_bytes,
        },
        PoolRetention::default(),
        tier,
    ))
    .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
    let compiled = engine
        .precompile_component(&component)
        .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
    crate::cache::publish(output, &compiled).map_err(|e| LoadError::io(output, e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use super::*;

    /// A background compile is held to its limit in CPU time, so a child
    /// starved by a busy machine is not stopped for waiting; one making no
    /// progress at all still is, at ten times the limit in wall time.
    #[test]
    fn background_compiles_count_cpu_time_with_a_wall_backstop() {
        let compiler = Compiler::new(PathBuf::from("sleep"), Duration::from_millis(300));
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let ago = |ms| {
            Instant::now()
                .checked_sub(Duration::from_millis(ms))
                .unwrap()
        };
        // Sleeping uses (next to) no CPU time.
        assert!(cpu_time(pid).is_some_and(|cpu| cpu < Duration::from_millis(300)));
        assert!(
            compiler.overdue(false, pid, ago(400)),
            "wall time in the foreground"
        );
        assert!(
            !compiler.overdue(true, pid, ago(400)),
            "CPU time in the background"
        );
        assert!(
            compiler.overdue(true, pid, ago(3_100)),
            "the wall-time backstop"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn cpu_time_counts_this_process_work() {
        let before = cpu_time(std::process::id()).unwrap();
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = cpu_time(std::process::id()).unwrap();
        assert!(after > before, "{before:?} then {after:?}");
    }

    const SHAPE: Job = Job {
        shape: EngineShape {
            max_instances: 1,
            memory_bytes: 1 << 20,
        },
        tier: Tier::Optimized,
        background: false,
    };

    /// A stand-in compiler: a shell script.
    fn script(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("compiler.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn a_failing_or_stuck_child_is_a_clear_error_and_a_missing_one_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.cwasm");
        let bytes = Arc::new(b"not a component".to_vec());

        let failing = Compiler::new(
            script(dir.path(), "echo 'boom: bad input' >&2; exit 3"),
            Duration::from_secs(60),
        );
        let err = failing
            .compile(SHAPE, bytes.clone(), &out)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("compiler process failed") && err.contains("boom: bad input"),
            "{err}"
        );

        let crashing = Compiler::new(script(dir.path(), "kill -9 $$"), Duration::from_secs(60));
        let err = crashing
            .compile(SHAPE, bytes.clone(), &out)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("signal"), "{err}");

        let stuck = Compiler::new(
            script(dir.path(), "exec sleep 600"),
            Duration::from_millis(1),
        );
        let err = stuck
            .compile(SHAPE, bytes.clone(), &out)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("was stopped"), "{err}");

        let missing = Compiler::new(dir.path().join("nowhere"), Duration::from_secs(60));
        assert!(!missing.compile(SHAPE, bytes, &out).await.unwrap());
        assert!(!out.exists());
    }
}
