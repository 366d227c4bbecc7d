#!/usr/bin/env python3
"""The daemon's resident memory while 4 clients upload 1 GiB plugin packages
at once to POST /api/plugins/install (issue 19), from outside the daemon.

    python3 tests/bench/upload_rss.py target/release/talon

Two rounds on a fresh daemon: the 4 bodies announced by Content-Length
(refused with 413 before any of the body is read), then sent chunked (no
length announced: read up to the route's limit, then refused). Prints the
daemon's RSS before, its peak (VmHWM) after each round, and the answers.
Measures, asserts nothing.
"""

import socket
import subprocess
import sys
import tempfile
import threading

GIB = 1 << 30
CHUNK = b"A" * (1 << 20)


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def upload(port, chunked, answers):
    s = socket.create_connection(("127.0.0.1", port))
    head = "POST /api/plugins/install HTTP/1.1\r\nHost: talon\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {GIB}\r\n\r\n"
    answer = []

    def read_answer():
        try:
            answer.append(s.recv(200).split(b"\r\n")[0].decode())
        except OSError as e:
            answer.append(f"no answer ({e})")

    reader = threading.Thread(target=read_answer)
    reader.start()
    s.sendall(head.encode())
    sent = 0
    try:
        # The body is sent whatever the answer, as a client that does not
        # wait for one would.
        while sent < GIB and not answer:
            if chunked:
                s.sendall(b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n")
            else:
                s.sendall(CHUNK)
            sent += len(CHUNK)
    except OSError:
        pass
    reader.join()
    answers.append((answer[0], sent >> 20))
    s.close()


def round_(port, pid, chunked):
    answers = []
    threads = [threading.Thread(target=upload, args=(port, chunked, answers)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kind = "chunked" if chunked else "Content-Length"
    print(f"4 x 1 GiB by {kind}: peak RSS {rss_kib(pid, 'VmHWM') / 1024:.1f} MiB, "
          f"RSS after {rss_kib(pid, 'VmRSS') / 1024:.1f} MiB; answers (status, MiB sent before it): {answers}")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/talon"
    with tempfile.TemporaryDirectory() as home:
        with open(f"{home}/config.toml", "w") as config:
            config.write("[plugins]\nbundled = false\n")
        daemon = subprocess.Popen([binary, "--home", home, "start", "--listen", "127.0.0.1:0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = daemon.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[1])
        print(f"before: RSS {rss_kib(daemon.pid, 'VmRSS') / 1024:.1f} MiB")
        round_(port, daemon.pid, chunked=False)
        round_(port, daemon.pid, chunked=True)
        daemon.terminate()
        daemon.wait()


if __name__ == "__main__":
    main()
