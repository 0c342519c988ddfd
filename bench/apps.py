#!/usr/bin/env python3
"""Benchmark of the application fingerprints and exposure checks, on the daemon zoo.

The zoo (`portgate-lab zoo`, root) runs real daemons from Debian packages in one lab
namespace; its web ports (nginx, Apache, Tomcat with its manager, InfluxDB, Jupyter with and
without a token, Prometheus, Alertmanager, the node exporter, etcd, the Docker Engine API,
RabbitMQ's management plugin) are scanned with `portgate scan --detect --connect`:

1. N runs with the application checks and N runs without (`--no-app-checks`): the median
   wall time of each and what the checks add;
2. per port, from the JSON report: the requests the checks sent and the milliseconds they
   took, the application named, its version and the exposures proven, beside the zoo's
   ground truth;
3. one run with `--try-default-credentials`: the default logins accepted;
4. `nmap -sV` on the same ports (when installed), for scale: the time of the peer's service
   detection, which names no application and proves no exposure.

With `--delay-ms 80` the zoo sits behind the lab's delay line (every packet held 80 ms: a
real round trip), where each request costs a connect and an exchange.

Results: Markdown on stdout and in bench/results/apps/latest.md (delay-<ms>ms.md behind a
delay line). Scans only the zoo's lab address (198.18.0.0/15).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import select
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/portgate"
LAB = ROOT / "target/release/portgate-lab"
LAB_NET = ipaddress.ip_network("198.18.0.0/15")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start_zoo(delay_ms: float) -> tuple[subprocess.Popen, dict]:
    argv = [str(LAB), "zoo", "--ignore-stdin"]
    if delay_ms > 0:
        argv += ["--delay", f"{delay_ms:g}ms"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 180)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        raise SystemExit(f"portgate-lab zoo printed nothing: {proc.stderr.read()[-800:]}")
    lab = json.loads(line)
    if ipaddress.ip_address(lab["ipv4"]) not in LAB_NET:
        proc.kill()
        raise SystemExit(f"zoo address {lab['ipv4']} is not a lab address")
    for skip in lab.get("skipped", []):
        log(f"zoo: {skip['daemon']} skipped: {skip['reason']}")
    return proc, lab


def scan(ip: str, ports: list[int], extra: list[str]) -> tuple[float, dict]:
    argv = [str(BIN), "scan", ip, "-p", ",".join(map(str, ports)), "--detect", "--connect",
            "-o", "json", *extra]
    start = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {out.returncode}: {out.stderr[-800:]}")
    return took, json.loads(out.stdout)


def detected(report: dict, port: int) -> dict:
    for host in report["hosts"]:
        for p in host["ports"]:
            if p["port"] == port:
                return p.get("detected") or {}
    return {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--delay-ms", type=float, default=0,
                    help="put the zoo behind a delay line of this many ms (a real round trip)")
    ap.add_argument("--no-nmap", action="store_true", help="leave out the nmap -sV row")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "portgate", "-p", "portgate-lab"],
                       cwd=ROOT, check=True)
    proc, lab = start_zoo(args.delay_ms)
    try:
        ip = lab["ipv4"]
        web = [s for s in lab["services"]
               if s["transport"] == "plain" and s["service"] == "http"]
        ports = sorted(s["port"] for s in web)
        truth = {s["port"]: s for s in web}
        log(f"zoo at {ip}: {len(ports)} web ports {ports}")
        with_apps, without = [], []
        reports = []
        for i in range(args.runs):
            t, r = scan(ip, ports, [])
            with_apps.append(t)
            reports.append(r)
            t, _ = scan(ip, ports, ["--no-app-checks"])
            without.append(t)
            log(f"run {i + 1}: {with_apps[-1]:.2f} s with the checks, {without[-1]:.2f} s without")
        _, logins = scan(ip, ports, ["--try-default-credentials"])
        nmap_t = None
        if shutil.which("nmap") and not args.no_nmap:
            start = time.monotonic()
            subprocess.run(["nmap", "-sV", "-Pn", "-n", "-p", ",".join(map(str, ports)), ip],
                           capture_output=True, timeout=900)
            nmap_t = time.monotonic() - start
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    med_with, med_without = statistics.median(with_apps), statistics.median(without)
    rows = []
    right = 0
    total_requests = 0
    for port in ports:
        t = truth[port]
        want = t.get("application")
        per_run = [detected(r, port).get("applications") or {} for r in reports]
        requests = statistics.median([a.get("requests", 0) for a in per_run])
        millis = statistics.median([a.get("elapsed_ms", 0) for a in per_run])
        total_requests += requests
        found = (per_run[-1].get("found") or [{}])[0] if per_run else {}
        exposures = sorted(e["check"] for e in found.get("exposures", [])
                           if e["kind"] != "default-credentials")
        login_app = ((detected(logins, port).get("applications") or {}).get("found") or [{}])[0]
        accepted = [e["proof"].get("credentials", "") for e in login_app.get("exposures", [])
                    if e["kind"] == "default-credentials"]
        if want:
            ok = (found.get("id") == want["id"]
                  and (found.get("version") == want["version"]
                       or (found.get("version") is None and want.get("default_login")))
                  and exposures == sorted(want["exposures"])
                  and bool(accepted) == bool(want.get("default_login")))
        else:
            ok = not found
        right += ok
        rows.append(
            f"| {port} | {t['daemon']} | {found.get('id', '—')} | {found.get('version') or '—'} "
            f"| {', '.join(exposures) or '—'} | {', '.join(a.split(' ')[0] for a in accepted) or '—'} "
            f"| {requests:g} | {millis:g} | {'yes' if ok else 'NO'} |")

    path = (f"behind a delay line of {args.delay_ms:g} ms" if args.delay_ms > 0
            else "on the zero-latency lab")
    out = [f"## Application fingerprints and exposure checks (daemon zoo, {path})", "",
           f"{len(ports)} web ports of the zoo ({time.strftime('%Y-%m-%d')}), "
           f"`portgate scan --detect --connect`, median of {args.runs} runs each.", "",
           "| | wall time |", "|---|---|",
           f"| with the application checks | {med_with:.2f} s |",
           f"| without (`--no-app-checks`) | {med_without:.2f} s |",
           f"| added by the checks | {med_with - med_without:+.2f} s "
           f"({total_requests:g} requests in all) |"]
    if nmap_t is not None:
        out.append(f"| nmap -sV -Pn, same ports (names no application) | {nmap_t:.2f} s |")
    out += ["", "| port | daemon | application | version | exposures proven | default login "
            "(`--try-default-credentials`) | requests | ms | as the zoo's truth |",
            "|---|---|---|---|---|---|---|---|---|", *rows, "",
            f"{right}/{len(ports)} ports exactly as the ground truth (application, version, "
            "exposures, default login)."]
    text = "\n".join(out) + "\n"
    results = ROOT / "bench/results/apps"
    results.mkdir(parents=True, exist_ok=True)
    name = f"delay-{args.delay_ms:g}ms.md" if args.delay_ms > 0 else "latest.md"
    (results / name).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
