//! A deliberately hostile plugin. Each tool misbehaves in one way so the
//! tests can check that the host stops it with a clear error:
//!
//! - `spin`: an endless loop (stopped by fuel);
//! - `sleep_forever`: an endless loop of sleeps that burns almost no fuel
//!   (stopped by the wall-clock deadline);
//! - `alloc`: allocates and touches `mb` MiB (stopped by the memory limit);
//! - `recurse`: unbounded recursion (stopped by the stack limit);
//! - `trap`: panics;
//! - `read` / `write`: raw filesystem access to any path, without the SDK's
//!   checks, so only the host's preopen stands in the way;
//! - `remember`: writes a memory key, granted or not;
//! - `spin_in_host`: an endless loop of host calls that each take the host
//!   a while (1 MiB of random bytes) but burn little fuel: only the epoch
//!   deadline, which yields, keeps it from holding a worker thread;
//! - `fields_bomb`: creates `wasi:http` fields of `kib` KiB of headers each,
//!   forever, and keeps them (stopped by the resource-table cap, or by the
//!   size cap of one fields resource);
//! - `huge_result`: answers `mb` MiB of text (refused by the result cap);
//! - `log_flood`: writes `lines` log lines, each trying to forge another
//!   line with a newline (rate-limited, escaped);
//! - `exit`: exits with `code` (`wasi:cli/exit.exit-with-code`, WASI 0.2.12;
//!   `std::process::exit` tells the host only success or failure);
//! - `fill`: writes `mb` MiB into `path` of the agent's workspace, 1 MiB at
//!   a time, through a plain file write, then grows it with `set_len` to
//!   `grow_mb` MiB (a sparse file) if asked (stopped by the workspace quota:
//!   the guest sees ENOSPC);
//! - `echo`: answers its arguments (the harmless baseline, and what the
//!   concurrency test calls).

use std::hint::black_box;

use talon_sdk::{ToolError, Tools, Value};

/// No arguments.
#[talon_sdk::args]
struct Nothing {}

/// Arguments of `alloc`.
#[talon_sdk::args]
struct AllocArgs {
    /// MiB to allocate and touch.
    mb: u32,
}

/// Arguments of `recurse`.
#[talon_sdk::args]
struct RecurseArgs {
    /// How deep to recurse.
    depth: u64,
}

/// Arguments of `read`.
#[talon_sdk::args]
struct ReadArgs {
    /// Any path.
    path: String,
}

/// Arguments of `write`.
#[talon_sdk::args]
struct WriteArgs {
    /// Any path.
    path: String,
    /// What to write.
    text: String,
}

/// Arguments of `fill`.
#[talon_sdk::args]
struct FillArgs {
    /// A file of the workspace.
    path: String,
    /// MiB to write.
    mb: u32,
    /// MiB to grow the file to afterwards with `set_len`, if any.
    grow_mb: Option<u32>,
}

/// Arguments of `remember`.
#[talon_sdk::args]
struct RememberArgs {
    /// Any key.
    key: String,
    /// The value.
    value: String,
}

fn spin(_: Nothing) -> Result<Value, ToolError> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn sleep_forever(_: Nothing) -> Result<Value, ToolError> {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn alloc(args: AllocArgs) -> Result<Value, ToolError> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..args.mb {
        // Touch every page so nothing is optimized away.
        chunks.push(black_box(vec![1u8; 1 << 20]));
    }
    Ok(Value::from(chunks.len()))
}

// Multiplying by zero is the point: the frame must be read, yet not change the result.
#[allow(clippy::erasing_op)]
fn depth(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // A frame with a local array the optimizer cannot remove or turn into a loop.
    let frame = black_box([n; 16]);
    1 + depth(black_box(n - 1)) + black_box(frame[3]) * 0
}

fn recurse(args: RecurseArgs) -> Result<Value, ToolError> {
    Ok(Value::from(depth(args.depth)))
}

fn trap(_: Nothing) -> Result<Value, ToolError> {
    panic!("hostile plugin panicked on purpose");
}

fn read(args: ReadArgs) -> Result<String, ToolError> {
    std::fs::read_to_string(&args.path)
        .map_err(|e| ToolError::failed(format!("{}: {e}", args.path)))
}

fn write(args: WriteArgs) -> Result<Value, ToolError> {
    std::fs::write(&args.path, args.text)
        .map_err(|e| ToolError::failed(format!("{}: {e}", args.path)))?;
    Ok(Value::Bool(true))
}

fn fill(args: FillArgs) -> Result<Value, ToolError> {
    use std::io::Write;
    let failed = |e: std::io::Error| ToolError::failed(format!("{}: {e}", args.path));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.path)
        .map_err(failed)?;
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..args.mb {
        file.write_all(&chunk).map_err(failed)?;
    }
    if let Some(mb) = args.grow_mb {
        file.set_len(u64::from(mb) << 20).map_err(failed)?;
    }
    Ok(Value::Bool(true))
}

fn remember(args: RememberArgs) -> Result<Value, ToolError> {
    talon_sdk::memory::set(&args.key, &args.value)
        .map_err(|e| ToolError::permission_denied(format!("{e:?}")))?;
    Ok(Value::Bool(true))
}

/// Arguments of `huge_result`.
#[talon_sdk::args]
struct HugeArgs {
    /// MiB of text to answer.
    mb: u32,
}

/// Arguments of `log_flood`.
#[talon_sdk::args]
struct FloodArgs {
    /// How many lines to write.
    lines: u32,
}

/// Arguments of `exit`.
#[talon_sdk::args]
struct ExitArgs {
    /// The exit status.
    code: u8,
}

/// Arguments of `fields_bomb`.
#[talon_sdk::args]
struct BombArgs {
    /// KiB of headers in each fields resource.
    kib: u32,
}

fn spin_in_host(_: Nothing) -> Result<Value, ToolError> {
    loop {
        black_box(wasip2::random::random::get_random_bytes(1 << 20));
    }
}

fn fields_bomb(args: BombArgs) -> Result<Value, ToolError> {
    let mut kept = Vec::new();
    let value = vec![b'x'; 1024];
    loop {
        let fields = wasip2::http::types::Fields::new();
        for i in 0..args.kib {
            fields
                .append(&format!("x-bomb-{i}"), &value)
                .map_err(|e| ToolError::failed(format!("{e:?}")))?;
        }
        kept.push(fields);
    }
}

fn huge_result(args: HugeArgs) -> Result<String, ToolError> {
    Ok("x".repeat(args.mb as usize * (1 << 20)))
}

fn log_flood(args: FloodArgs) -> Result<Value, ToolError> {
    for i in 0..args.lines {
        talon_sdk::log::info(format!(
            "line {i}\nFORGED talon: admin login accepted\r\u{1b}[2K"
        ));
    }
    Ok(Value::from(args.lines))
}

fn exit(args: ExitArgs) -> Result<Value, ToolError> {
    wasip2::cli::exit::exit_with_code(args.code);
    Err(ToolError::failed("exit returned"))
}

fn echo(args: Value) -> Result<Value, ToolError> {
    Ok(args)
}

fn tools() -> Tools {
    Tools::new()
        .tool("spin", "Loops forever.", spin)
        .tool(
            "sleep_forever",
            "Sleeps forever, 10 ms at a time.",
            sleep_forever,
        )
        .tool("alloc", "Allocates mb MiB.", alloc)
        .tool("recurse", "Recurses depth times.", recurse)
        .tool("trap", "Panics.", trap)
        .tool("read", "Reads any path.", read)
        .tool("write", "Writes any path.", write)
        .tool("remember", "Stores a memory key.", remember)
        .tool("spin_in_host", "Loops forever in host calls.", spin_in_host)
        .tool(
            "fields_bomb",
            "Creates wasi:http fields forever.",
            fields_bomb,
        )
        .tool("huge_result", "Answers mb MiB of text.", huge_result)
        .tool("log_flood", "Writes lines log lines.", log_flood)
        .tool("exit", "Exits with the given status.", exit)
        .tool("fill", "Writes mb MiB into a file of the workspace.", fill)
        .tool("echo", "Answers its arguments.", echo)
}

talon_sdk::export_plugin!(tools);
