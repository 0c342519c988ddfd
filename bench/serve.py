#!/usr/bin/env python3
"""Benchmark of `portgate serve` on loopback only.

1. Latency of the synchronous endpoint (`GET /v1/port-scanner`, 3 ports, skipCache=true, so
   every request scans) next to the same scan run as a process (`portgate scan --detect`),
   p50/p99 of N runs each, and of a cached answer.
2. Throughput of cached answers with 1,000 concurrent clients (`wrk`, Debian), with the
   count of non-2xx answers (must be 0).
3. The server's peak RSS while 50 scans run at once (50 workers, each a loopback /24 ×
   1,000 ports).

Targets: 127.0.0.1 only. Results: Markdown on stdout and in bench/results/serve/latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def banner_server() -> tuple[int, int]:
    """A port with an SSH banner (for detection) and two where nothing listens."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1024)
    held = []

    def serve() -> None:
        while True:
            conn, _ = srv.accept()
            try:
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            except OSError:
                pass
            held.append(conn)
            if len(held) > 500:
                for c in held[:400]:
                    c.close()
                del held[:400]

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], free_port()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def get(url: str, key: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"x-api-key": key})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(url: str, key: str, body: dict) -> tuple[int, dict]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={"x-api-key": key, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())


def rss_peak_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50, help="latency samples per row (default 50)")
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--results-dir", default=str(ROOT / "bench/results/serve"))
    args = ap.parse_args()
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    portgate = ROOT / "target/release/portgate"
    if not portgate.exists():
        print("build first: cargo build --release -p portgate", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="pg-serve-bench-"))
    db = str(work / "serve.db")
    key = subprocess.run(
        [portgate, "keys", "create", "--name", "bench", "--db", db],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    port = free_port()
    server = subprocess.Popen(
        [portgate, "serve", "--listen", f"127.0.0.1:{port}", "--db", db,
         "--scope", "127.0.0.0/8", "--addresses-only", "--rate", "100000000",
         "--per-key-scans", "1000", "--workers", "50", "--cache-ttl", "10m"],
        stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if get(f"{base}/healthz", key)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        open_port, closed = banner_server()
        closed2 = free_port()
        ports = f"{open_port},{closed},{closed2}"
        rows = []

        # 1. Latency.
        uncached, cached, process = [], [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            status, body = get(f"{base}/v1/port-scanner?target=127.0.0.1&ports={ports}&skipCache=true", key)
            uncached.append(time.perf_counter() - t)
            assert status == 200, body
            answer = json.loads(body)
            assert answer["summary"]["open"] == 1, answer
        for _ in range(args.runs):
            t = time.perf_counter()
            status, _ = get(f"{base}/v1/port-scanner?target=127.0.0.1&ports={ports}", key)
            cached.append(time.perf_counter() - t)
            assert status == 200
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run([portgate, "scan", "127.0.0.1", "-p", ports, "--detect", "-o", "json"],
                           check=True, capture_output=True)
            process.append(time.perf_counter() - t)
        for name, values in [
            ("GET /v1/port-scanner, skipCache=true (scans, with detection)", uncached),
            ("`portgate scan 127.0.0.1 -p <3 ports> --detect` as a process", process),
            ("GET /v1/port-scanner, cached", cached),
        ]:
            rows.append((name, pct(values, 50) * 1000, pct(values, 99) * 1000))

        # 2. Cached throughput with 1,000 concurrent clients.
        wrk = subprocess.run(
            ["wrk", "-t2", "-c1000", f"-d{args.wrk_seconds}s", "--latency", "-H", f"x-api-key: {key}",
             f"{base}/v1/port-scanner?target=127.0.0.1&ports={ports}"],
            capture_output=True, text=True,
        )
        out = wrk.stdout
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        errors = re.search(r"Socket errors:(.*)", out)
        p99 = re.search(r"99%\s+([\d.]+\w+)", out)

        # 3. RSS while 50 scans run.
        ids = []
        for i in range(50):
            body = {"targets": [f"127.3.{i}.0/24"], "ports": "1-1000"}
            _, accepted = post(f"{base}/v1/scans", key, body)
            ids.append(accepted["scanId"])
        start = time.perf_counter()
        peak_running = 0
        while True:
            # The server's own count of running jobs, sampled every 20 ms.
            _, metrics = get(f"{base}/metrics", key)
            text = metrics.decode()
            running = int(re.search(r'portgate_jobs\{state="running"\} (\d+)', text).group(1))
            queued = int(re.search(r'portgate_jobs\{state="queued"\} (\d+)', text).group(1))
            peak_running = max(peak_running, running)
            if running == 0 and queued == 0:
                break
            time.sleep(0.02)
        fifty_s = time.perf_counter() - start
        peak = rss_peak_kb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=120)

    lines = [
        "# portgate serve benchmark (loopback)",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: nproc {os.cpu_count()}; "
        f"{args.runs} samples per latency row",
        f"- command: `bench/serve.py --runs {args.runs} --wrk-seconds {args.wrk_seconds}`",
        "",
        "| request | p50 ms | p99 ms |",
        "|---|---:|---:|",
    ]
    lines += [f"| {n} | {a:.1f} | {b:.1f} |" for n, a, b in rows]
    lines += [
        "",
        f"Cached answers, 1,000 concurrent clients (`wrk -t2 -c1000 -d{args.wrk_seconds}s`): "
        f"{rps.group(1) if rps else '?'} requests/s, p99 {p99.group(1) if p99 else '?'}, "
        f"non-2xx answers: {non2xx.group(1) if non2xx else 0}"
        f"{', socket errors:' + errors.group(1) if errors else ''}.",
        "",
        f"50 scans submitted at once, each of a loopback /24 (254 addresses) × 1,000 ports "
        f"(50 workers; up to {peak_running} seen running "
        f"together): all done in {fifty_s:.1f} s; the server's peak RSS {peak / 1024:.1f} MB.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.results_dir) / "latest.md").write_text(text)
    (Path(args.results_dir) / "wrk.txt").write_text(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
