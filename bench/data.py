#!/usr/bin/env python3
"""Benchmark of imported data: the vulnerability index and enrichment. Loopback only.

1. Vulnerability index (`cargo run --release -p portgate-pipeline --example vuln_bench`): a
   generated NVD 2.0 feed of 250,000 CVEs and 1,000,000 cpeMatch entries imported into a
   SQLite history database (time, size), imported again (nothing changes), then 10,000
   detected services (half OpenSSH with Debian banners, half products known by name only)
   looked up the way `scan --detect --db` does.
2. Enrichment of a `check` of 10 host names (h0..h9.bench.test on 127.0.0.1..10, each with a
   listener that sends an SSH banner at once): names from a dnsmasq on loopback
   (`--dns-server`), registrations from a local RDAP server through a bootstrap file, an
   iptoasn table in the database. Medians of N runs of: no enrichment; `--enrich` with an
   empty cache (one RDAP request: the names share the registrable domain); `--enrich` with the
   cache warm.

Results: Markdown on stdout and in bench/results/data/latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/portgate"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def vuln_bench(cves: int, services: int) -> dict:
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "portgate-pipeline", "--example", "vuln_bench", "--",
         "--cves", str(cves), "--services", str(services)],
        cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


class Rdap(ThreadingHTTPServer):
    requests = 0


def rdap_server() -> Rdap:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.server.requests += 1  # type: ignore[attr-defined]
            name = self.path.rsplit("/", 1)[-1]
            body = json.dumps({
                "objectClassName": "domain", "ldhName": name, "status": ["active"],
                "entities": [{"objectClassName": "entity", "roles": ["registrar"],
                              "vcardArray": ["vcard", [["fn", {}, "text", "Bench Registrar"]]]}],
                "events": [{"eventAction": "expiration", "eventDate": "2099-01-01T00:00:00Z"}],
                "nameservers": [{"objectClassName": "nameserver", "ldhName": "ns1.bench.test"}],
            }).encode()
            self.send_response(200)
            self.send_header("content-type", "application/rdap+json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = Rdap(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def banner_listeners(port: int, hosts: int) -> list[socket.socket]:
    socks = []
    for i in range(1, hosts + 1):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((f"127.0.0.{i}", port))
        s.listen(64)
        socks.append(s)

        def serve(sock: socket.socket) -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                try:
                    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
                    conn.settimeout(2)
                    conn.recv(64)
                except OSError:
                    pass
                conn.close()

        threading.Thread(target=serve, args=(s,), daemon=True).start()
    return socks


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=False, capture_output=True)
    return (time.perf_counter() - start) * 1000


def enrich_bench(runs: int, hosts: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="portgate-bench-data-"))
    dnsmasq = None
    try:
        port = free_port()
        listeners = banner_listeners(port, hosts)
        dns_port = free_port()
        records = [f"--host-record=h{i}.bench.test,127.0.0.{i + 1}" for i in range(hosts)]
        dnsmasq = subprocess.Popen(
            [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1", "--pid-file=",
             "--local=/bench.test/", f"--port={dns_port}", *records],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        rdap = rdap_server()
        bootstrap = work / "dns.json"
        bootstrap.write_text(json.dumps({"version": "1.0", "publication": "2026-11-01T00:00:00Z",
                                         "services": [[["test"], [f"http://127.0.0.1:{rdap.server_address[1]}/"]]]}))
        table = work / "ip2asn-v4.tsv"
        table.write_text("127.0.0.0\t127.255.255.255\t64500\tZZ\tLOOPBACK-NET\n")
        db = str(work / "h.db")
        subprocess.run([str(BIN), "data", "import", "asn", str(table), "--db", db], check=True, capture_output=True)
        assets = "".join(
            f"  - name: h{i}\n    targets: [h{i}.bench.test]\n    ports: T:{port}\n    expected_network: [AS64500]\n"
            f"    approved:\n      - port: {port}\n        service: ssh\n        justification: bench\n"
            for i in range(hosts))
        manifest = work / "exposure.yaml"
        manifest.write_text(f"version: 1\nassets:\n{assets}")
        base = [str(BIN), "check", "--manifest", str(manifest), "--connect", "--dns-server", f"127.0.0.1:{dns_port}"]
        cache = work / "cache.json"
        enrich = ["--enrich", "--rdap-bootstrap", str(bootstrap), "--enrich-cache", str(cache)]
        plain_nodb = [run(base) for _ in range(runs)]
        plain = [run(base + ["--db", db]) for _ in range(runs)]
        cold = []
        for _ in range(runs):
            cache.unlink(missing_ok=True)
            cold.append(run(base + ["--db", db] + enrich))
        warm = [run(base + ["--db", db] + enrich) for _ in range(runs)]
        requests = rdap.requests
        for s in listeners:
            s.close()
        rdap.shutdown()
        return {
            "hosts": hosts, "runs": runs,
            "check_ms": statistics.median(plain_nodb),
            "check_db_asn_ms": statistics.median(plain),
            "check_enrich_cold_ms": statistics.median(cold),
            "check_enrich_cached_ms": statistics.median(warm),
            "rdap_requests": requests,
        }
    finally:
        if dnsmasq:
            dnsmasq.terminate()
            dnsmasq.wait()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cves", type=int, default=250_000)
    ap.add_argument("--services", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--hosts", type=int, default=10)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    v = vuln_bench(args.cves, args.services)
    e = enrich_bench(args.runs, args.hosts)
    mib = 1024 * 1024
    md = f"""### Vulnerability index and enrichment (`python3 bench/data.py`)

| measure | result |
|---|---|
| generated NVD 2.0 feed | {v['cves']:,} CVEs, {v['cpe_matches']:,} cpeMatch entries, {v['feed_bytes'] / mib:,.0f} MiB |
| `data import nvd` of it (parse + store, SQLite) | {v['import_s']:.1f} s ({v['import_records_per_s']:,.0f} records/s, {v['import_added']:,} added) |
| index size in the database | {v['db_bytes'] / mib:,.0f} MiB |
| the same file again | {v['reimport_s']:.1f} s ({v['reimport_unchanged']:,} unchanged, nothing written) |
| {v['services']:,} detected services looked up (`scan --detect --db` path; {v['distinct_services']:,} distinct product/version/banner) | {v['lookup_s']:.2f} s, {v['lookups_per_s']:,.0f} lookups/s ({v['services_with_matches']:,} with matches, {v['matches']:,} matches) |
| of which: reading the {v['lookup_rows']:,} records of the products found / assessing every service | {v['lookup_read_s']:.2f} s / {v['lookup_assess_s']:.2f} s |
| `check` of {e['hosts']} host names, no `--db` (median of {e['runs']}) | {e['check_ms']:.0f} ms |
| same with `--db` holding an ASN table (network of every address, `expected_network: [AS64500]`) | {e['check_db_asn_ms']:.0f} ms |
| same with `--enrich`, empty cache (DNS records of {e['hosts']} names; one RDAP request: they share the registrable domain `bench.test`) | {e['check_enrich_cold_ms']:.0f} ms |
| same with `--enrich`, cache warm | {e['check_enrich_cached_ms']:.0f} ms (+{e['check_enrich_cached_ms'] - e['check_db_asn_ms']:.0f} ms: DNS records of 10 names) |
"""
    print(md)
    out = ROOT / "bench/results/data"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.md").write_text(md)
    (out / "latest.json").write_text(json.dumps({"vuln": v, "enrich": e}, indent=2) + "\n")


if __name__ == "__main__":
    main()
