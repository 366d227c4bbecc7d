//! `talon start`: boot the kernel, bind, serve until told to stop.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use talon_kernel::config::LogFormat;
use talon_kernel::home::Home;
use talon_kernel::kernel::Overrides;

use crate::daemon_file::DaemonFile;

/// Flags of `talon start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Listen address, overriding `api_listen` (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Write logs as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// Accept non-loopback clients even though no api_key is set. Dangerous.
    #[arg(long)]
    allow_remote_without_key: bool,
}

/// Runs the daemon until SIGINT, SIGTERM or `POST /api/shutdown`.
pub fn start(home: Home, config: Option<PathBuf>, args: StartArgs) -> anyhow::Result<()> {
    if let Some(running) = DaemonFile::read(&home).filter(DaemonFile::is_alive) {
        bail!(
            "talon is already running for {} (pid {}, http://{}); stop it with `talon stop`",
            home.root().display(),
            running.pid,
            running.listen
        );
    }
    let overrides = Overrides {
        api_listen: args.listen.clone(),
        allow_remote_without_key: args.allow_remote_without_key,
    };
    let kernel =
        talon_kernel::Kernel::boot(home, config, overrides).context("cannot start the kernel")?;
    let cfg = kernel.config();
    let json_logs = args.log_json || cfg.log_format == LogFormat::Json;
    init_logging(&cfg.log_level, json_logs);

    let addr: std::net::SocketAddr = cfg
        .api_listen
        .parse()
        .with_context(|| format!("invalid listen address `{}`", cfg.api_listen))?;
    if !addr.ip().is_loopback() && cfg.api_key.is_empty() && !cfg.allow_remote_without_key {
        bail!(
            "refusing to listen on {addr} without an api_key: set api_key in {}, or pass \
             --allow-remote-without-key if you really want an open daemon",
            kernel.config_path().display()
        );
    }

    limit_heap_retention();
    let nofile = raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        let kernel = Arc::new(kernel);
        kernel.plugins().deny_addresses([bound]);
        // Components are compiled by this executable in a child process,
        // which returns the compiler's memory when it ends.
        match std::env::current_exe() {
            Ok(program) => kernel.plugins().compile_with(program),
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the daemon's executable; compiling plugins in process")
            }
        }
        // The API answers from here on, also while plugins load: a plugin
        // that fails or hangs at load is reported (and can be disabled or
        // removed) over it instead of keeping the daemon from starting.
        let daemon_file = kernel.home().daemon_file();
        DaemonFile::write(&daemon_file, bound)?;
        let state = talon_api::AppState::new(kernel.clone());
        // A stop expires the calls waiting for approval, so the in-flight
        // requests that a graceful stop lets finish do finish.
        let (stopping, approvals) = (state.shutdown.clone(), kernel.approvals().clone());
        tokio::spawn(async move {
            stopping.cancelled().await;
            approvals.stop();
        });
        // Turns paused on an approval when the daemon last stopped hold
        // their sessions before the API answers; their calls run once the
        // plugins are loaded.
        let (plugins_loaded, loaded_signal) = tokio::sync::watch::channel(false);
        let resumed = kernel
            .conversations()
            .resume_paused(loaded_signal)
            .await
            .context("cannot resume the turns paused on an approval")?;
        tracing::info!(resumed, "paused turns re-armed");
        let mut server = talon_api::Server::new(state);
        if let Some(nofile) = nofile {
            server = server.with_fd_limit(nofile);
        }
        let limits = server.limits();
        tracing::info!(
            max_connections = limits.max_connections,
            max_connections_per_ip = limits.max_connections_per_ip,
            header_read_timeout_secs = limits.header_read_timeout.as_secs(),
            idle_timeout_secs = limits.idle_timeout.as_secs(),
            "connection limits"
        );
        let serving = tokio::spawn(server.run(listener));
        let loaded = kernel
            .plugins()
            .load_plugins(&bundled_plugins())
            .await
            .context("cannot read the installed plugins")?;
        tracing::info!(loaded, "plugins loaded");
        plugins_loaded.send_replace(true);
        let scheduled = kernel
            .automation()
            .start_scheduler()
            .await
            .context("cannot start the scheduler")?;
        tracing::info!(scheduled, "scheduler started");
        kernel
            .automation()
            .start_task_worker()
            .await
            .context("cannot start the task queue")?;
        // Deliveries a previous run left queued go out from here on.
        kernel.webhooks().start();
        // Turn records past `[retention]` are removed now and then periodically.
        kernel.conversations().start_retention();
        // Channels start once their plugins are loaded; what a previous run
        // stored but did not answer or send is answered and sent from here on.
        let channels = kernel
            .channels()
            .start()
            .await
            .context("cannot start the channels")?;
        tracing::info!(channels, "channels started");
        // Hands start once their plugins are loaded; ticks missed while the
        // daemon was down go by the scheduler's missed-run policy.
        let hands = kernel
            .hands()
            .start()
            .await
            .context("cannot start the hands")?;
        tracing::info!(hands, "hands started");
        // The one line on stdout, once everything installed is running:
        // scripts and tests wait for it.
        println!("talon listening on http://{bound}");
        std::io::stdout().flush().ok();
        tracing::info!(%bound, home = %kernel.home().root().display(), "talon started");
        release_freed_memory();
        let served = match serving.await {
            Ok(served) => served,
            Err(e) => Err(std::io::Error::other(e)),
        };
        // Channels stop between sends, so none is sent twice after a restart;
        // within the same grace as the server's drain.
        let grace = std::time::Duration::from_secs(kernel.config().server.shutdown_grace_secs);
        if tokio::time::timeout(grace, kernel.channels().stop_all()).await.is_err() {
            tracing::warn!("channels did not stop within the shutdown grace; a send under way may be repeated at the next start");
        }
        // The database file alone is then complete, for backups and offline tools.
        if let Err(e) = kernel.store().checkpoint() {
            tracing::warn!(error = %e, "cannot checkpoint the journal; it is replayed at the next start");
        }
        let _ = std::fs::remove_file(&daemon_file);
        served.context("server failed")?;
        tracing::info!("talon stopped");
        Ok(())
    });
    // The server has drained within its deadline; tasks still running (a
    // WebSocket, a plugin call on a blocking thread) must not keep the
    // process alive past it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// Raises the soft limit on open file descriptors to the hard limit (each
/// client connection is one; the usual soft limit of 1024 is soon reached)
/// and returns the limit in force, or `None` if it cannot be read.
#[cfg(unix)]
fn raise_fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the file-descriptor limit");
        return None;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            tracing::warn!(error = %std::io::Error::last_os_error(), before, "cannot raise the file-descriptor limit");
        }
    }
    // rlim_t is u64 on Linux and macOS, not on every Unix.
    #[allow(clippy::useless_conversion)]
    let limit = u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX);
    tracing::info!(before, limit, "file-descriptor limit");
    Some(limit)
}

#[cfg(not(unix))]
fn raise_fd_limit() -> Option<u64> {
    None
}

/// The plugins this binary ships, for the kernel to install and upgrade.
fn bundled_plugins() -> Vec<talon_kernel::plugins::BundledPlugin> {
    talon_bundled::PLUGINS
        .iter()
        .map(|p| talon_kernel::plugins::BundledPlugin {
            name: p.name,
            manifest: p.manifest,
            component: p.component,
            sha256: p.sha256,
        })
        .collect()
}

/// Keeps glibc from holding on to memory the daemon freed: a fixed mmap
/// threshold (large blocks, a compiler's buffers, are unmapped when freed
/// instead of raising the threshold and staying in the heap) and two arenas
/// (cranelift's worker threads would otherwise each keep one).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_heap_retention() {
    // SAFETY: mallopt only sets allocator parameters; called before the
    // daemon's threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_heap_retention() {}

fn init_logging(level: &str, json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: a log written to a file or a
    // pipe (a service manager, `2> daemon.log`) stays plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(crate::output::stderr_has_colour())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Gives the heap pages that start-up used and freed (building the router
/// and its OpenAPI document, the plugin linker) back to the system: glibc
/// otherwise keeps them for later allocations, and they count as resident.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free memory to the kernel; it is
    // thread-safe and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory() {}
