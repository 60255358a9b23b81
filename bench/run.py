"""Runs every benchmark in bench/ and writes one report: bench/results/latest.json and .md.

Each ``bench/*.py`` (except ``run.py`` and helper modules named ``*lib.py``) is one bench,
run as its own process with ``WIFISYNC_BENCH_SET`` = quick or full; the figures it
reports through ``benchlib.record()`` become rows of the report, each with its median,
p99, runs, target and verdict, under the machine line. A bench that fails or times out is
a row too. With matplotlib (``pip install -e '.[bench]'``) a plot of every figure against
its target is written beside the report, and any PNG a bench wrote is linked.

    .venv/bin/python bench/run.py [--full] [--only NAME ...] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
sys.path.insert(0, str(BENCH))

from benchlib import RESULTS_ENV, SET_ENV, machine, speed_reference  # noqa: E402


def discover(only: list[str]) -> list[Path]:
    """The bench scripts, in name order."""
    found = [p for p in sorted(BENCH.glob("*.py"))
             if p.name != "run.py" and not p.stem.endswith("lib") and not p.name.startswith("_")]
    if only:
        found = [p for p in found if p.stem in only or p.name in only]
    return found


def run_one(script: Path, full: bool, timeout: float, log_dir: Path) -> dict[str, Any]:
    """Run one bench, echoing its output indented; returns its status and figures."""
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as sink:
        sink_path = Path(sink.name)
    env = {**os.environ, RESULTS_ENV: str(sink_path), SET_ENV: "full" if full else "quick",
           "PYTHONUNBUFFERED": "1"}
    log_path = log_dir / f"{script.stem}.log"
    started = time.monotonic()
    status = "ok"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, str(script)], env=env, cwd=BENCH.parent,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        deadline = started + timeout
        try:
            for line in proc.stdout:
                log.write(line)
                print(f"    {line.rstrip()}", flush=True)
                if time.monotonic() > deadline:
                    raise TimeoutError
            proc.wait(max(1.0, deadline - time.monotonic()))
            if proc.returncode != 0:
                status = f"failed (exit {proc.returncode})"
        except (TimeoutError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
            status = f"timed out after {timeout:.0f} s"
    figures = [json.loads(line) for line in sink_path.read_text().splitlines() if line]
    sink_path.unlink()
    return {"bench": script.name, "status": status, "seconds": time.monotonic() - started,
            "figures": figures, "log": str(log_path.relative_to(BENCH.parent))}


def fmt(value: float | None, unit: str) -> str:
    """A figure for the table."""
    if value is None:
        return "-"
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {unit}"


def write_markdown(report: dict[str, Any], path: Path) -> None:
    """latest.md: the machine, one table of every figure, failures, plots."""
    lines = [f"# wifisync benchmarks ({report['set']} set)", "",
             f"- when: {report['started']} UTC, {report['seconds']:.0f} s in all",
             f"- machine: {report['machine']}",
             f"- load average after: {report['load_after']}",
             f"- speed reference (`sum(range(10**6))`, lower is faster): "
             f"{report['speed_before']:.1f} ms before, {report['speed_after']:.1f} ms after",
             f"- command: `{report['command']}`", "",
             "| bench | figure | median | p99 | runs | target | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for bench in report["benches"]:
        for f in bench["figures"]:
            target = None if f["target"] is None else \
                ("≥ " if f["higher_is_better"] else "< ") + fmt(f["target"], f["unit"])
            name = f["name"] + (f" ({f['note']})" if f["note"] else "")
            lines.append(f"| {bench['bench']} | {name} | {fmt(f['median'], f['unit'])} | "
                         f"{fmt(f['p99'], f['unit'])} | {f['runs']} | {target or '-'} | "
                         f"{'**MISSED**' if f['verdict'] == 'MISSED' else f['verdict']} |")
        if bench["status"] != "ok" or not bench["figures"]:
            lines.append(f"| {bench['bench']} | (whole bench) | - | - | - | - | "
                         f"{bench['status'] if bench['status'] != 'ok' else 'no figures'}: "
                         f"see `{bench['log']}` |")
    counts = {v: sum(1 for b in report["benches"] for f in b["figures"] if f["verdict"] == v)
              for v in ("met", "MISSED", "no target")}
    lines += ["", f"{counts['met']} targets met, {counts['MISSED']} missed, "
              f"{counts['no target']} figures without a target."]
    if report["plots"]:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in report["plots"]]
    path.write_text("\n".join(lines) + "\n")


def plot_targets(report: dict[str, Any], path: Path) -> bool:
    """One bar per figure with a target: median / target (under 1 is met)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [(f"{b['bench'][:-3]}: {f['name']}"[:70],
             (f["target"] / f["median"]) if f["higher_is_better"] else f["median"] / f["target"])
            for b in report["benches"] for f in b["figures"]
            if f["target"] and f["median"] > 0]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.2))
    names, ratios = zip(*rows, strict=True)
    ax.barh(range(len(rows)), ratios, color=["tab:green" if r < 1 else "tab:red" for r in ratios])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(rows)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median / target (left of the line: target met)")
    ax.set_title(f"wifisync benchmarks, {report['set']} set")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="add the large sizes (bench-full)")
    parser.add_argument("--only", nargs="+", default=[], help="bench names to run")
    parser.add_argument("--timeout", type=float, help="seconds per bench (default 600 / 3600)")
    args = parser.parse_args()
    timeout = args.timeout or (3600.0 if args.full else 600.0)
    RESULTS.mkdir(exist_ok=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)
    scripts = discover(args.only)
    started, t0 = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), time.monotonic()
    print(f"machine: {machine()}")
    speed_before = speed_reference()
    before = {p.name: p.stat().st_mtime for p in RESULTS.glob("*.png")}
    benches = []
    for i, script in enumerate(scripts, 1):
        print(f"[{i}/{len(scripts)}] {script.name} ({time.monotonic() - t0:.0f} s so far)",
              flush=True)
        result = run_one(script, args.full, timeout, log_dir)
        print(f"[{i}/{len(scripts)}] {script.name}: {result['status']}, "
              f"{len(result['figures'])} figures, {result['seconds']:.0f} s", flush=True)
        benches.append(result)
    report: dict[str, Any] = {
        "set": "full" if args.full else "quick", "started": started,
        "seconds": time.monotonic() - t0, "machine": machine(),
        "load_after": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "speed_before": speed_before, "speed_after": speed_reference(),
        "command": "make bench-full" if args.full else "make bench",
        "benches": benches, "plots": []}
    if plot_targets(report, RESULTS / "latest.png"):
        report["plots"].append("latest.png")
    else:
        print("no plot: matplotlib is missing (pip install -e '.[bench]')")
    report["plots"] += sorted(p.name for p in RESULTS.glob("*.png") if p.name != "latest.png"
                              and p.stat().st_mtime != before.get(p.name))
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, RESULTS / "latest.md")
    missed = sum(1 for b in benches for f in b["figures"] if f["verdict"] == "MISSED")
    failed = [b["bench"] for b in benches if b["status"] != "ok"]
    print(f"report: {RESULTS / 'latest.md'} ({missed} targets missed"
          f"{', failed: ' + ', '.join(failed) if failed else ''})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
