#!/usr/bin/env python3
"""portgate benchmark: portgate beside nmap, masscan and RustScan on lab hosts.

Started by `bench/run`, which checks for root, installs missing peers, builds
the release binaries and runs `portgate-lab clean` first. This script starts
one lab host per scenario (`portgate-lab up`), runs every selected tool on it
`--runs` times, compares the open ports each tool reports with the lab's
ground truth, and writes `bench/results/latest.md` and `latest.json`.

Network safety: every scan command is built by `scan_command`, which refuses
any target outside 198.18.0.0/15 (the lab's IPv4 range). Nothing else is
ever contacted.
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
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LAB_NET_V4 = ipaddress.ip_network("198.18.0.0/15")

SCENARIOS = {
    # name: (lab profile, port selection)
    "open": ("open", "all"),
    "firewalled": ("firewalled", "all"),
    "lossy": ("lossy", "all"),
    "top1000": ("firewalled", "top1000"),
}
SCENARIO_TITLES = {
    "open": "open, 65,535 ports",
    "firewalled": "firewalled, 65,535 ports",
    "lossy": "lossy, 65,535 ports",
    "top1000": "firewalled, 1,000-port list",
}
TOOLS = ["portgate", "nmap-sT", "nmap-sS", "rustscan", "masscan", "masscan-wait2"]


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


def scan_command(tool: str, lab: dict, ports: list[int] | None, outfile: Path,
                 exes: dict[str, str]) -> tuple[list[str], bool]:
    """The command line of one run; returns (argv, output_on_stdout).

    `ports` None means all 65,535 ports, else an explicit list.
    Every command targets only `lab["ipv4"]`, checked here first.
    """
    ip = assert_lab_v4(lab["ipv4"])
    plist = None if ports is None else ",".join(str(p) for p in ports)
    if tool == "portgate":
        return [exes["portgate"], "scan", ip, "-p", plist or "-", "-o", "json",
                "--output-file", str(outfile), "--no-progress"], False
    if tool in ("nmap-sT", "nmap-sS"):
        flag = "-sT" if tool == "nmap-sT" else "-sS"
        return [exes["nmap"], flag, "-T4", "-n", "-Pn",
                *(["-p-"] if plist is None else ["-p", plist]),
                ip, "-oG", str(outfile)], False
    if tool == "rustscan":
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
# Output parsers: each returns the set of ports reported open.

def parse_portgate(path: Path) -> set[int]:
    data = json.loads(path.read_text())
    hosts = data.get("hosts") or []
    if not hosts:
        return set()
    return {p["port"] for p in hosts[0].get("ports", []) if p.get("state") == "open"}


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


def parse_output(tool: str, outfile: Path, stdout: str) -> set[int]:
    if tool == "portgate":
        return parse_portgate(outfile)
    if tool.startswith("nmap"):
        return parse_nmap_grepable(outfile)
    if tool == "rustscan":
        return parse_rustscan(stdout)
    return parse_masscan_list(outfile)


# --------------------------------------------------------------------------
# Lab hosts

def start_lab(lab_exe: str, profile: str, workdir: Path) -> tuple[subprocess.Popen, dict]:
    errlog = open(workdir / f"lab-{profile}-{len(LAB_PROCS)}.stderr", "w")
    proc = subprocess.Popen([lab_exe, "up", "--profile", profile, "--ignore-stdin"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=errlog, text=True)
    LAB_PROCS.append(proc)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"portgate-lab up --profile {profile} printed nothing "
                               f"(see {errlog.name}: {Path(errlog.name).read_text()[-500:]})")
        lab = json.loads(line)
        assert_lab_v4(lab["ipv4"])
        assert_lab_v4(lab["host_ipv4"], "lab host-side address")
    except BaseException:
        stop_lab(proc)
        raise
    return proc, lab


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

def run_tool(tool: str, lab: dict, ports: list[int] | None, truth: set[int],
             exes: dict[str, str], workdir: Path, tag: str, timeout: float) -> dict:
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
    if status == "ok":
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
            if tool == "portgate":
                try:
                    rec["reported_duration_ms"] = json.loads(outfile.read_text()).get("duration_ms")
                except (OSError, ValueError):
                    pass
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


def summarize(results: list[dict], tools: list[str]) -> list[dict]:
    rows = []
    for sc in results:
        pg_median = None
        per_tool = {}
        for tool in tools:
            runs = [r for r in sc["runs"] if r["tool"] == tool]
            if not runs:
                continue
            ok = [r for r in runs if r["status"] == "ok" and "found" in r]
            med = statistics.median(r["wall_s"] for r in ok) if ok else None
            rss = [r["peak_rss_kb"] for r in ok if r.get("peak_rss_kb")]
            per_tool[tool] = {
                "median": med,
                "runs": runs,
                "rss_mb": statistics.median(rss) / 1024 if rss else None,
            }
            if tool == "portgate":
                pg_median = med
        for tool, t in per_tool.items():
            cells = []
            for r in t["runs"]:
                if r["status"] == "ok" and "found" in r:
                    cells.append(f"{r['found']}/{r['truth']}")
                elif r["status"] == "timeout":
                    cells.append("timeout")
                else:
                    cells.append(f"failed(rc={r['returncode']})")
            walls = " ".join(
                f"{r['wall_s']:.1f}" + ("" if r["status"] == "ok" else "!")
                for r in t["runs"])
            if t["median"] is not None and pg_median:
                ratio = f"{t['median'] / pg_median:.2f}"
            else:
                ratio = "–"
            false_open = sum(len(r.get("false_open", [])) for r in t["runs"])
            rows.append({
                "scenario": sc["scenario"], "tool": tool, "median": t["median"],
                "ratio": ratio, "found": " ".join(cells), "false_open": false_open,
                "walls": walls, "rss_mb": t["rss_mb"],
                "missed": sorted({p for r in t["runs"] for p in r.get("missed", [])}),
            })
    return rows


def markdown(info: dict, results: list[dict], tools: list[str], args, total_s: float,
             interrupted: bool) -> str:
    v = info["versions"]
    out = ["# portgate benchmark", ""]
    if interrupted:
        out += ["**Interrupted: partial results.**", ""]
    out += [
        f"- date: {info['date_utc']}; whole run {total_s / 60:.1f} min; "
        f"{args.runs} runs per tool and scenario; per-run cap {args.timeout:.0f} s",
        f"- machine: nproc {info['nproc']}, {info['cpu']}, {info['memory_gib']} GiB, "
        f"kernel {info['kernel']}, load average at start {info['loadavg_start']}, "
        f"at end {info.get('loadavg_end', '?')}",
        f"- {v['portgate']} (commit {info['portgate_commit']}); {v['nmap']}; "
        f"{v['masscan']}; {v['rustscan']}",
        "- command: `" + " ".join(["bench/run", *args.raw_argv]) + "`",
        "",
        "| scenario | tool | median wall s | ratio to portgate | open found / truth per run "
        "| false open (sum) | wall s per run | peak RSS MB (median) |",
        "|---|---|---:|---:|---|---:|---|---:|",
    ]
    rows = summarize(results, tools)
    for r in rows:
        out.append(
            f"| {SCENARIO_TITLES[r['scenario']]} | {r['tool']} | {fmt_s(r['median'])} | "
            f"{r['ratio']} | {r['found']} | {r['false_open']} | {r['walls']} | "
            f"{'–' if r['rss_mb'] is None else format(r['rss_mb'], '.1f')} |")
    out.append("")
    for sc in results:
        if sc.get("error"):
            out.append(f"**{SCENARIO_TITLES[sc['scenario']]}: {sc['error']}**")
            out.append("")
    pg = [r for r in rows if r["tool"] == "portgate" and r["rss_mb"] is not None]
    if pg:
        out.append("portgate peak RSS (median of runs, `/usr/bin/time -f %M`): " + ", ".join(
            f"{SCENARIO_TITLES[r['scenario']]} {r['rss_mb']:.1f} MB" for r in pg) + ".")
        out.append("")
    missed = [r for r in rows if r["missed"]]
    if missed:
        out.append("Open ports missed in at least one run:")
        for r in missed:
            out.append(f"- {SCENARIO_TITLES[r['scenario']]} / {r['tool']}: "
                       + ", ".join(map(str, r["missed"])))
        out.append("")
    out += [
        "Wall time is `time.monotonic()` around the whole process (start-up and any "
        "final wait included); a `!` after a per-run time marks a run that failed or hit "
        "the cap and is left out of the median. Ratio = tool median / portgate median in "
        "the same scenario. Truth = the lab host's open ports (within the scanned list). "
        "Raw per-run data: `bench/results/latest.json`.",
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------

def run_scenario(sc: dict, lab: dict, proc: subprocess.Popen, selection: str, args,
                 exes: dict[str, str], workdir: Path) -> None:
    scenario = sc["scenario"]
    log(f"  lab {lab['namespace']} at {lab['ipv4']} (pid {proc.pid})")
    if selection == "top1000":
        ports = top1000_ports(lab, exes, workdir, args.timeout)
        sc["ports"] = ports
        log(f"  top1000 list: {len(ports)} ports")
    else:
        ports = None
    truth = set(lab["open"]) if ports is None else set(lab["open"]) & set(ports)
    sc["truth"] = sorted(truth)
    # Tools are interleaved within each round so that drifts in the machine's
    # load hit every tool alike.
    for i in range(args.runs):
        for tool in args.tools:
            if proc.poll() is not None:
                raise RuntimeError(f"lab process exited early (rc={proc.returncode})")
            tag = f"{scenario}-{tool}-{i}"
            rec = run_tool(tool, lab, ports, truth, exes, workdir, tag, args.timeout)
            rec["run"] = i + 1
            sc["runs"].append(rec)
            extra = (f"{rec['found']}/{rec['truth']} open, {len(rec['false_open'])} false"
                     if "found" in rec else rec["status"])
            log(f"  run {i + 1}/{args.runs} {tool:14s} {rec['wall_s']:8.2f} s  {extra}")
            time.sleep(0.5)


def parse_args(argv: list[str]):
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark portgate beside nmap, masscan and RustScan on portgate-lab hosts.")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool and scenario (default 3)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma list of scenarios (default all: {','.join(SCENARIOS)})")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help=f"comma list of tools (default all: {','.join(TOOLS)})")
    ap.add_argument("--timeout", type=float, default=300,
                    help="hard cap of one run in seconds (default 300)")
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
    args.tools = [t for t in args.tools.split(",") if t]
    for s in args.scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    for t in args.tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t!r}; choose from {', '.join(TOOLS)}")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    # keep the canonical order
    args.tools = [t for t in TOOLS if t in args.tools]
    args.scenarios = [s for s in SCENARIOS if s in args.scenarios]
    return args


def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: must run as root (network namespaces, raw sockets for nmap -sS "
              "and masscan)", file=sys.stderr)
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
    need = {"nmap-sT": "nmap", "nmap-sS": "nmap", "rustscan": "rustscan",
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
            profile, selection = SCENARIOS[scenario]
            log(f"scenario {scenario}: starting lab host ({profile})")
            sc = {"scenario": scenario, "profile": profile, "runs": []}
            results.append(sc)
            try:
                proc, lab = start_lab(exes["lab"], profile, workdir)
            except (OSError, RuntimeError, ValueError) as exc:
                sc["error"] = f"lab did not start: {exc}"
                log(f"  {sc['error']}")
                continue
            sc["lab"] = lab
            try:
                run_scenario(sc, lab, proc, selection, args, exes, workdir)
            except (OSError, RuntimeError, ValueError, KeyError,
                    subprocess.SubprocessError) as exc:
                sc["error"] = f"{type(exc).__name__}: {exc}"
                log(f"  scenario {scenario} aborted: {sc['error']}")
            finally:
                rc = stop_lab(proc)
                sc["lab_exit"] = rc
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
