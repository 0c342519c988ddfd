#!/usr/bin/env python3
"""Benchmark of monitoring in `portgate serve`, on loopback only.

1. Port open -> webhook: a schedule every 10 s checks an asset on 127.0.0.1; N times, at a
   random moment, one of its ports starts listening, and the time until the webhook naming
   that port arrives at a local receiver is taken. The floor is the wait for the next slot
   (uniform over 0-10 s, mean 5 s) plus one check.
2. Outbox: M alerts written to the outbox of a store, then a server started on it with a
   webhook route to a local receiver: deliveries per second until all have arrived.
3. Findings evaluated per second for a 1,024-host asset group (127.0.0.0/22, one approved
   port no host listens on: one finding per host per check), from the server's /metrics
   (`portgate_monitor_findings_evaluated_total`, `..._evaluation_microseconds_total`), for
   the first check (every finding opened) and the second (every finding seen again).

Targets: 127.0.0.0/8 only. Results: Markdown on stdout and in bench/results/monitor/latest.md.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Receiver:
    """A webhook receiver on loopback: keeps (arrival time, alert) of every POST."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.lock:
                    outer.got.append((time.perf_counter(), json.loads(body)))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.got)


def serve(portgate: Path, work: Path, config: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    path = work / f"serve-{port}.yaml"
    path.write_text(f"listen: 127.0.0.1:{port}\n" + config)
    proc = subprocess.Popen(
        [portgate, "serve", "--config", str(path)],
        stdout=subprocess.DEVNULL, stderr=open(work / f"serve-{port}.log", "w"),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                return proc, base
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the server did not start: {(work / f'serve-{port}.log').read_text()}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def webhook(url: str) -> str:
    return (f"alerts:\n  - {{name: ops, webhook: {{url: \"{url}\", "
            f"secret: \"bench-secret-0123456789abcdef\"}}}}\n")


def latency(portgate: Path, work: Path, samples: int) -> list[float]:
    receiver = Receiver()
    ports = [free_port() for _ in range(samples)]
    manifest = work / "latency.yaml"
    manifest.write_text(
        "version: 1\nassets:\n  - name: app\n    targets: [127.0.0.1]\n"
        f"    ports: \"T:{','.join(map(str, ports))}\"\n")
    proc, _ = serve(portgate, work, (
        f"database: {work / 'latency.db'}\nscope: [127.0.0.0/8]\naddresses_only: true\n"
        f"manifests: [{manifest}]\n"
        "schedules:\n  - {name: fast, cron: \"*/10 * * * * *\"}\n" + webhook(receiver.url)))
    held = []
    took = []
    try:
        time.sleep(11)  # the first check, with nothing listening
        for port in ports:
            time.sleep(random.uniform(0, 10))
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(16)
            held.append(s)
            opened = time.perf_counter()
            deadline = opened + 60
            while time.perf_counter() < deadline:
                with receiver.lock:
                    hit = [t for t, a in receiver.got
                           if any(i["finding"]["port"] == port for i in a["items"])]
                if hit:
                    took.append(hit[0] - opened)
                    break
                time.sleep(0.01)
            else:
                raise SystemExit(f"no alert for port {port} within 60 s")
    finally:
        stop(proc)
        for s in held:
            s.close()
    return took


def outbox(portgate: Path, work: Path, count: int) -> tuple[float, int]:
    receiver = Receiver()
    db = work / "outbox.db"
    subprocess.run([portgate, "window", "list", "--db", str(db)], check=True,
                   capture_output=True)
    now = int(time.time() * 1000)
    with sqlite3.connect(db) as c:
        for i in range(count):
            mid = f"bench-{i}"
            alert = json.dumps({
                "type": "portgate.alert.v1", "id": mid, "kind": "opened", "title": "bench",
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "severity": "info", "items": []})
            c.execute(
                "INSERT INTO outbox (channel, message_id, alert, created_at_ms, "
                "next_attempt_at_ms, status) VALUES ('ops', ?, ?, ?, ?, 'pending')",
                (mid, alert, now, now))
    start = time.perf_counter()
    proc, _ = serve(portgate, work, (
        f"database: {db}\nscope: [127.0.0.0/8]\naddresses_only: true\n" + webhook(receiver.url)))
    try:
        while receiver.count() < count:
            if time.perf_counter() - start > 300:
                raise SystemExit(f"{receiver.count()} of {count} delivered after 300 s")
            time.sleep(0.01)
        took = time.perf_counter() - start
        time.sleep(2)
        ids = {a["id"] for _, a in receiver.got}
        assert len(ids) == count and receiver.count() == count, "lost or repeated"
    finally:
        stop(proc)
    return took, count


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def evaluation(portgate: Path, work: Path) -> list[tuple[int, float]]:
    port = free_port()
    manifest = work / "group.yaml"
    manifest.write_text(
        "version: 1\nassets:\n  - name: group\n    targets: [127.0.0.0/22]\n"
        f"    ports: \"T:{port}\"\n    on_missing: warn\n"
        f"    approved:\n      - {{port: {port}, justification: bench}}\n")
    proc, base = serve(portgate, work, (
        f"database: {work / 'group.db'}\nscope: [127.0.0.0/8]\naddresses_only: true\n"
        f"manifests: [{manifest}]\n"
        "schedules:\n  - {name: fast, cron: \"*/15 * * * * *\"}\n"))
    runs = []
    try:
        seen = 0.0
        spent = 0.0
        deadline = time.perf_counter() + 120
        while len(runs) < 2 and time.perf_counter() < deadline:
            n = metric(base, "portgate_monitor_findings_evaluated_total")
            if n > seen:
                us = metric(base, "portgate_monitor_evaluation_microseconds_total")
                runs.append((int(n - seen), (us - spent) / 1e6))
                seen, spent = n, us
            time.sleep(0.2)
    finally:
        stop(proc)
    if len(runs) < 2:
        raise SystemExit(f"two checks did not finish within 120 s: {runs}")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--portgate", default=str(ROOT / "target/release/portgate"))
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--alerts", type=int, default=2000)
    args = parser.parse_args()
    portgate = Path(args.portgate)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        took = latency(portgate, work, args.samples)
        sent, n = outbox(portgate, work, args.alerts)
        runs = evaluation(portgate, work)
    lines = [
        "| measure | result |",
        "|---|---|",
        f"| port open -> webhook, 10 s schedule, {len(took)} samples | "
        f"median {statistics.median(took):.2f} s, max {max(took):.2f} s "
        f"(floor: the wait for the next slot, 0-10 s, plus one check) |",
        f"| outbox -> local webhook receiver, {n} alerts | {n / sent:,.0f} deliveries/s "
        f"({sent:.2f} s from the server's start) |",
    ]
    for i, (count, secs) in enumerate(runs):
        what = "first check (opened)" if i == 0 else "second check (seen again)"
        lines.append(f"| findings evaluated, 1,024-host group, {what} | "
                     f"{count / secs:,.0f} findings/s ({count} in {secs * 1000:.0f} ms) |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "bench/results/monitor"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.md").write_text(text)


if __name__ == "__main__":
    main()
