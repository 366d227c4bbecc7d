#!/usr/bin/env python3
"""Two builds of `talon` compared in alternation: warm starts, exec to the
first 200 on /api/health (polled from exec by this client), and RSS one
second later. Prints figures, asserts nothing.

    python3 tests/bench/start_ab.py OLD_TALON NEW_TALON [CONFIG]

CONFIG is the config.toml text (\n for newlines); the default is the host
alone (bundled plugins off). RUNS (environment, default 15) starts each.
Alternating puts the machine's drift on both binaries alike."""
import os, socket, subprocess, sys, time, statistics, tempfile, shutil, http.client

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def health(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/api/health"); r = c.getresponse(); r.read(); c.close()
        return r.status == 200
    except OSError:
        return False

def rss(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) / 1024
    return out

def start(binary, home):
    port = free_port()
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "--home", home, "start", "--listen", f"127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    while not health(port):
        pass
    first = (time.perf_counter() - t0) * 1e3
    time.sleep(1)
    m = rss(p.pid)
    p.terminate(); p.wait()
    return first, m

config = sys.argv[3] if len(sys.argv) > 3 else "[rate_limit]\nexempt_loopback = true\n[plugins]\nbundled = false\n"
runs = int(os.environ.get("RUNS", "15"))
res = {}
homes = {}
for b in sys.argv[1:3]:
    h = tempfile.mkdtemp(); open(os.path.join(h, "config.toml"), "w").write(config.replace("\\n", "\n"))
    start(b, h)  # initialise the home
    homes[b] = h; res[b] = []
for _ in range(runs):
    for b in sys.argv[1:3]:
        res[b].append(start(b, homes[b]))
for b in sys.argv[1:3]:
    firsts = [r[0] for r in res[b]]
    print(f"{b}: first 200 p50 {statistics.median(firsts):.1f} ms (min {min(firsts):.1f}); "
          f"RSS {statistics.median(r[1]['VmRSS'] for r in res[b]):.1f} MiB "
          f"(anon {statistics.median(r[1]['RssAnon'] for r in res[b]):.1f}, file {statistics.median(r[1]['RssFile'] for r in res[b]):.1f})")
for h in homes.values(): shutil.rmtree(h, ignore_errors=True)
