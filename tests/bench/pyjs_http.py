#!/usr/bin/env python3
"""Per-call cost over HTTP and daemon RSS for the Rust, Python and JavaScript
example plugins: prints figures, asserts nothing.

    python3 tests/bench/pyjs_http.py target/debug/talon [EXTRA_PLUGINS_TOML]

Packs the three examples (components from scripts/build-plugins) into a
fresh home (compiled there, or copied from target/bench-cache when
`cargo bench -p talon-runtime --bench examples` already compiled them with
the same engine settings), starts the daemon, installs them, restarts it,
then for each example: 200 sequential `POST /api/tools/{name}/invoke` on one
keep-alive connection (p50, p99, `GET /api/health` on the same connection as
the baseline), then 8 connections making 200 calls each at once; the
daemon's RSS after the restart and after each phase. EXTRA_PLUGINS_TOML is
appended to `[plugins]` (e.g. `pool_memory_keep_resident_kib = 0`).
"""
import glob
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

CALLS = 200
CONCURRENT = 8
ARGS = json.dumps({"text": "the quick brown fox jumps over the lazy dog, the end", "top": 3})
EXAMPLES = [("rust", "word_count_rust"), ("python", "word_count_python"), ("js", "word_count_js")]


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pss(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start(talon, home):
    child = subprocess.Popen(
        [talon, "--home", home, "start", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    line = child.stdout.readline().decode().strip()
    url = line.removeprefix("talon listening on ")
    host, port = url.removeprefix("http://").split(":")
    while True:
        try:
            c = http.client.HTTPConnection(host, int(port))
            c.request("GET", "/api/health")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)
    return child, url, host, int(port)


def call(conn, tool):
    conn.request("POST", f"/api/tools/{tool}/invoke", body=ARGS, headers={"content-type": "application/json"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise SystemExit(f"{tool}: {r.status} {body[:300]!r}")


def main():
    talon = os.path.abspath(sys.argv[1])
    extra = sys.argv[2] if len(sys.argv) > 2 else ""
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
    home = tempfile.mkdtemp(prefix="talon-pyjs-")
    try:
        with open(os.path.join(home, "config.toml"), "w") as f:
            f.write("[tool_invoke]\nenabled = true\nallowlist = [\"*\"]\n"
                    "[rate_limit]\nexempt_loopback = true\n"
                    f"[plugins]\ndev_mode = true\nbundled = false\n{extra}\n")
        cache = os.path.join(home, "cache", "components")
        os.makedirs(cache, exist_ok=True)
        for cwasm in glob.glob(os.path.join(repo, "target/bench-cache/*.cwasm")):
            shutil.copy(cwasm, cache)
        key = os.path.join(home, "key")
        subprocess.run([talon, "--home", home, "plugin", "keygen", "--out", key], check=True, capture_output=True)
        child, url, host, port = start(talon, home)
        for example, name in EXAMPLES:
            package = os.path.join(home, f"{name}.talon")
            subprocess.run([talon, "--home", home, "plugin", "pack",
                            os.path.join(repo, f"examples/plugins/{example}/talon.toml"),
                            os.path.join(repo, f"target/plugins/{name}.wasm"),
                            "--key", key, "--out", package], check=True, capture_output=True)
            subprocess.run([talon, "--home", home, "plugin", "install", package, "--grant-all", "--url", url],
                           check=True, capture_output=True)
        child.kill()
        child.wait()
        child, url, host, port = start(talon, home)
        time.sleep(1.0)
        print(f"daemon RSS after a restart with the three examples installed: {rss(child.pid):.1f} MiB "
              f"(PSS {pss(child.pid):.1f})")
        for example, name in EXAMPLES:
            before = rss(child.pid)
            conn = http.client.HTTPConnection(host, port)
            for _ in range(20):
                call(conn, name)
            times, health = [], []
            for _ in range(CALLS):
                t = time.perf_counter()
                call(conn, name)
                times.append(time.perf_counter() - t)
                t = time.perf_counter()
                conn.request("GET", "/api/health")
                conn.getresponse().read()
                health.append(time.perf_counter() - t)
            sequential = rss(child.pid)

            def caller():
                c = http.client.HTTPConnection(host, port)
                for _ in range(CALLS):
                    call(c, name)

            threads = [threading.Thread(target=caller) for _ in range(CONCURRENT)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            time.sleep(0.5)
            after = rss(child.pid)
            times.sort()
            health.sort()
            print(f"{example:6}: invoke p50 {times[len(times) // 2] * 1e3:.2f} ms, p99 {times[int(len(times) * 0.99)] * 1e3:.2f} ms "
                  f"(health p50 {health[len(health) // 2] * 1e3:.2f} ms); RSS {before:.1f} -> {sequential:.1f} MiB after "
                  f"{CALLS + 20} calls -> {after:.1f} MiB after {CONCURRENT}x{CALLS} concurrent "
                  f"(+{after - before:.1f} MiB; PSS {pss(child.pid):.1f})")
        print(f"daemon RSS at the end: {rss(child.pid):.1f} MiB (PSS {pss(child.pid):.1f})")
        child.kill()
        child.wait()
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
