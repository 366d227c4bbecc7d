#!/usr/bin/env python3
"""Time from an install request to the first successful call, for the Python
and JavaScript example plugins, with and without the baseline compiler:
prints figures, asserts nothing.

    python3 tests/bench/install_first_call.py target/debug/talon [true|false ...]

Packs the examples in an author's home of their own (packing compiles and
caches there, not in the daemon's), then for each `baseline_compiler` value
given (default: true then false) starts a daemon on a fresh home and, for
each example in turn: `POST /api/plugins/install` with the package's path,
then `POST /api/tools/{name}/invoke` until it answers 200 (the install
answers once the plugin is loaded, so the first call normally succeeds);
then polls `GET /api/plugins/{name}/status` until `compiler` is
`optimized` and reports when (the optimized build compiled in the
background). The daemon's cache starts empty for each run.
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ARGS = json.dumps({"text": "the quick brown fox jumps over the lazy dog, the end", "top": 3})
EXAMPLES = [("python", "word_count_python"), ("js", "word_count_js")]


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
    return child, host, int(port)


def request(conn, method, path, body=None):
    conn.request(method, path, body=body, headers={"content-type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


def main():
    talon = os.path.abspath(sys.argv[1])
    modes = sys.argv[2:] or ["true", "false"]
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
    author = tempfile.mkdtemp(prefix="talon-author-")
    try:
        key = os.path.join(author, "key")
        subprocess.run([talon, "--home", author, "plugin", "keygen", "--out", key], check=True, capture_output=True)
        packages = {}
        for example, name in EXAMPLES:
            packages[name] = os.path.join(author, f"{name}.talon")
            subprocess.run([talon, "--home", author, "plugin", "pack",
                            os.path.join(repo, f"examples/plugins/{example}/talon.toml"),
                            os.path.join(repo, f"target/plugins/{name}.wasm"),
                            "--key", key, "--out", packages[name]], check=True, capture_output=True)
        for mode in modes:
            home = tempfile.mkdtemp(prefix="talon-install-")
            try:
                with open(os.path.join(home, "config.toml"), "w") as f:
                    f.write("[tool_invoke]\nenabled = true\nallowlist = [\"*\"]\n"
                            "[rate_limit]\nexempt_loopback = true\n"
                            f"[plugins]\ndev_mode = true\nbundled = false\nbaseline_compiler = {mode}\n")
                child, host, port = start(talon, home)
                conn = http.client.HTTPConnection(host, port, timeout=600)
                for example, name in EXAMPLES:
                    t0 = time.perf_counter()
                    status, body = request(conn, "POST", "/api/plugins/install",
                                           json.dumps({"path": packages[name], "grant": "all"}))
                    if status not in (200, 201):
                        raise SystemExit(f"install {name}: {status} {body[:300]!r}")
                    installed = time.perf_counter() - t0
                    while True:
                        status, body = request(conn, "POST", f"/api/tools/{name}/invoke", ARGS)
                        if status == 200:
                            break
                    first = time.perf_counter() - t0
                    status, body = request(conn, "GET", f"/api/plugins/{name}/status")
                    compiler = json.loads(body).get("compiler")
                    while json.loads(body).get("compiler") != "optimized":
                        time.sleep(0.2)
                        status, body = request(conn, "GET", f"/api/plugins/{name}/status")
                    optimized = time.perf_counter() - t0
                    print(f"baseline_compiler = {mode:5}  {example:6}: installed in {installed:.1f} s, "
                          f"first call answered at {first:.1f} s (on the {compiler} build), "
                          f"optimized build in use at {optimized:.1f} s")
                child.kill()
                child.wait()
            finally:
                shutil.rmtree(home, ignore_errors=True)
    finally:
        shutil.rmtree(author, ignore_errors=True)


if __name__ == "__main__":
    main()
