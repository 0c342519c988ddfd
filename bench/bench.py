#!/usr/bin/env python3
"""portgate benchmark: portgate beside nmap, masscan and RustScan on lab hosts.

Started by `bench/run`, which checks for root, installs missing peers, builds
the release binaries and runs `portgate-lab clean` first. This script starts
one lab host per scenario (`portgate-lab up`), runs every selected tool on it
`--runs` times, compares what each tool reports with the lab's ground truth
(TCP scenarios: the open ports; UDP scenarios: the state of every scanned
port), and writes `bench/results/latest.md` and `latest.json`.

Network safety: every scan command is built by `scan_command` (or, for the
untimed top1000 list, `top1000_ports`), which refuse any target outside
198.18.0.0/15 (the lab's IPv4 range). Nothing else is ever contacted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LAB_NET_V4 = ipaddress.ip_network("198.18.0.0/15")

UDP_FIREWALLED_PORTS = [53, 123, 161, 1000, 1001, *range(5000, 5010)]   # 15 ports
UDP_RATELIMITED_PORTS = [53, 123, 161, *range(2000, 2020)]              # 23 ports

SCENARIOS = {
    # kind "tcp": truth is the lab's open TCP ports; ports None = all 65,535,
    # "top1000" = portgate's list. kind "udp": truth is every port's state.
    "open": {"kind": "tcp", "profile": "open", "ports": None,
             "title": "open, 65,535 ports"},
    "firewalled": {"kind": "tcp", "profile": "firewalled", "ports": None,
                   "title": "firewalled, 65,535 ports"},
    "lossy": {"kind": "tcp", "profile": "lossy", "ports": None,
              "title": "lossy, 65,535 ports"},
    "top1000": {"kind": "tcp", "profile": "firewalled", "ports": "top1000",
                "title": "firewalled, 1,000-port list"},
    # Real round trips: `portgate-lab up --delay D [--path-loss P]` holds every
    # packet reaching the lab host for D (the scenarios above are the 0 ms rows).
    "wan20-open": {"kind": "tcp", "profile": "open", "ports": None, "delay_ms": 20,
                   "title": "open, 65,535 ports, RTT 20 ms"},
    "wan80-open": {"kind": "tcp", "profile": "open", "ports": None, "delay_ms": 80,
                   "title": "open, 65,535 ports, RTT 80 ms"},
    "wan200-open": {"kind": "tcp", "profile": "open", "ports": None, "delay_ms": 200,
                    "title": "open, 65,535 ports, RTT 200 ms"},
    "wan80-firewalled": {"kind": "tcp", "profile": "firewalled", "ports": None, "delay_ms": 80,
                         "title": "firewalled, 65,535 ports, RTT 80 ms"},
    "wan80-loss2": {"kind": "tcp", "profile": "open", "ports": None, "delay_ms": 80,
                    "path_loss": 0.02, "title": "open, 65,535 ports, RTT 80 ms, 2 % path loss"},
    "wan80-top1000": {"kind": "tcp", "profile": "firewalled", "ports": "top1000", "delay_ms": 80,
                      "title": "firewalled, 1,000-port list, RTT 80 ms"},
    # kind "network": `portgate-lab net`, one namespace answering for a /20 of
    # 198.19.0.0/16 (dark, RST-only, firewalled and open hosts drawn from the
    # seed); truth is every (address, port) state from its truth file.
    "net4096": {"kind": "network", "hosts": 4096, "seed": 1,
                "title": "network, 4,096 hosts × 100 ports"},
    "net4096-wan80": {"kind": "network", "hosts": 4096, "seed": 1, "delay_ms": 80,
                      "title": "network, 4,096 hosts × 100 ports, RTT 80 ms"},
    "udp": {"kind": "udp", "profile": "firewalled", "ports": UDP_FIREWALLED_PORTS,
            "title": "UDP, firewalled, 15 ports"},
    "udp-ratelimited": {"kind": "udp", "profile": "open", "ports": UDP_RATELIMITED_PORTS,
                        "title": "UDP, open (ICMP rate limit), 23 ports"},
    # kind "detect": real daemons (`portgate-lab zoo`), service detection on their ports.
    "zoo": {"kind": "detect", "profile": "open", "ports": None,
            "title": "daemon zoo, service detection"},
}
# The same host profiles at the other round trips (20 and 200 ms).
for _rtt in (20, 200):
    SCENARIOS.setdefault(f"wan{_rtt}-firewalled", {
        "kind": "tcp", "profile": "firewalled", "ports": None, "delay_ms": _rtt,
        "title": f"firewalled, 65,535 ports, RTT {_rtt} ms"})
    SCENARIOS[f"wan{_rtt}-loss2"] = {
        "kind": "tcp", "profile": "open", "ports": None, "delay_ms": _rtt, "path_loss": 0.02,
        "title": f"open, 65,535 ports, RTT {_rtt} ms, 2 % path loss"}
    SCENARIOS[f"wan{_rtt}-top1000"] = {
        "kind": "tcp", "profile": "firewalled", "ports": "top1000", "delay_ms": _rtt,
        "title": f"firewalled, 1,000-port list, RTT {_rtt} ms"}
SCENARIOS["net4096-wan20"] = {"kind": "network", "hosts": 4096, "seed": 1, "delay_ms": 20,
                              "title": "network, 4,096 hosts × 100 ports, RTT 20 ms"}
SCENARIOS["net4096-wan200"] = {"kind": "network", "hosts": 4096, "seed": 1, "delay_ms": 200,
                               "title": "network, 4,096 hosts × 100 ports, RTT 200 ms"}
SCENARIO_TITLES = {name: sc["title"] for name, sc in SCENARIOS.items()}

TCP_TOOLS = ["portgate-connect", "portgate-syn", "portgate-syn-100k", "nmap-sT", "nmap-sS",
             "rustscan", "masscan", "masscan-wait2"]
UDP_TOOLS = ["portgate-udp", "nmap-sU"]
DETECT_TOOLS = ["portgate-detect", "nmap-sV"]
TOOLS = TCP_TOOLS + UDP_TOOLS + DETECT_TOOLS
TOOL_KIND = {**{t: "tcp" for t in TCP_TOOLS}, **{t: "udp" for t in UDP_TOOLS},
             **{t: "detect" for t in DETECT_TOOLS}}
# The TCP tools that run in the many-host ("network") scenarios. RustScan is
# left out; masscan only with --wait 2; nmap -sS with --max-retries 1.
NET_TOOLS = ["portgate-connect", "portgate-syn", "portgate-syn-100k", "nmap-sS",
             "masscan-wait2"]
PORTGATE_TOOLS = ["portgate-connect", "portgate-syn", "portgate-syn-100k", "portgate-udp",
                  "portgate-detect"]
# `--tools` shorthands
TOOL_ALIASES = {"portgate": PORTGATE_TOOLS}

# Ratios compare like with like: the unprivileged connect-style scanners with
# portgate's connect scan, the raw-packet SYN scanners with its SYN scan, the
# UDP scanners with its UDP scan.
RATIO_REF = {
    "portgate-connect": "portgate-connect",
    "nmap-sT": "portgate-connect",
    "rustscan": "portgate-connect",
    "portgate-syn": "portgate-syn",
    # the SYN scan held to masscan's --rate 100000, for a same-rate comparison
    "portgate-syn-100k": "portgate-syn",
    "nmap-sS": "portgate-syn",
    "masscan": "portgate-syn",
    "masscan-wait2": "portgate-syn",
    "portgate-udp": "portgate-udp",
    "nmap-sU": "portgate-udp",
    "portgate-detect": "portgate-detect",
    "nmap-sV": "portgate-detect",
}

# Pause between two runs. In the UDP scenarios every closed port costs one
# ICMP port unreachable from the lab host, which the kernel rate-limits per
# peer with a token bucket (1 per second, burst 6, full again after 6 s);
# 7 s lets every run start with a full bucket whatever ran before it.
PAUSE_S = {"tcp": 0.5, "network": 1.0, "udp": 7.0, "detect": 1.0}

# The physical floor of a TCP row: every probe sent at masscan's --rate
# 100000 (the same-rate comparison), one round trip, one timeout (portgate's
# shortest, --min-rtt-timeout 100ms).
FLOOR_RATE_PPS = 100_000
FLOOR_TIMEOUT_S = 0.1

# A scenario with a delay line is refused (its figures marked as not valid)
# when the delay line itself was the bottleneck: packets dropped in the
# kernel (NFQUEUE full) or a packet released more than this late.
DELAY_MAX_LATENESS_US = 20_000


class Interrupted(Exception):
    """Raised from the SIGTERM/SIGHUP handler so the cleanup in `finally` runs."""


# --------------------------------------------------------------------------
# Processes this script started (and only those) are tracked here so the
# cleanup can signal them by pid.
LAB_PROCS: list[subprocess.Popen] = []
TOOL_PROC: list[subprocess.Popen] = []  # at most one: the tool running now


def log(msg: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {msg}", file=sys.stderr, flush=True)


def target_dir() -> Path:
    env = os.environ.get("CARGO_TARGET_DIR")
    return Path(env) if env else ROOT / "target"


def find_exe(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    cargo_bin = Path.home() / ".cargo" / "bin" / name
    return str(cargo_bin) if cargo_bin.exists() else None


# --------------------------------------------------------------------------
# Safety guard

def assert_lab_v4(addr: str, what: str = "target") -> str:
    """Refuse any address outside the lab's 198.18.0.0/15."""
    ip = ipaddress.ip_address(addr)
    if ip.version != 4 or ip not in LAB_NET_V4:
        raise SystemExit(f"refusing to scan: {what} {addr} is not inside {LAB_NET_V4}")
    return str(ip)


def assert_lab_v4_net(prefix: str, what: str = "target network") -> str:
    """Refuse any network that is not wholly inside the lab's 198.18.0.0/15."""
    net = ipaddress.ip_network(prefix, strict=True)
    if net.version != 4 or not net.subnet_of(LAB_NET_V4):
        raise SystemExit(f"refusing to scan: {what} {prefix} is not inside {LAB_NET_V4}")
    return str(net)


def lab_target(lab: dict) -> str:
    """The scan target of a lab: the host's address, or a lab network's prefix
    (checked to be inside 198.18.0.0/15 either way)."""
    if "prefix" in lab:
        return assert_lab_v4_net(lab["prefix"])
    return assert_lab_v4(lab["ipv4"])


def compress_ports(ports: list[int]) -> str:
    """53,123,1000,1001,5000,5001,5002 -> "53,123,1000,1001,5000-5002"."""
    ps = sorted(set(ports))
    parts = []
    i = 0
    while i < len(ps):
        j = i
        while j + 1 < len(ps) and ps[j + 1] == ps[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{ps[i]}-{ps[j]}")
        else:
            parts.extend(str(x) for x in ps[i:j + 1])
        i = j + 1
    return ",".join(parts)


def scan_command(tool: str, lab: dict, ports: list[int] | None, outfile: Path,
                 exes: dict[str, str]) -> tuple[list[str], bool]:
    """The command line of one run; returns (argv, output_on_stdout).

    `ports` None means all 65,535 ports, else an explicit list (TCP, or UDP
    for the UDP tools). Every command targets only `lab["ipv4"]` (a lab
    host) or `lab["prefix"]` (a lab network), checked here first.
    """
    ip = lab_target(lab)
    network = "prefix" in lab
    plist = None if ports is None else ",".join(str(p) for p in ports)
    if tool in ("portgate-connect", "portgate-syn", "portgate-syn-100k"):
        mode = ["--connect"] if tool == "portgate-connect" else ["--syn"]
        if tool == "portgate-syn-100k":
            mode += ["--rate", "100000"]
        return [exes["portgate"], "scan", ip, "-p", plist or "-", *mode, "-o", "json",
                "--output-file", str(outfile), "--no-progress"], False
    if tool in UDP_TOOLS:
        if not ports:
            raise ValueError(f"{tool} needs an explicit port list")
        if tool == "portgate-udp":
            return [exes["portgate"], "scan", ip, "-p", "U:" + compress_ports(ports),
                    "--all-ports", "-o", "json", "--output-file", str(outfile),
                    "--no-progress"], False
        return [exes["nmap"], "-sU", "-n", "-Pn", "-p", compress_ports(ports), ip,
                "-oX", str(outfile)], False
    if tool == "portgate-detect":
        return [exes["portgate"], "scan", ip, "-p", plist or "-", "--connect", "--detect",
                "-o", "json", "--output-file", str(outfile), "--no-progress"], False
    if tool == "nmap-sV":
        return [exes["nmap"], "-sV", "-n", "-Pn", "-p", plist or "-", ip,
                "-oX", str(outfile)], False
    if tool in ("nmap-sT", "nmap-sS"):
        flag = "-sT" if tool == "nmap-sT" else "-sS"
        # -v: only for the closing "Raw packets sent: N" line (the probes sent)
        return [exes["nmap"], flag, "-T4", *(["--max-retries", "1"] if network else []),
                "-n", "-Pn", "-v",
                *(["-p-"] if plist is None else ["-p", plist]),
                ip, "-oG", str(outfile)], False
    if tool == "rustscan":
        if network:
            raise ValueError("rustscan is not run on lab networks")
        # -g: greppable, ports only, never runs nmap; -n: ignore ~/.rustscan.toml
        return [exes["rustscan"], "-a", ip,
                *(["-r", "1-65535"] if plist is None else ["-p", plist]),
                "-b", "4500", "-t", "1500", "--ulimit", "5000",
                "-g", "-n", "--no-banner"], True
    if tool in ("masscan", "masscan-wait2"):
        host_ip = assert_lab_v4(lab["host_ipv4"], "adapter ip")
        iface = lab["host_interface"]
        if not re.fullmatch(r"pgh[0-9a-f]+", iface):
            raise SystemExit(f"refusing to scan: adapter {iface!r} is not a lab veth")
        if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", lab["target_mac"]):
            raise SystemExit(f"bad target MAC {lab['target_mac']!r}")
        argv = [exes["masscan"], ip, "-p", "1-65535" if plist is None else plist,
                "--rate", "100000", "-oL", str(outfile),
                "--adapter", iface, "--adapter-ip", host_ip,
                "--router-mac", lab["target_mac"]]
        if tool == "masscan-wait2":
            argv += ["--wait", "2"]
        return argv, False
    raise ValueError(tool)


# --------------------------------------------------------------------------
# Output parsers. TCP: each returns the set of ports reported open. UDP: the
# state of every port the tool reported.

def parse_portgate_states(path: Path, protocol: str) -> dict[int, str]:
    data = json.loads(path.read_text())
    hosts = data.get("hosts") or []
    if not hosts:
        return {}
    return {p["port"]: p["state"] for p in hosts[0].get("ports", [])
            if p.get("protocol", "tcp") == protocol}


def parse_portgate(path: Path) -> set[int]:
    return {port for port, state in parse_portgate_states(path, "tcp").items()
            if state == "open"}


def expand_ports(spec: str) -> list[int]:
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def parse_nmap_xml_states(path: Path, protocol: str, scanned: list[int]) -> dict[int, str]:
    """Every port's state from nmap -oX: the listed <port>s, then <extraports>
    (nmap folds a state held by more than 25 ports into one <extraports>; its
    <extrareasons ports="..."> name them, else the single group covers the rest)."""
    root = ET.parse(path).getroot()
    host = root.find("host")
    if host is None:
        return {}
    states: dict[int, str] = {}
    ports_el = host.find("ports")
    if ports_el is None:
        return states
    for port in ports_el.findall("port"):
        if port.get("protocol") != protocol:
            continue
        st = port.find("state")
        if st is not None:
            states[int(port.get("portid"))] = st.get("state")
    extras = ports_el.findall("extraports")
    for ex in extras:
        for reason in ex.findall("extrareasons"):
            if reason.get("ports") and reason.get("proto", protocol) == protocol:
                for p in expand_ports(reason.get("ports")):
                    states.setdefault(p, ex.get("state"))
    if len(extras) == 1:
        for p in scanned:
            states.setdefault(p, extras[0].get("state"))
    return states


def parse_nmap_grepable(path: Path) -> set[int]:
    found = set()
    for line in path.read_text(errors="replace").splitlines():
        if "Ports:" in line:
            found |= {int(m) for m in re.findall(r"(\d+)/open/tcp/", line)}
    return found


def parse_rustscan(stdout: str) -> set[int]:
    found = set()
    for m in re.finditer(r"->\s*\[([0-9,\s]*)\]", stdout):
        found |= {int(x) for x in m.group(1).split(",") if x.strip()}
    return found


def parse_masscan_list(path: Path) -> set[int]:
    found = set()
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "open" and parts[1] == "tcp":
            found.add(int(parts[2]))
    return found


# Per-port TCP states, per address (for false filtered / false closed, and
# the many-host scenarios). portgate's JSON lists every port of a state with
# at most 25 ports on a host and summarises the rest (`not_shown`); nmap -oG
# lists every port outside its one `Ignored State: S (N)`. With at most one
# summarised state per host every scanned port's state is known exactly.

def fill_summarised(states: dict[int, str], summarised: dict[str, int],
                    scanned) -> bool:
    """Give the ports not listed the one summarised state; False (and the
    listed ports only) when that cannot be done exactly."""
    rest = [p for p in scanned if p not in states]
    if not rest:
        return True
    summarised = {k: v for k, v in summarised.items() if v}
    if len(summarised) == 1:
        (state, n), = summarised.items()
        if n == len(rest):
            states.update((p, state) for p in rest)
            return True
    return False


def parse_portgate_tcp_states(path: Path, scanned) -> dict[str, tuple[dict[int, str], bool]]:
    """address -> (every scanned TCP port's state, exact) from portgate's JSON."""
    out = {}
    for host in json.loads(path.read_text()).get("hosts") or []:
        states = {p["port"]: p["state"] for p in host.get("ports", [])
                  if p.get("protocol", "tcp") == "tcp"}
        exact = fill_summarised(states, host.get("not_shown") or {}, scanned)
        out[host["ip"]] = (states, exact)
    return out


def parse_nmap_grepable_states(path: Path, scanned) -> dict[str, tuple[dict[int, str], bool]]:
    """address -> (every scanned TCP port's state, exact) from nmap -oG."""
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"Host: (\S+) \(.*?\)\t(.*)$", line)
        if not m or ("Ports:" not in line and "Ignored State:" not in line):
            continue
        rest = m.group(2)
        ports_field = rest.split("Ports:", 1)[1].split("\t")[0] if "Ports:" in rest else ""
        states = {int(p): st for p, st in re.findall(r"(\d+)/([a-z|]+)/tcp/", ports_field)}
        ignored = {st: int(n) for st, n in re.findall(r"Ignored State: (\S+) \((\d+)\)", rest)}
        exact = fill_summarised(states, ignored, scanned)
        out[m.group(1)] = (states, exact)
    return out


def parse_nmap_probes(stdout: str) -> int | None:
    """nmap -v's closing "Raw packets sent: N (...)" (raw scans only)."""
    m = re.search(r"Raw packets sent: (\d+)", stdout)
    return int(m.group(1)) if m else None


def parse_masscan_pairs(path: Path) -> set[tuple[str, int]]:
    found = set()
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "open" and parts[1] == "tcp":
            found.add((parts[3], int(parts[2])))
    return found


def tcp_truth_states(lab: dict, ports: list[int] | None) -> dict[int, str]:
    """Every scanned port's true state on a lab host: the open list open; under
    `firewalled` the reject list closed and the rest filtered; under `open`
    and `lossy` the rest closed (RST)."""
    scanned = range(1, 65536) if ports is None else ports
    open_, reject = set(lab["open"]), set(lab.get("reject", []))
    firewalled = lab["profile"] == "firewalled"
    return {p: "open" if p in open_ else
            ("closed" if not firewalled or p in reject else "filtered") for p in scanned}


def net_truth_state(host: dict, port: int) -> str:
    """A lab network address's true state of one port, from its kind."""
    kind = host["kind"]
    if kind == "dark":
        return "filtered"
    if kind == "rst_only":
        return "closed"
    if port in host["open"]:
        return "open"
    if kind == "firewalled":
        return "closed" if port in host["reject"] else "filtered"
    return "closed"  # open


def state_errors(got: dict[int, str], truth: dict[int, str]) -> dict[str, int]:
    """Ports reported filtered / closed whose true state is another."""
    ff = fc = 0
    for p, st in got.items():
        t = truth.get(p)
        if t is None or st == t:
            continue
        ff += st == "filtered"
        fc += st == "closed"
    return {"false_filtered": ff, "false_closed": fc}


def evaluate_network(tool: str, outfile: Path, stdout: str, lab: dict, net: dict) -> dict:
    """Correctness of one run on a lab network: every (address, port) compared
    with the truth file. portgate scans a CIDR without its network and
    broadcast addresses, so its expected addresses are the prefix's hosts();
    nmap and masscan scan every address of the prefix."""
    ports = net["ports"]
    truth_hosts = net["hosts"]
    prefix = ipaddress.ip_network(lab["prefix"])
    if tool.startswith("portgate"):
        expected = {str(a) for a in prefix.hosts()}
    else:
        expected = {str(a) for a in prefix}
    expected &= set(truth_hosts)
    scanned = set(ports)
    true_open = {(a, p) for a in expected for p in truth_hosts[a]["open"] if p in scanned}
    rec: dict = {"truth": len(true_open), "hosts_expected": len(expected)}
    if tool.startswith("masscan"):
        found = parse_masscan_pairs(outfile)
        rec.update(found=len(found & true_open), false_open_n=len(found - true_open),
                   hosts_reported=None, hosts_missing=None)
        missed = true_open - found
        false_open = found - true_open
    else:
        per_host = (parse_portgate_tcp_states(outfile, ports) if tool.startswith("portgate")
                    else parse_nmap_grepable_states(outfile, ports))
        found_pairs, false_open = set(), set()
        ff = fc = inexact = 0
        unknown = [a for a in per_host if a not in truth_hosts]
        for addr, (states, exact) in per_host.items():
            inexact += not exact
            th = truth_hosts.get(addr)
            for p, st in states.items():
                t = net_truth_state(th, p) if th is not None else None
                if st == "open":
                    (found_pairs if t == "open" else false_open).add((addr, p))
                elif t is not None and st != t:
                    ff += st == "filtered"
                    fc += st == "closed"
        missed = true_open - found_pairs
        rec.update(found=len(found_pairs & true_open), false_open_n=len(false_open),
                   false_filtered=ff, false_closed=fc,
                   hosts_reported=len(per_host),
                   hosts_missing=len(expected - set(per_host)),
                   hosts_inexact=inexact, hosts_unknown=len(unknown))
    rec["missed_n"] = len(missed)
    rec["missed_sample"] = [f"{a}:{p}" for a, p in sorted(missed)[:20]]
    rec["false_open_sample"] = [f"{a}:{p}" for a, p in sorted(false_open)[:20]]
    return rec


def parse_output(tool: str, outfile: Path, stdout: str) -> set[int]:
    if tool.startswith("portgate"):
        return parse_portgate(outfile)
    if tool.startswith("nmap"):
        return parse_nmap_grepable(outfile)
    if tool == "rustscan":
        return parse_rustscan(stdout)
    return parse_masscan_list(outfile)


def parse_udp_output(tool: str, outfile: Path, ports: list[int]) -> dict[int, str]:
    if tool == "portgate-udp":
        return parse_portgate_states(outfile, "udp")
    return parse_nmap_xml_states(outfile, "udp", ports)


def udp_truth(lab: dict, ports: list[int]) -> dict[int, str]:
    """What a correct UDP scanner reports for each port (the lab's rules)."""
    udp_open, udp_reject = set(lab.get("udp_open", [])), set(lab.get("udp_reject", []))
    truth = {}
    for p in ports:
        if p in udp_open:
            truth[p] = "open"
        elif lab["profile"] == "firewalled":
            truth[p] = "closed" if p in udp_reject else "open|filtered"
        else:  # open and lossy: the kernel answers ICMP port unreachable
            truth[p] = "closed"
    return truth


# --------------------------------------------------------------------------
# Lab hosts

def delay_args(delay_ms: float | None, path_loss: float | None) -> list[str]:
    """`--delay Nms [--path-loss P]`: the lab's delay line (none without either)."""
    argv = []
    if delay_ms is not None:
        argv += ["--delay", f"{delay_ms:g}ms"]
    if path_loss is not None:
        argv += ["--path-loss", f"{path_loss:g}"]
    return argv


def check_delay(lab: dict, delay_ms: float | None, path_loss: float | None) -> None:
    """The lab's JSON line must show the delay line that was asked for."""
    if delay_ms is None and path_loss is None:
        return
    d = lab.get("delay") or {}
    if abs(float(d.get("delay_ms", -1)) - (delay_ms or 0)) > 1e-6 or \
            abs(float(d.get("path_loss", -1)) - (path_loss or 0)) > 1e-9:
        raise RuntimeError(f"lab started without the delay line asked for "
                           f"({delay_ms} ms, loss {path_loss}): delay={lab.get('delay')}")


def read_delay_stats(proc: subprocess.Popen) -> dict | None:
    """The `delay-stats: {json}` line the lab prints on stderr at teardown."""
    path = getattr(proc, "errlog_path", None)
    if not path:
        return None
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("delay-stats:"):
            try:
                return json.loads(line.split(":", 1)[1])
            except ValueError:
                return {"error": f"unparsable delay-stats line: {line[:200]}"}
    return None


def delay_refusal(stats: dict | None) -> str | None:
    """Why a scenario's figures are refused (the delay line, not the scanner,
    was the bottleneck), or None."""
    if stats is None:
        return None
    why = []
    if (stats.get("kernel_dropped") or 0) > 0:
        why.append(f"{stats['kernel_dropped']} packets dropped in the kernel before the "
                   "delay line read them")
    if (stats.get("max_lateness_us") or 0) > DELAY_MAX_LATENESS_US:
        why.append(f"a packet released {stats['max_lateness_us'] / 1000:.1f} ms late "
                   f"(limit {DELAY_MAX_LATENESS_US / 1000:.0f} ms)")
    if stats.get("error"):
        why.append(f"delay line error: {stats['error']}")
    return "; ".join(why) or None


def spawn_lab(argv: list[str], errlog) -> subprocess.Popen:
    """Starts a `portgate-lab` process (tracked, so that cleanup ends it by pid)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=errlog, text=True)
    proc.errlog_path = errlog.name
    LAB_PROCS.append(proc)
    return proc


def first_json_line(proc: subprocess.Popen, argv: list[str], errlog, wait_s: float) -> str:
    """The one line a lab process prints once it is up."""
    ready, _, _ = select.select([proc.stdout], [], [], wait_s)
    line = proc.stdout.readline() if ready else ""
    if not line:
        raise RuntimeError(f"{' '.join(argv[1:])} printed nothing "
                           f"(see {errlog.name}: {Path(errlog.name).read_text()[-500:]})")
    return line


def start_lab(lab_exe: str, profile: str, udp_services: bool, workdir: Path,
              delay_ms: float | None = None,
              path_loss: float | None = None) -> tuple[subprocess.Popen, dict]:
    errlog = open(workdir / f"lab-{profile}-{len(LAB_PROCS)}.stderr", "w")
    argv = [lab_exe, "up", "--profile", profile, "--ignore-stdin",
            *delay_args(delay_ms, path_loss)]
    if udp_services:
        argv.append("--udp-services")
    proc = spawn_lab(argv, errlog)
    try:
        line = first_json_line(proc, argv, errlog, 90)
        lab = json.loads(line)
        assert_lab_v4(lab["ipv4"])
        assert_lab_v4(lab["host_ipv4"], "lab host-side address")
        if udp_services and not lab.get("udp_open"):
            raise RuntimeError(f"lab started without UDP services: {line.strip()}")
        check_delay(lab, delay_ms, path_loss)
    except BaseException:
        stop_lab(proc)
        raise
    return proc, lab


def start_net(lab_exe: str, hosts: int, seed: int, workdir: Path,
              delay_ms: float | None = None,
              path_loss: float | None = None) -> tuple[subprocess.Popen, dict, dict]:
    """`portgate-lab net`: one namespace answering for a prefix of 198.19.0.0/16;
    returns (process, its JSON line, its truth file)."""
    n = len(LAB_PROCS)
    errlog = open(workdir / f"net-{hosts}-{n}.stderr", "w")
    truth_file = workdir / f"net-{hosts}-{n}-truth.json"
    argv = [lab_exe, "net", "--hosts", str(hosts), "--seed", str(seed),
            "--truth-file", str(truth_file), "--ignore-stdin",
            *delay_args(delay_ms, path_loss)]
    proc = spawn_lab(argv, errlog)
    try:
        lab = json.loads(first_json_line(proc, argv, errlog, 120))
        assert_lab_v4_net(lab["prefix"])
        assert_lab_v4(lab["host_ipv4"], "lab host-side address")
        check_delay(lab, delay_ms, path_loss)
        truth = json.loads(Path(lab.get("truth_file") or truth_file).read_text())
        if truth.get("prefix") != lab["prefix"] or len(truth.get("hosts", {})) != lab["hosts"]:
            raise RuntimeError(f"truth file does not match the network: prefix "
                               f"{truth.get('prefix')}, {len(truth.get('hosts', {}))} hosts")
        for addr in truth["hosts"]:
            if ipaddress.ip_address(addr) not in ipaddress.ip_network(lab["prefix"]):
                raise RuntimeError(f"truth file address {addr} outside {lab['prefix']}")
    except BaseException:
        stop_lab(proc)
        raise
    return proc, lab, truth


def stop_lab(proc: subprocess.Popen, timeout: float = 30) -> int | None:
    """SIGTERM the lab process we started (by its pid) and wait for its teardown."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"lab pid {proc.pid} did not exit after SIGTERM; sending SIGKILL")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc in LAB_PROCS:
        LAB_PROCS.remove(proc)
    return proc.returncode


def netns_exists(name: str) -> bool:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return any(line.split()[0] == name for line in out.splitlines() if line.strip())


def cleanup() -> None:
    for proc in list(TOOL_PROC):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own process group, started by us
            except ProcessLookupError:
                pass
            proc.wait()
        TOOL_PROC.remove(proc)
    for proc in list(LAB_PROCS):
        log(f"stopping lab pid {proc.pid}")
        stop_lab(proc)


# --------------------------------------------------------------------------
# One run

def run_tool(tool: str, lab: dict, ports: list[int] | None,
             truth: set[int] | dict, exes: dict[str, str], workdir: Path,
             tag: str, timeout: float, truth_states: dict[int, str] | None = None) -> dict:
    """One run. `truth`: the open TCP ports (TCP tools on a lab host), every
    UDP port's expected state (UDP tools), or a lab network's truth file
    (TCP tools on a lab network). `truth_states`: every scanned TCP port's
    true state on a lab host (for false filtered / false closed)."""
    outfile = workdir / f"{tag}.out"
    rssfile = workdir / f"{tag}.rss"
    for f in (outfile, rssfile):
        f.unlink(missing_ok=True)
    argv, on_stdout = scan_command(tool, lab, ports, outfile, exes)
    full = [exes["time"], "-f", "%M", "-o", str(rssfile), *argv]
    rec: dict = {"tool": tool, "command": argv}
    start = time.monotonic()
    proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    TOOL_PROC.append(proc)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        wall = time.monotonic() - start
        status = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the process group this run started
        stdout, stderr = proc.communicate()
        wall = time.monotonic() - start
        status = "timeout"
    except BaseException:
        # interrupted: end this run's process group (ours) before unwinding
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    finally:
        TOOL_PROC.remove(proc)
    (workdir / f"{tag}.stdout").write_text(stdout)
    (workdir / f"{tag}.stderr").write_text(stderr)
    rec.update(status=status, returncode=proc.returncode, wall_s=round(wall, 3))
    try:
        rec["peak_rss_kb"] = int(rssfile.read_text().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        rec["peak_rss_kb"] = None
    if status == "ok" and tool in UDP_TOOLS:
        try:
            states = parse_udp_output(tool, outfile, ports)
        except (OSError, ValueError, KeyError, ET.ParseError) as exc:
            rec.update(status="failed", error=f"unparsable output: {exc}")
            states = None
        if states is not None:
            got = {p: states.get(p, "missing") for p in truth}
            rec["states"] = {str(p): got[p] for p in sorted(got)}
            rec["right"] = sum(got[p] == truth[p] for p in truth)
            rec["total"] = len(truth)
            rec["wrong"] = {str(p): got[p] for p in sorted(got) if got[p] != truth[p]}
    elif status == "ok" and "prefix" in lab:
        try:
            rec.update(evaluate_network(tool, outfile, stdout, lab, truth))
        except (OSError, ValueError, KeyError) as exc:
            rec.update(status="failed", error=f"unparsable output: {exc}")
    elif status == "ok" and tool not in DETECT_TOOLS:
        try:
            found = parse_output(tool, outfile, stdout)
        except (OSError, ValueError, KeyError) as exc:
            rec.update(status="failed", error=f"unparsable output: {exc}")
            found = None
        if found is not None:
            rec["open_reported"] = sorted(found)
            rec["found"] = len(found & truth)
            rec["truth"] = len(truth)
            rec["missed"] = sorted(truth - found)
            rec["false_open"] = sorted(found - truth)
        if found is not None and truth_states is not None and (
                tool.startswith("portgate") or tool.startswith("nmap")):
            # false filtered / false closed: from every port's state (RustScan
            # and masscan report open ports only)
            try:
                per_host = (parse_portgate_tcp_states(outfile, truth_states)
                            if tool.startswith("portgate")
                            else parse_nmap_grepable_states(outfile, truth_states))
                states, exact = per_host.get(lab["ipv4"], ({}, False))
                rec.update(state_errors(states, truth_states))
                rec["states_exact"] = exact
                rec["states_reported"] = {
                    st: sum(1 for x in states.values() if x == st)
                    for st in sorted(set(states.values()))}
            except (OSError, ValueError, KeyError) as exc:
                rec.update(status="failed", error=f"unparsable output: {exc}")
    if rec["status"] == "ok" and tool == "nmap-sS":
        rec["probes_sent"] = parse_nmap_probes(stdout)
    if rec["status"] == "ok" and tool in PORTGATE_TOOLS:
        try:
            report = json.loads(outfile.read_text())
            rec["reported_duration_ms"] = report.get("duration_ms")
            rec["method"] = report.get("method")
            rec["probes_sent"] = (report.get("summary") or {}).get("probes_sent")
        except (OSError, ValueError):
            report = {}
        want = {"portgate-connect": "connect", "portgate-syn": "syn",
                "portgate-syn-100k": "syn"}.get(tool)
        if want and rec.get("method") != want:
            # e.g. --syn fell back to connect: the row would be mislabelled
            rec.update(status="failed", error=f"portgate reported method "
                       f"{rec.get('method')!r}, expected {want!r}")
            for key in ("found", "open_reported", "missed", "false_open", "false_open_n",
                        "false_filtered", "false_closed"):
                rec.pop(key, None)
    if rec["status"] != "ok":
        rec["stderr_tail"] = stderr[-2000:]
        rec["stdout_tail"] = stdout[-1000:]
    return rec


def top1000_ports(lab: dict, exes: dict[str, str], workdir: Path, timeout: float) -> list[int]:
    """portgate's own top1000 list, taken from one --all-ports scan of the lab host."""
    ip = assert_lab_v4(lab["ipv4"])
    out = workdir / "top1000.json"
    argv = [exes["portgate"], "scan", ip, "-p", "top1000", "-o", "json", "--all-ports",
            "--output-file", str(out), "--no-progress"]
    subprocess.run(argv, stdin=subprocess.DEVNULL, check=True, timeout=timeout,
                   capture_output=True)
    ports = sorted({p["port"] for p in json.loads(out.read_text())["hosts"][0]["ports"]
                    if p.get("protocol", "tcp") == "tcp"})
    if len(ports) != 1000:
        raise RuntimeError(f"portgate top1000 gave {len(ports)} ports, expected 1000")
    return ports


# --------------------------------------------------------------------------
# Machine info and report

def first_line(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        text = (r.stdout or r.stderr).strip().splitlines()
        lines = [x.strip() for x in text if x.strip()]
        return lines[0] if lines else "?"
    except (OSError, subprocess.SubprocessError):
        return "not installed"


def machine_info(exes: dict[str, str]) -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = f"{int(line.split()[1]) / 1048576:.1f}"
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "crates"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "loadavg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "portgate_commit": commit + ("+dirty(crates)" if dirty else ""),
        "versions": {
            "portgate": first_line([exes["portgate"], "--version"]),
            "nmap": first_line([exes["nmap"], "--version"]) if exes.get("nmap") else "not installed",
            "masscan": (first_line([exes["masscan"], "--version"]) if exes.get("masscan")
                        else "not installed"),
            "rustscan": (first_line([exes["rustscan"], "--version"]) if exes.get("rustscan")
                         else "not installed"),
        },
    }


def fmt_s(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def run_ok(r: dict) -> bool:
    return r["status"] == "ok" and ("found" in r or "right" in r)


def run_cell(r: dict) -> str:
    """The correctness cell of one run: found/truth (TCP), right/total (UDP)."""
    if run_ok(r):
        return f"{r['found']}/{r['truth']}" if "found" in r else f"{r['right']}/{r['total']}"
    if r["status"] == "timeout":
        return "timeout"
    if str(r.get("error", "")).startswith("portgate reported method"):
        return f"failed(method={r.get('method')})"
    if r.get("error"):
        return "failed(output)"
    return f"failed(rc={r['returncode']})"


def summarize(results: list[dict], tools: list[str]) -> list[dict]:
    rows = []
    for sc in results:
        if sc["kind"] == "detect":
            continue
        per_tool = {}
        for tool in tools:
            runs = [r for r in sc["runs"] if r["tool"] == tool]
            if not runs:
                continue
            ok = [r for r in runs if run_ok(r)]
            med = statistics.median(r["wall_s"] for r in ok) if ok else None
            rss = [r["peak_rss_kb"] for r in ok if r.get("peak_rss_kb")]
            per_tool[tool] = {
                "median": med,
                "runs": runs,
                "rss_mb": statistics.median(rss) / 1024 if rss else None,
            }
        nmap_su = {r["run"]: r for r in per_tool.get("nmap-sU", {}).get("runs", [])}
        for tool, t in per_tool.items():
            ref = per_tool.get(RATIO_REF[tool], {}).get("median")
            if t["median"] is not None and ref:
                ratio = f"{t['median'] / ref:.2f}"
            else:
                ratio = "–"
            walls = " ".join(
                f"{r['wall_s']:.1f}" + ("" if run_ok(r) else "!") for r in t["runs"])
            row = {
                "scenario": sc["scenario"], "kind": sc["kind"], "tool": tool,
                "ratio_ref": RATIO_REF[tool], "median": t["median"], "ratio": ratio,
                "found": " ".join(run_cell(r) for r in t["runs"]),
                "walls": walls, "rss_mb": t["rss_mb"],
            }
            if sc["kind"] in ("tcp", "network"):
                ok = [r for r in t["runs"] if run_ok(r)]
                row["false_open"] = sum(r["false_open_n"] if "false_open_n" in r
                                        else len(r.get("false_open", [])) for r in ok)
                for key in ("false_filtered", "false_closed"):
                    have = [r[key] for r in ok if key in r]
                    # "–": the tool reports open ports only (RustScan, masscan)
                    row[key] = sum(have) if have else None
                row["states_inexact"] = any(r.get("states_exact") is False
                                            or r.get("hosts_inexact") for r in ok)
                probes = [r["probes_sent"] for r in ok if r.get("probes_sent") is not None]
                row["probes"] = statistics.median(probes) if probes else None
                fl = sc.get("floor_s")
                row["x_floor"] = (f"{t['median'] / fl:.1f}" if fl and t["median"] is not None
                                  else "–")
                row["missed"] = sorted({p for r in t["runs"] for p in r.get("missed", [])})
                if sc["kind"] == "network":
                    row["hosts_missing"] = " ".join(
                        "–" if r.get("hosts_missing") is None else str(r["hosts_missing"])
                        for r in ok) or "–"
                    row["missed_sample"] = [(r["run"], r.get("missed_n", 0),
                                             r.get("missed_sample", [])) for r in ok
                                            if r.get("missed_n")]
                    row["false_open_sample"] = [(r["run"], r.get("false_open_n", 0),
                                                 r.get("false_open_sample", [])) for r in ok
                                                if r.get("false_open_n")]
            else:
                row["wrong"] = [(r["run"], r["wrong"]) for r in t["runs"] if r.get("wrong")]
                same, diffs = [], []
                for r in t["runs"]:
                    other = nmap_su.get(r["run"])
                    if tool == "nmap-sU" or other is None or not run_ok(r) or not run_ok(other):
                        same.append("–")
                        continue
                    diff = {p: (s, other["states"][p]) for p, s in r["states"].items()
                            if other["states"].get(p) != s}
                    same.append("no" if diff else "yes")
                    if diff:
                        diffs.append((r["run"], diff))
                row["same_as_nmap"] = " ".join(same) if tool != "nmap-sU" else "–"
                row["nmap_diffs"] = diffs
            rows.append(row)
    return rows


TCP_RATIO_HEADER = "ratio to portgate (connect for -sT/RustScan, SYN for -sS/masscan)"


def markdown(info: dict, results: list[dict], tools: list[str], args, total_s: float,
             interrupted: bool) -> str:
    v = info["versions"]
    out = ["# portgate benchmark", ""]
    if interrupted:
        out += ["**Interrupted: partial results.**", ""]
    out += [
        f"- date: {info['date_utc']}; whole run {total_s / 60:.1f} min; "
        f"{args.runs} runs per tool and scenario; per-run cap {args.timeout:.0f} s"
        + (" (a tool that hit it was not run again in that scenario)" if args.give_up else ""),
        f"- machine: nproc {info['nproc']}, {info['cpu']}, {info['memory_gib']} GiB, "
        f"kernel {info['kernel']}, load average at start {info['loadavg_start']}, "
        f"at end {info.get('loadavg_end', '?')}",
        f"- {v['portgate']} (commit {info['portgate_commit']}); {v['nmap']}; "
        f"{v['masscan']}; {v['rustscan']}",
        "- command: `" + " ".join(["bench/run", *args.raw_argv]) + "`",
        "",
    ]
    rows = summarize(results, tools)
    rss_cell = lambda r: "–" if r["rss_mb"] is None else format(r["rss_mb"], ".1f")  # noqa: E731

    def title(name: str) -> str:
        sc = next((x for x in results if x["scenario"] == name), {})
        return SCENARIO_TITLES[name] + (" **(refused)**" if sc.get("refused") else "")

    def opt(x, fmt="{}") -> str:
        return "–" if x is None else fmt.format(x)

    def errs(r: dict, key: str) -> str:
        return opt(r[key]) + ("*" if r[key] is not None and r["states_inexact"] else "")

    floor_scs = [sc for sc in results if sc["kind"] in ("tcp", "network") and "floor_s" in sc]
    if floor_scs:
        out += [
            "## Scenarios: floor and delay line",
            "",
            "| scenario | RTT ms | path loss | probes (ports × hosts) | floor s "
            "| delay line: packets / max lateness ms / mean lateness ms / kernel dropped "
            "/ dropped by loss | figures |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        for sc in floor_scs:
            st = sc.get("delay_stats")
            line = "– (no delay line)" if st is None else (
                f"{st.get('packets')} / {(st.get('max_lateness_us') or 0) / 1000:.1f} / "
                f"{(st.get('mean_lateness_us') or 0) / 1000:.2f} / {st.get('kernel_dropped')} / "
                f"{st.get('dropped_by_loss')}")
            out.append(
                f"| {SCENARIO_TITLES[sc['scenario']]} | {sc.get('delay_ms') or 0:g} | "
                f"{opt(sc.get('path_loss'), '{:g}')} | {sc['probes']:,} | {sc['floor_s']:.3f} | "
                f"{line} | " + ("**refused**" if sc.get("refused") else "valid") + " |")
        out += [
            "",
            f"Floor = probes ÷ {FLOOR_RATE_PPS:,} per s (masscan's `--rate 100000`, the "
            f"same-rate comparison) + RTT + one {FLOOR_TIMEOUT_S:g} s timeout (portgate's "
            "`--min-rtt-timeout`): no scanner that sends each probe once at that rate and "
            "waits one timeout for the last answer can finish sooner. "
            "\"× floor\" in the tables below = the tool's median wall time ÷ this floor. "
            "A scenario with a delay line is **refused** (its figures are not valid) when "
            "the delay line dropped packets in the kernel (`kernel_dropped` > 0) or released "
            f"a packet more than {DELAY_MAX_LATENESS_US / 1000:.0f} ms late "
            "(`max_lateness_us`): the delay line, not the scanner, was then the bottleneck.",
            "",
        ]
        for sc in floor_scs:
            if sc.get("refused"):
                out.append(f"- **Refused: {SCENARIO_TITLES[sc['scenario']]}**: {sc['refused']}.")
        if any(sc.get("refused") for sc in floor_scs):
            out.append("")

    tcp_rows = [r for r in rows if r["kind"] == "tcp"]
    if tcp_rows:
        out += [
            "## TCP",
            "",
            f"| scenario | tool | median wall s | {TCP_RATIO_HEADER} | × floor "
            "| open found / truth per run | false open (sum) | false filtered (sum) "
            "| false closed (sum) | probes sent (median) | wall s per run "
            "| peak RSS MB (median) |",
            "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|",
        ]
        for r in tcp_rows:
            out.append(
                f"| {title(r['scenario'])} | {r['tool']} | {fmt_s(r['median'])} | "
                f"{r['ratio']} | {r['x_floor']} | {r['found']} | {r['false_open']} | "
                f"{errs(r, 'false_filtered')} | {errs(r, 'false_closed')} | "
                f"{opt(r['probes'], '{:,.0f}')} | {r['walls']} | {rss_cell(r)} |")
        out += [
            "",
            "Ratio = tool median / median of the portgate row of the same family in the "
            "same scenario: `nmap-sT` and `rustscan` (unprivileged connect-style scanners) "
            "against `portgate-connect` (`--connect`); `nmap-sS`, `masscan` and "
            "`masscan-wait2` (raw-packet SYN scanners) against `portgate-syn` (`--syn`). "
            "`portgate-syn-100k` is the SYN scan held to masscan's `--rate 100000`, "
            "shown against `portgate-syn`. "
            "The portgate reference rows are 1.00; `–` when the reference row was not run "
            "or failed every run. Truth = the lab host's open TCP ports (within the "
            "scanned list). False filtered / false closed = ports reported filtered / "
            "closed whose true state is another (truth: the open list open; under the "
            "`firewalled` profile the reject list closed and every other port filtered; "
            "under `open` and `lossy` every other port closed), summed over the runs; "
            "`–` for RustScan and masscan, which report open ports only (`*`: a run's "
            "states could not all be told apart, counted over the listed ports only). "
            "Probes sent: nmap -sS's own count (`-v`: \"Raw packets sent\", retries "
            "included) and portgate's (`summary.probes_sent`, retries included); nmap -sT, "
            "RustScan and masscan report none: `–`.",
            "",
        ]
        missed = [r for r in tcp_rows if r["missed"]]
        if missed:
            out.append("Open ports missed in at least one run:")
            for r in missed:
                out.append(f"- {SCENARIO_TITLES[r['scenario']]} / {r['tool']}: "
                           + ", ".join(map(str, r["missed"])))
            out.append("")

    net_rows = [r for r in rows if r["kind"] == "network"]
    if net_rows:
        out += [
            "## TCP, many hosts",
            "",
            f"| scenario | tool | median wall s | {TCP_RATIO_HEADER} | × floor "
            "| open (address, port) found / truth per run | false open (sum) "
            "| false filtered (sum) | false closed (sum) | hosts missing per run "
            "| probes sent (median) | wall s per run | peak RSS MB (median) |",
            "|---|---|---:|---:|---:|---|---:|---:|---:|---|---:|---|---:|",
        ]
        for r in net_rows:
            out.append(
                f"| {title(r['scenario'])} | {r['tool']} | {fmt_s(r['median'])} | "
                f"{r['ratio']} | {r['x_floor']} | {r['found']} | {r['false_open']} | "
                f"{errs(r, 'false_filtered')} | {errs(r, 'false_closed')} | "
                f"{r['hosts_missing']} | {opt(r['probes'], '{:,.0f}')} | {r['walls']} | "
                f"{rss_cell(r)} |")
        truths = [f"{SCENARIO_TITLES[sc['scenario']]}: {sc['truth_summary']['prefix']}, "
                  f"seed {sc['truth_summary']['seed']}, "
                  + ", ".join(f"{n} {k}" for k, n in sc["truth_summary"]["kinds"].items())
                  + f", {sc['truth_summary']['open_pairs']:,} open pairs"
                  for sc in results if sc.get("truth_summary")]
        out += [
            "",
            "`portgate-lab net`: one namespace answering for a /20 of 198.19.0.0/16, each "
            "address dark (every port filtered), RST-only (every port closed), firewalled "
            "(its open ports open, its reject ports closed, the rest filtered) or open (its "
            "open ports open, the rest closed), drawn from the seed; 100 ports per address "
            "(" + "; ".join(truths) + "). Every reported (address, port) state is compared "
            "with the truth file. portgate scans a CIDR without its network and broadcast "
            "addresses (4,094 of 4,096): its truth is the open pairs of those addresses "
            "and a host counts as missing when one of them is not in its report; nmap -sS "
            "(`-T4 --max-retries 1`) and masscan scan all 4,096. masscan reports open "
            "pairs only (false filtered / closed and hosts missing `–`).",
            "",
        ]
        for r in net_rows:
            for run, n, sample in r.get("missed_sample", []):
                out.append(f"- {SCENARIO_TITLES[r['scenario']]} / {r['tool']} run {run}: "
                           f"{n} open pairs missed, e.g. " + ", ".join(sample[:8]))
            for run, n, sample in r.get("false_open_sample", []):
                out.append(f"- {SCENARIO_TITLES[r['scenario']]} / {r['tool']} run {run}: "
                           f"{n} false open pairs, e.g. " + ", ".join(sample[:8]))
        out.append("")

    udp_rows = [r for r in rows if r["kind"] == "udp"]
    if udp_rows:
        out += [
            "## UDP",
            "",
            "| scenario | tool | median wall s | ratio to portgate-udp "
            "| states right / ports per run | same states as nmap -sU per run "
            "| wall s per run | peak RSS MB (median) |",
            "|---|---|---:|---:|---|---|---|---:|",
        ]
        for r in udp_rows:
            out.append(
                f"| {SCENARIO_TITLES[r['scenario']]} | {r['tool']} | {fmt_s(r['median'])} | "
                f"{r['ratio']} | {r['found']} | {r['same_as_nmap']} | {r['walls']} | "
                f"{rss_cell(r)} |")
        out += [""]
        truths = []
        for sc in results:
            if sc["kind"] == "udp" and sc.get("truth_states"):
                by_state: dict[str, list[int]] = {}
                for p, st in sc["truth_states"].items():
                    by_state.setdefault(st, []).append(int(p))
                truths.append(f"{SCENARIO_TITLES[sc['scenario']]}: " + "; ".join(
                    f"{st} {compress_ports(ps)}" for st, ps in by_state.items()))
        out += [
            "Ratio = nmap-sU median / portgate-udp median in the same scenario. A state "
            "is right when it equals the lab's truth for that port ("
            + "; ".join(truths) + "). \"Same states as nmap -sU\" compares "
            "portgate-udp's state of every port with nmap -sU's in the same round "
            "(`–` when either run failed). Runs start 7 s apart so that each starts "
            "with a full ICMP rate-limit bucket at the lab host.",
            "",
        ]
        wrong = [r for r in udp_rows if r["wrong"]]
        if wrong:
            out.append("Wrong states (port: reported):")
            for r in wrong:
                for run, w in r["wrong"]:
                    out.append(f"- {SCENARIO_TITLES[r['scenario']]} / {r['tool']} run {run}: "
                               + ", ".join(f"{p}: {s}" for p, s in w.items()))
            out.append("")
        diffs = [r for r in udp_rows if r.get("nmap_diffs")]
        if diffs:
            out.append("Where portgate-udp and nmap -sU differ (port: portgate / nmap):")
            for r in diffs:
                for run, d in r["nmap_diffs"]:
                    out.append(f"- {SCENARIO_TITLES[r['scenario']]} run {run}: "
                               + ", ".join(f"{p}: {a} / {b}" for p, (a, b) in d.items()))
            out.append("")

    for sc in results:
        if sc["kind"] == "detect" and sc.get("runs"):
            out += zoo_markdown(sc)

    for sc in results:
        if sc.get("error"):
            out.append(f"**{SCENARIO_TITLES[sc['scenario']]}: {sc['error']}**")
            out.append("")
    pg = [r for r in rows if r["tool"] in PORTGATE_TOOLS and r["rss_mb"] is not None]
    if pg:
        out.append("portgate peak RSS (median of runs, `/usr/bin/time -f %M`): " + ", ".join(
            f"{SCENARIO_TITLES[r['scenario']]} / {r['tool']} {r['rss_mb']:.1f} MB"
            for r in pg) + ".")
        out.append("")
    out += [
        "Wall time is `time.monotonic()` around the whole process (start-up and any "
        "final wait included); a `!` after a per-run time marks a run that failed or hit "
        "the cap and is left out of the median. "
        "Raw per-run data: `bench/results/latest.json`.",
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------
# The daemon zoo: service detection beside nmap -sV

# Service names that mean the same thing (nmap's name -> ours).
SERVICE_ALIASES = {"ms-wbt-server": "rdp", "https": "http", "imaps": "imap", "pop3s": "pop3",
                   "smtps": "smtp", "submission": "smtp", "http-proxy": "http"}


def start_zoo(lab_exe: str, workdir: Path) -> tuple[subprocess.Popen, dict]:
    """`portgate-lab zoo`: real daemons in a lab namespace; returns (process, description)."""
    errlog = open(workdir / f"zoo-{len(LAB_PROCS)}.stderr", "w")
    argv = [lab_exe, "zoo", "--ignore-stdin"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=errlog, text=True)
    LAB_PROCS.append(proc)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"portgate-lab zoo printed nothing "
                               f"(see {errlog.name}: {Path(errlog.name).read_text()[-800:]})")
        lab = json.loads(line)
        assert_lab_v4(lab["ipv4"])
        for skip in lab.get("skipped", []):
            log(f"  zoo: {skip['daemon']} skipped: {skip['reason']}")
    except BaseException:
        stop_lab(proc)
        raise
    return proc, lab


def norm_service(name: str | None) -> str | None:
    if not name:
        return None
    name = name.rstrip("?").lower()
    return SERVICE_ALIASES.get(name, name)


def norm_product(p: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", (p or "").lower())


def product_agrees(nmap_p: str | None, ours: str | None) -> bool:
    a, b = norm_product(nmap_p), norm_product(ours)
    return bool(a and b) and (a in b or b in a)


def named_in_info(nmap_p: str | None, nmap_v: str | None, info: str | None) -> bool:
    """nmap's product (its first word) and version (its first word) both appear in our
    `info`: the same fact, reported beside a more specific product (e.g. nmap's
    "Tornado httpd 6.2" under our "Jupyter Notebook 6.4.12", info "Tornado httpd 6.2")."""
    if not nmap_p or not info:
        return False
    words = norm_product(nmap_p.split()[0])
    if not words or words not in norm_product(info):
        return False
    return not nmap_v or nmap_v.split()[0] in info


def version_agrees(nmap_v: str | None, ours: str | None) -> bool:
    if not nmap_v:
        return True
    if not ours:
        return False
    first = nmap_v.split()[0]
    return first == ours or first.startswith(ours) or ours.startswith(first)


def parse_nmap_services(path: Path) -> dict[int, dict]:
    """Per port: nmap's service/product/version, and whether it was identified by probing
    (`method="probed"`) rather than guessed from the port number."""
    out = {}
    root = ET.parse(path).getroot()
    for port in root.iter("port"):
        if port.get("protocol") != "tcp":
            continue
        svc = port.find("service")
        state = port.find("state")
        rec = {"state": state.get("state") if state is not None else None,
               "service": None, "product": None, "version": None, "identified": False,
               "tunnel": None}
        if svc is not None:
            rec.update(service=svc.get("name"), product=svc.get("product"),
                       version=svc.get("version"), tunnel=svc.get("tunnel"),
                       identified=svc.get("method") == "probed")
        out[int(port.get("portid"))] = rec
    return out


def parse_portgate_services(path: Path, ip: str) -> dict[int, dict]:
    report = json.loads(path.read_text())
    out = {}
    for host in report.get("hosts", []):
        if host.get("ip") != ip:
            continue
        for p in host.get("ports", []):
            d = p.get("detected") or {}
            out[int(p["port"])] = {"state": p.get("state"), "service": d.get("service"),
                                   "product": d.get("product"), "version": d.get("version"),
                                   "info": d.get("info")}
    return out


def compare_zoo(ports: list[int], ours: dict[int, dict], nmap: dict[int, dict]) -> dict:
    rows = []
    svc_n = svc_ok = pv_n = pv_ok = 0
    for port in ports:
        o = ours.get(port, {})
        n = nmap.get(port, {})
        row = {"port": port, "ours": o, "nmap": n}
        if n.get("identified"):
            svc_n += 1
            row["service_agrees"] = norm_service(n.get("service")) == norm_service(
                o.get("service"))
            svc_ok += row["service_agrees"]
            if n.get("product"):
                pv_n += 1
                row["pv_agrees"] = product_agrees(n.get("product"), o.get("product")) and \
                    version_agrees(n.get("version"), o.get("version"))
                if not row["pv_agrees"] and named_in_info(n.get("product"), n.get("version"),
                                                          o.get("info")):
                    row["pv_agrees"] = True
                    row["pv_in_info"] = True
                pv_ok += row["pv_agrees"]
        rows.append(row)
    return {"rows": rows, "service": [svc_ok, svc_n], "product_version": [pv_ok, pv_n]}


def truth_agreement(ports: list[int], found: dict[int, dict], expected: dict[int, dict]) -> list[int]:
    """[right, total]: ports whose service, product and version match the zoo's ground
    truth (same normalisation as the nmap comparison; a missing product or version in
    the truth must be missing or ignored)."""
    right = 0
    for port in ports:
        t, f = expected.get(port, {}), found.get(port, {})
        ok = norm_service(t.get("service")) == norm_service(f.get("service"))
        if t.get("product"):
            ok = ok and product_agrees(t["product"], f.get("product"))
        if t.get("version"):
            ok = ok and version_agrees(f.get("version"), t["version"]) and bool(f.get("version"))
        right += ok
    return [right, len(ports)]


def run_zoo_scenario(sc: dict, lab: dict, proc: subprocess.Popen, args,
                     exes: dict[str, str], workdir: Path) -> None:
    log(f"  zoo {lab['namespace']} at {lab['ipv4']} (pid {proc.pid}): "
        f"{len(lab['services'])} ports, {len(lab.get('skipped', []))} daemons skipped")
    ports = lab["ports"]
    sc["ports"] = ports
    sc["zoo"] = {"services": lab["services"], "skipped": lab.get("skipped", []),
                 "tls_ports": lab.get("tls_ports", []),
                 "starttls_ports": lab.get("starttls_ports", [])}
    tools = scenario_tools("zoo", args.tools)
    ip = assert_lab_v4(lab["ipv4"])
    for i in range(args.runs):
        per_run = {}
        for tool in tools:
            if proc.poll() is not None:
                raise RuntimeError(f"zoo process exited early (rc={proc.returncode})")
            tag = f"zoo-{tool}-{i}"
            rec = run_tool(tool, lab, ports, set(), exes, workdir, tag, args.timeout)
            rec["run"] = i + 1
            outfile = workdir / f"{tag}.out"
            if rec["status"] == "ok":
                try:
                    rec["services"] = (parse_portgate_services(outfile, ip)
                                       if tool == "portgate-detect"
                                       else parse_nmap_services(outfile))
                except (OSError, ValueError, KeyError, ET.ParseError) as exc:
                    rec.update(status="failed", error=f"unparsable output: {exc}")
            per_run[tool] = rec
            sc["runs"].append(rec)
            log(f"  run {i + 1}/{args.runs} {tool:16s} {rec['wall_s']:8.2f} s  {rec['status']}")
            time.sleep(PAUSE_S["detect"])
        a, b = per_run.get("portgate-detect"), per_run.get("nmap-sV")
        if a and b and "services" in a and "services" in b:
            cmp = compare_zoo(ports, {int(k): v for k, v in a["services"].items()},
                              {int(k): v for k, v in b["services"].items()})
            cmp["run"] = i + 1
            expected = {s["port"]: s for s in lab["services"]}
            cmp["truth"] = {
                tool: truth_agreement(ports, {int(k): v for k, v in r["services"].items()},
                                      expected)
                for tool, r in (("portgate-detect", a), ("nmap-sV", b))}
            sc.setdefault("comparisons", []).append(cmp)
            log(f"  run {i + 1}: service agreement {cmp['service'][0]}/{cmp['service'][1]}, "
                f"product+version {cmp['product_version'][0]}/{cmp['product_version'][1]}")


def zoo_markdown(sc: dict) -> list[str]:
    def med(tool):
        walls = [r["wall_s"] for r in sc["runs"] if r["tool"] == tool and r["status"] == "ok"]
        return statistics.median(walls) if walls else None

    ours_t, nmap_t = med("portgate-detect"), med("nmap-sV")
    out = ["## Service detection (daemon zoo)", ""]
    zoo = sc.get("zoo", {})
    expected = {s["port"]: s for s in zoo.get("services", [])}
    out.append(f"{len(expected)} ports of {len({s['daemon'] for s in expected.values()})} "
               "daemons from Debian packages in one lab namespace (`portgate-lab zoo`); "
               "TLS ports: " + ", ".join(map(str, zoo.get("tls_ports", []))) + "; STARTTLS: "
               + ", ".join(map(str, zoo.get("starttls_ports", []))) + ".")
    for skip in zoo.get("skipped", []):
        out.append(f"- skipped {skip['daemon']}: {skip['reason']}")
    out.append("")
    walls = lambda tool: " ".join(f"{r['wall_s']:.1f}" + ("" if r["status"] == "ok" else "!")  # noqa: E731
                                  for r in sc["runs"] if r["tool"] == tool)
    out += ["| tool | median wall s | wall s per run |", "|---|---:|---|",
            f"| portgate scan --detect --connect | {fmt_s(ours_t)} | {walls('portgate-detect')} |",
            f"| nmap -sV -Pn | {fmt_s(nmap_t)} | {walls('nmap-sV')} |", ""]
    if ours_t and nmap_t:
        out += [f"Wall-time ratio portgate / nmap: **{ours_t / nmap_t:.3f}** "
                f"(nmap / portgate = {nmap_t / ours_t:.1f}x).", ""]
    cmps = sc.get("comparisons", [])
    if cmps:
        last = cmps[-1]
        sums = [f"run {c['run']}: service {c['service'][0]}/{c['service'][1]}, "
                f"product+version {c['product_version'][0]}/{c['product_version'][1]}"
                for c in cmps]
        out += ["Agreement on the ports nmap identifies by probing (service), and on those "
                "where nmap names a product (product and, where nmap gives one, version): "
                + "; ".join(sums) + ".", "",
                "Against the zoo's ground truth (service, product and version on every "
                "port, TLS ports included): " + "; ".join(
                    f"run {c['run']}: portgate {c['truth']['portgate-detect'][0]}/"
                    f"{c['truth']['portgate-detect'][1]}, nmap {c['truth']['nmap-sV'][0]}/"
                    f"{c['truth']['nmap-sV'][1]}" for c in cmps if "truth" in c) + ".", "",
                f"Per port (run {last['run']}); truth = the zoo's ground truth:", "",
                "| port | truth | nmap -sV | portgate | service agrees | product+version agrees |",
                "|---:|---|---|---|---|---|"]

        def cell(d):
            if not d or not d.get("service"):
                return "–"
            tun = "ssl/" if d.get("tunnel") == "ssl" else ""
            guess = "" if d.get("identified", True) else " (port guess)"
            info = f" ({d['info']})" if d.get("info") and "identified" not in d else ""
            return (f"{tun}{d.get('service')} " + " ".join(
                x for x in (d.get("product"), d.get("version")) if x)).strip() + info + guess

        for row in last["rows"]:
            t = expected.get(row["port"], {})
            truth = " ".join(x for x in (t.get("service"), t.get("product"), t.get("version"))
                             if x) + (f" [{t['transport']}]" if t.get("transport") != "plain" else "")
            yn = lambda k: "–" if k not in row else ("yes" if row[k] else "**no**")  # noqa: E731
            pv = yn("pv_agrees") + (" (named in info)" if row.get("pv_in_info") else "")
            out.append(f"| {row['port']} | {truth} | {cell(row['nmap'])} | {cell(row['ours'])} "
                       f"| {yn('service_agrees')} | {pv} |")
        out.append("")
    return out


# --------------------------------------------------------------------------

def scenario_tools(scenario: str, tools: list[str]) -> list[str]:
    kind = SCENARIOS[scenario]["kind"]
    if kind == "network":
        return [t for t in tools if t in NET_TOOLS]
    return [t for t in tools if TOOL_KIND[t] == kind]


def floor_s(spec: dict, n_ports: int, hosts: int = 1) -> float:
    """The physical floor of a TCP row: probes / 100,000 per s + RTT + one timeout."""
    return (n_ports * hosts / FLOOR_RATE_PPS + (spec.get("delay_ms") or 0) / 1000
            + FLOOR_TIMEOUT_S)


def run_scenario(sc: dict, lab: dict, proc: subprocess.Popen, args,
                 exes: dict[str, str], workdir: Path) -> None:
    scenario = sc["scenario"]
    spec = SCENARIOS[scenario]
    log(f"  lab {lab['namespace']} at {lab_target(lab)} (pid {proc.pid})")
    truth_states = None
    if spec["kind"] == "network":
        net = sc.pop("_net_truth")
        ports = lab["ports"]
        truth = {"ports": ports, "hosts": net["hosts"]}
        sc["ports"] = ports
        kinds: dict[str, int] = {}
        for h in net["hosts"].values():
            kinds[h["kind"]] = kinds.get(h["kind"], 0) + 1
        pset = set(ports)
        sc["truth_summary"] = {
            "prefix": lab["prefix"], "seed": net.get("seed"), "hosts": len(net["hosts"]),
            "kinds": kinds,
            "open_pairs": sum(len([p for p in h["open"] if p in pset])
                              for h in net["hosts"].values())}
        sc["probes"] = len(ports) * lab["hosts"]
        log(f"  truth: {sc['truth_summary']['open_pairs']} open (address, port) pairs; "
            + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    elif spec["ports"] == "top1000":
        ports = top1000_ports(lab, exes, workdir, args.timeout)
        sc["ports"] = ports
        log(f"  top1000 list: {len(ports)} ports")
    else:
        ports = spec["ports"]
    if spec["kind"] == "udp":
        truth = udp_truth(lab, ports)
        sc["ports"] = ports
        sc["truth_states"] = {str(p): s for p, s in sorted(truth.items())}
        counts: dict[str, int] = {}
        for s in truth.values():
            counts[s] = counts.get(s, 0) + 1
        log("  truth: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    elif spec["kind"] == "tcp":
        truth = set(lab["open"]) if ports is None else set(lab["open"]) & set(ports)
        sc["truth"] = sorted(truth)
        truth_states = tcp_truth_states(lab, ports)
        sc["truth_counts"] = {st: sum(1 for x in truth_states.values() if x == st)
                              for st in ("open", "closed", "filtered")}
        sc["probes"] = len(truth_states)
    if "probes" in sc:
        sc["floor_s"] = round(floor_s(spec, sc["probes"]), 4)
        log(f"  floor: {sc['probes']:,} probes / {FLOOR_RATE_PPS:,} per s + RTT "
            f"{spec.get('delay_ms') or 0} ms + {FLOOR_TIMEOUT_S} s = {sc['floor_s']:.3f} s")
    tools = scenario_tools(scenario, args.tools)
    pause = PAUSE_S[spec["kind"]]
    # Tools are interleaved within each round so that drifts in the machine's
    # load hit every tool alike.
    gave_up: set[str] = set()
    for i in range(args.runs):
        for tool in tools:
            if tool in gave_up:
                continue
            if proc.poll() is not None:
                raise RuntimeError(f"lab process exited early (rc={proc.returncode})")
            tag = f"{scenario}-{tool}-{i}"
            rec = run_tool(tool, lab, ports, truth, exes, workdir, tag, args.timeout,
                           truth_states=truth_states)
            rec["run"] = i + 1
            sc["runs"].append(rec)
            if args.give_up and rec["status"] == "timeout":
                gave_up.add(tool)
                log(f"  {tool} hit the {args.timeout:.0f} s cap: not run again here")
            if "found" in rec:
                fo = rec["false_open_n"] if "false_open_n" in rec else len(rec["false_open"])
                extra = f"{rec['found']}/{rec['truth']} open, {fo} false open"
                if "false_filtered" in rec:
                    extra += (f", {rec['false_filtered']} false filtered, "
                              f"{rec['false_closed']} false closed")
                if rec.get("hosts_missing"):
                    extra += f", {rec['hosts_missing']} hosts missing"
                if rec.get("probes_sent") is not None:
                    extra += f", {rec['probes_sent']} probes"
            elif "right" in rec:
                extra = f"{rec['right']}/{rec['total']} states right"
                if rec["wrong"]:
                    extra += " (wrong: " + ", ".join(
                        f"{p} {s}" for p, s in rec["wrong"].items()) + ")"
            else:
                extra = rec["status"] + (f": {rec['error']}" if rec.get("error") else "")
            log(f"  run {i + 1}/{args.runs} {tool:16s} {rec['wall_s']:8.2f} s  {extra}")
            if (i, tool) != (args.runs - 1, tools[-1]):
                time.sleep(pause)


def parse_args(argv: list[str]):
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark portgate beside nmap, masscan and RustScan on portgate-lab hosts.")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool and scenario (default 3)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma list of scenarios (default all: {','.join(SCENARIOS)})")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help=f"comma list of tools (default all: {','.join(TOOLS)}); "
                         "`portgate` stands for the three portgate rows. Each scenario "
                         "runs the selected tools of its kind (TCP, UDP or detection; the "
                         f"network scenarios only {', '.join(NET_TOOLS)})")
    ap.add_argument("--timeout", type=float, default=300,
                    help="hard cap of one run in seconds (default 300)")
    ap.add_argument("--give-up", action="store_true",
                    help="a tool whose run hits the cap is not run again in that scenario "
                         "(its row shows the one timed-out run)")
    ap.add_argument("--results-dir", default=str(BENCH_DIR / "results"),
                    help="where latest.md and latest.json go (default bench/results)")
    ap.add_argument("--keep-work", action="store_true",
                    help="keep the raw tool outputs (the work directory is printed)")
    ap.add_argument("--no-build", action="store_true",
                    help="(bench/run) skip cargo build; use the existing release binaries")
    ap.add_argument("--no-install", action="store_true",
                    help="(bench/run) do not install missing peers")
    args = ap.parse_args(argv)
    args.raw_argv = argv
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    tools = []
    for t in (t for t in args.tools.split(",") if t):
        tools += TOOL_ALIASES.get(t, [t])
    args.tools = tools
    for s in args.scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    for t in args.tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t!r}; choose from {', '.join(TOOLS)} "
                     f"(or {', '.join(TOOL_ALIASES)})")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    # keep the canonical order
    args.tools = [t for t in TOOLS if t in args.tools]
    args.scenarios = [s for s in SCENARIOS if s in args.scenarios]
    idle = [s for s in args.scenarios if not scenario_tools(s, args.tools)]
    if len(idle) == len(args.scenarios):
        ap.error("none of the selected tools applies to the selected scenarios "
                 f"(TCP tools: {', '.join(TCP_TOOLS)}; of those in the network "
                 f"scenarios: {', '.join(NET_TOOLS)}; UDP tools: {', '.join(UDP_TOOLS)}; "
                 f"detection tools: {', '.join(DETECT_TOOLS)})")
    return args


def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: must run as root (network namespaces, raw sockets for portgate "
              "--syn, nmap -sS/-sU and masscan)", file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    rel = target_dir() / "release"
    exes = {
        "portgate": str(rel / "portgate"),
        "lab": str(rel / "portgate-lab"),
        "time": "/usr/bin/time",
        "nmap": find_exe("nmap"),
        "masscan": find_exe("masscan"),
        "rustscan": find_exe("rustscan"),
    }
    for key in ("portgate", "lab", "time"):
        if not os.access(exes[key], os.X_OK):
            print(f"bench: {exes[key]} missing; run bench/run (it builds and installs)",
                  file=sys.stderr)
            return 1
    need = {"nmap-sT": "nmap", "nmap-sS": "nmap", "nmap-sU": "nmap", "nmap-sV": "nmap",
            "rustscan": "rustscan",
            "masscan": "masscan", "masscan-wait2": "masscan"}
    for tool in list(args.tools):
        if tool in need and not exes[need[tool]]:
            log(f"{need[tool]} not installed: skipping {tool}")
            args.tools.remove(tool)

    info = machine_info(exes)
    header = (f"nproc {info['nproc']} | kernel {info['kernel']} | {info['cpu']} | "
              f"load {info['loadavg_start']}\n" +
              "\n".join(f"  {k}: {v}" for k, v in info["versions"].items()))
    print(header, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="portgate-bench-"))
    results: list[dict] = []
    interrupted = False
    t0 = time.monotonic()
    try:
        for scenario in args.scenarios:
            spec = SCENARIOS[scenario]
            profile = spec.get("profile", "network")
            udp_services = spec["kind"] == "udp"
            delay_ms, path_loss = spec.get("delay_ms"), spec.get("path_loss")
            if not scenario_tools(scenario, args.tools):
                log(f"scenario {scenario}: none of the selected tools runs in a "
                    f"{spec['kind']} scenario; skipped")
                continue
            log(f"scenario {scenario}: starting lab "
                + (f"network ({spec['hosts']} hosts, seed {spec['seed']}"
                   if spec["kind"] == "network" else f"host ({profile}")
                + (", --udp-services" if udp_services else "")
                + (f", delay {delay_ms} ms" if delay_ms is not None else "")
                + (f", path loss {path_loss}" if path_loss is not None else "") + ")")
            sc = {"scenario": scenario, "kind": spec["kind"], "title": spec["title"],
                  "profile": profile, "udp_services": udp_services,
                  "delay_ms": delay_ms, "path_loss": path_loss, "runs": []}
            results.append(sc)
            try:
                if spec["kind"] == "detect":
                    proc, lab = start_zoo(exes["lab"], workdir)
                elif spec["kind"] == "network":
                    proc, lab, sc["_net_truth"] = start_net(
                        exes["lab"], spec["hosts"], spec["seed"], workdir, delay_ms, path_loss)
                else:
                    proc, lab = start_lab(exes["lab"], profile, udp_services, workdir,
                                          delay_ms, path_loss)
            except (OSError, RuntimeError, ValueError) as exc:
                sc["error"] = f"lab did not start: {exc}"
                log(f"  {sc['error']}")
                continue
            sc["lab"] = lab
            try:
                if spec["kind"] == "detect":
                    run_zoo_scenario(sc, lab, proc, args, exes, workdir)
                else:
                    run_scenario(sc, lab, proc, args, exes, workdir)
            except (OSError, RuntimeError, ValueError, KeyError,
                    subprocess.SubprocessError) as exc:
                sc["error"] = f"{type(exc).__name__}: {exc}"
                log(f"  scenario {scenario} aborted: {sc['error']}")
            finally:
                sc.pop("_net_truth", None)
                rc = stop_lab(proc)
                sc["lab_exit"] = rc
                stats = read_delay_stats(proc)
                if stats is not None:
                    sc["delay_stats"] = stats
                    sc["refused"] = delay_refusal(stats)
                    log(f"  delay line: {stats.get('packets')} packets, max lateness "
                        f"{(stats.get('max_lateness_us') or 0) / 1000:.1f} ms, kernel dropped "
                        f"{stats.get('kernel_dropped')}, dropped by loss "
                        f"{stats.get('dropped_by_loss')}"
                        + (f"; REFUSED: {sc['refused']}" if sc["refused"] else ""))
                elif delay_ms is not None or path_loss is not None:
                    sc["refused"] = "the lab printed no delay-stats line"
                    log(f"  REFUSED: {sc['refused']}")
                if netns_exists(lab["namespace"]):
                    log(f"  WARNING: namespace {lab['namespace']} still exists after teardown")
                    sc["namespace_left"] = True
                log(f"  lab {lab['namespace']} stopped (exit {rc})")
    except (KeyboardInterrupt, Interrupted) as exc:
        interrupted = True
        log(f"interrupted ({exc or 'SIGINT'}); cleaning up")
    finally:
        cleanup()
        total = time.monotonic() - t0
        info["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        if results:
            resdir = Path(args.results_dir)
            resdir.mkdir(parents=True, exist_ok=True)
            md = markdown(info, results, args.tools, args, total, interrupted)
            (resdir / "latest.md").write_text(md)
            (resdir / "latest.json").write_text(json.dumps({
                "machine": info, "argv": args.raw_argv, "runs_per_tool": args.runs,
                "timeout_s": args.timeout, "total_s": round(total, 1),
                "interrupted": interrupted, "scenarios": results,
            }, indent=1) + "\n")
            print(md, flush=True)
            log(f"wrote {resdir / 'latest.md'} and {resdir / 'latest.json'}")
        if args.keep_work:
            log(f"raw outputs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
