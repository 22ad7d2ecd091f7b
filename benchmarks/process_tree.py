"""Run a command as a subprocess and poll its whole process tree: wall time, CPU time (the
command's own and its descendants'), peak summed RSS and, if asked, an RSS timeline.

The scan benchmarks measure `triage scan` this way: its hashing workers are forked by a
forkserver, so neither `RUSAGE_CHILDREN` nor the parent's own counters see all of the work.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class TreeRun:
    """What one polled run cost. CPU times are the last polled user + system time of each
    process (at most one poll interval short): `parent_cpu_seconds` the command's own
    process, `cpu_seconds` that plus every descendant's. (`RUSAGE_CHILDREN` would count
    twice what a reaped child had already been polled for, and miss a forkserver's workers.)"""

    seconds: float
    cpu_seconds: float
    parent_cpu_seconds: float
    peak_rss: int  # bytes, summed over the tree
    peak_process_rss: int  # bytes, the largest single process
    timeline: tuple[tuple[float, float], ...]  # (seconds since start, tree RSS in MB)


def run_polled(cmd: Sequence[str], label: str, poll_seconds: float = 0.05,
               timeline_seconds: float | None = None, cwd: Path = REPO) -> TreeRun:
    """Run `cmd` (stdout discarded) until it exits; raise `RuntimeError` naming `label` with
    the tail of its stderr if it fails."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = psutil.Popen(list(cmd), cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        peak_tree = peak_one = 0
        descendant_cpu: dict[int, float] = {}
        own = 0.0
        timeline: list[tuple[float, float]] = []
        next_sample = 0.0
        while proc.poll() is None:
            try:
                rss = [proc.memory_info().rss]
                t = proc.cpu_times()
                own = t.user + t.system
                for child in proc.children(recursive=True):
                    try:
                        rss.append(child.memory_info().rss)
                        t = child.cpu_times()
                        descendant_cpu[child.pid] = t.user + t.system
                    except psutil.Error:
                        pass  # a worker that exited between listing and reading
            except psutil.Error:
                break
            peak_tree, peak_one = max(peak_tree, sum(rss)), max(peak_one, max(rss))
            now = time.perf_counter() - t0
            if timeline_seconds is not None and now >= next_sample:
                timeline.append((round(now, 1), round(sum(rss) / 1e6, 1)))
                next_sample = now + timeline_seconds
            time.sleep(poll_seconds)
        seconds = time.perf_counter() - t0
        if proc.wait() != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{label} exited with {proc.returncode}:\n{tail}")
    return TreeRun(seconds, own + sum(descendant_cpu.values()), own, peak_tree, peak_one,
                   tuple(timeline))


def import_bank(store: Path, csv_path: Path, bank: str) -> None:
    """`triage bank import CSV` into `store` as bank `bank` (VIC scheme, version 1)."""
    cmd = [sys.executable, "-m", "cli.main", "bank", "import", str(csv_path), "--store",
           str(store), "--bank", bank, "--scheme", "vic", "--source", "benchmark",
           "--version", "1"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bank import exited with {done.returncode}:\n{done.stderr[-2000:]}")
