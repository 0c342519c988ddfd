#!/usr/bin/env python3
"""Benchmark of `portgate serve` on loopback only.

1. Latency of the synchronous endpoint (`GET /v1/port-scanner`, 3 ports, skipCache=true, so
   every request scans) next to the same scan run as a process (`portgate scan --detect`),
   p50/p99 of N runs each, and of a cached answer.
2. Throughput of cached answers with 1,000 concurrent clients (`wrk`, Debian), with the
   count of non-2xx answers (must be 0).
3. 50 scans submitted back to back (each a loopback /24 × 1,000 ports), each configuration
   on a fresh server: the time until all are done, the server's peak RSS, the most scans
   seen scanning and waiting for memory together, and the slowest submission — with the
   defaults (a worker per core, a 1 GiB scan memory budget), with 4 workers, with 50
   workers and a budget too large to bind, and with 50 workers and a 64 MiB budget.

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


def start_server(portgate: Path, db: str, work: Path, key: str, extra: list[str]):
    """A server on a free loopback port with `db`; the process and its base URL."""
    port = free_port()
    server = subprocess.Popen(
        [portgate, "serve", "--listen", f"127.0.0.1:{port}", "--db", db,
         "--scope", "127.0.0.0/8", "--addresses-only", "--rate", "100000000",
         "--per-key-scans", "1000", "--cache-ttl", "10m", *extra],
        stdout=subprocess.DEVNULL, stderr=open(work / f"serve-{port}.log", "w"),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if get(f"{base}/healthz", key)[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    return server, base


def metric(text: str, name: str) -> int:
    return int(float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.M).group(1)))


def fifty_scans(portgate: Path, work: Path, label: str, extra: list[str]):
    """50 scans of a loopback /24 × 1,000 ports submitted one after the other to a fresh
    server with `extra` flags: seconds from the first submission until all are done (each
    must succeed with every pair scanned), peak RSS (KB), most scanning and most waiting for
    memory at once (the server's /metrics, sampled every 20 ms), and the slowest submission
    (ms) — how well the API answers beside the scans."""
    db = str(work / f"fifty-{len(label)}-{time.time_ns()}.db")
    key = subprocess.run(
        [portgate, "keys", "create", "--name", "bench", "--db", db],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    server, base = start_server(portgate, db, work, key, extra)
    try:
        start = time.perf_counter()
        slowest_post = 0.0
        ids = []
        for i in range(50):
            body = {"targets": [f"127.3.{i}.0/24"], "ports": "1-1000"}
            t = time.perf_counter()
            status, accepted = post(f"{base}/v1/scans", key, body)
            slowest_post = max(slowest_post, time.perf_counter() - t)
            assert status == 202, accepted
            ids.append(accepted["scanId"])
        scanning = waiting = 0
        while True:
            _, metrics = get(f"{base}/metrics", key)
            text = metrics.decode()
            running = metric(text, 'portgate_jobs{state="running"}')
            queued = metric(text, 'portgate_jobs{state="queued"}')
            scanning = max(scanning, metric(text, "portgate_scans_scanning"))
            waiting = max(waiting, metric(text, "portgate_scans_waiting_for_memory"))
            if running == 0 and queued == 0:
                break
            time.sleep(0.02)
        secs = time.perf_counter() - start
        peak = rss_peak_kb(server.pid)
        statuses = set()
        for i in ids:
            _, body = get(f"{base}/v1/scans/{i}", key)
            view = json.loads(body)
            statuses.add(view["status"])
            assert view["report"]["summary"]["ports_scanned"] == 254_000, view["status"]
        assert statuses == {"succeeded"}, statuses
    finally:
        server.terminate()
        server.wait(timeout=120)
    return secs, peak, scanning, waiting, slowest_post * 1000


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
    server, base = start_server(portgate, db, work, key, [])
    try:
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

    finally:
        server.terminate()
        server.wait(timeout=120)

    # 3. 50 scans at once, each configuration on a fresh server and database.
    fifty = []
    for label, extra in [
        (f"defaults ({len(os.sched_getaffinity(0))} workers, 1 GiB)", []),
        ("4 workers, 1 GiB", ["--workers", "4"]),
        ("50 workers, budget not binding (64 GiB)", ["--workers", "50", "--scan-memory", "64GiB"]),
        ("50 workers, 64 MiB", ["--workers", "50", "--scan-memory", "64MiB"]),
    ]:
        fifty.append((label, extra, *fifty_scans(portgate, work, label, extra)))

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
        "50 scans submitted back to back, each of a loopback /24 (254 addresses) × 1,000 ports "
        "(SYN), each configuration on a fresh server; all done = from the first submission "
        "until the last scan has succeeded:",
        "",
        "| configuration | flags | all done, s | peak RSS MB | most scanning at once | most waiting for memory | slowest POST /v1/scans, ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {label} | `{' '.join(extra) or '(none)'}` | {secs:.1f} | {peak / 1024:.1f} | {scanning} | {waiting} | {slow:.0f} |"
        for label, extra, secs, peak, scanning, waiting, slow in fifty
    ]
    lines.append("")
    text = "\n".join(lines)
    print(text)
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.results_dir) / "latest.md").write_text(text)
    (Path(args.results_dir) / "wrk.txt").write_text(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
