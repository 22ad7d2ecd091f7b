"""Shared benchmark plumbing: machine facts, repeated timing, and the JSON + Markdown writers.

Every benchmark runs its peers in the same process on the same data and reports medians,
so ratios hold on a noisy machine.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": _commit(),
    }


def _commit() -> str | None:
    """The checkout's commit (with `+dirty` for uncommitted changes), so figures name their code."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def median_seconds(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn()` over `repeat` runs after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(
    out_dir: str | Path,
    name: str,
    result: dict[str, Any],
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    notes: str = "",
) -> str:
    """Write `<out>/result.json` and `<out>/<name>.md`; return (and print) the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine_info(), **result}
    (out / "result.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    table = markdown_table(columns, rows)
    m = payload["machine"]
    text = (f"## {name}\n\nMachine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
            f"commit {m['commit']}.\n\n{table}\n")
    if notes:
        text += f"\n{notes}\n"
    (out / f"{name}.md").write_text(text)
    print(text)
    return text


def main(run: Callable[..., object], name: str, doc: str | None) -> None:
    """`python -m benchmarks.<name> [--quick] [--out DIR]`, the same flags as `triage bench`."""
    import argparse

    parser = argparse.ArgumentParser(description=(doc or name).splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--out", default=f"benchmarks/results/{name}")
    args = parser.parse_args()
    run(args.out, quick=args.quick)
