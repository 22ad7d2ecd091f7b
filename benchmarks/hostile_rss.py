"""Peak memory per hostile file: each file of the hardening suites scanned alone, in a fresh
process, with 2 workers, at the default limits.

For every case the scan's own peak RSS (`VmHWM` of the scan process; `ru_maxrss` would carry
the peak of whatever spawned it) and the largest worker's (sampled every 20 ms; VmHWM only
grows, so only a worker's last few ms can be missed) are reported against the 1 GiB per
process that issue 11 promises, with the row the file got.
Run: `python -m benchmarks.hostile_rss [--quick]`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import main, write_results
from benchmarks.peak import OWN_PEAK
from benchmarks.plots import bars, grid, save

MiB = 1024 * 1024
BOUND = 1024 * MiB

SCAN = OWN_PEAK + """
import json, sys
from pathlib import Path
from index.banks import BankStore
from triage.pipeline import ScanConfig, run_scan

tree = TreePeak()
ev, case, store = map(Path, sys.argv[1:])
BankStore(store).close()
run_scan(ScanConfig(evidence=(ev,), case_dir=case, store_dir=store, workers=2, inventory=True))
peaks = tree.stop()
rows = [json.loads(x) for x in (case / "manifest.jsonl").read_text().splitlines()]
bad = [r for r in rows if r["status"] == "error"]
print(json.dumps({"parent": own_peak_kib() * 1024,
                  "worker": max(peaks.values(), default=0) * 1024, "rows": len(rows),
                  "errors": len(bad),
                  "first_error": (bad[0].get("error") or bad[0].get("reason") or "")[:90]
                  if bad else ""}))
"""


def _cases(quick: bool) -> dict[str, Callable[[Path], object]]:
    from synthetic_fixtures import hostile_round2 as r2
    from synthetic_fixtures.hostile import write_hostile

    def one(name: str, data: Callable[[], bytes]) -> Callable[[Path], object]:
        return lambda d: (d / name).write_bytes(data())

    def round2(name: str) -> Callable[[Path], object]:
        def write(d: Path) -> None:
            made = r2.write_round2(d / "all", seed=3)
            made[name].rename(d / name)
            shutil.rmtree(d / "all")
        return write

    cases: dict[str, Callable[[Path], object]] = {
        "huge.png (RGBA 12000^2, 0.5 MB)": one("huge.png", r2.huge_rgba_png),
        "huge_frames.avi (MJPEG 12000^2, 3.4 MB)": one("huge_frames.avi", r2.huge_frame_video),
        "lying.mp4 (stsz 5e8)": lambda d: r2.mp4_with_patched_sample_count(d / "lying.mp4", 5),
        "slow.jpg (progressive, 40 repeated scans)": one(
            "slow.jpg", lambda: r2.slow_progressive_jpeg(seed=8, scans=40)),
        "bad_utf8.zip": round2("bad_utf8.zip"),
        "lying_size.zip (declares 300 MiB)": round2("lying_size.zip"),
    }
    if not quick:
        cases.update({
            "sparse.tar (24 x 200 MiB holes)": round2("sparse.tar"),
            "big.tar.gz (5 x 200 MiB members)": lambda d: r2.big_member_targz(
                d / "big.tar.gz", seed=4),
            "label collisions (a.zip!, inner.zip!/y.txt)": lambda d: r2.write_label_collisions(
                d / "tree", seed=5),
            "round-1 hostile collection (bombs, corrupt media, deep tree)": lambda d: write_hostile(
                d / "hostile", seed=7, bomb_bytes=8 * MiB),
        })
    return cases


def run(out_dir: str | Path, quick: bool = False) -> dict[str, Any]:
    repo = Path(__file__).resolve().parents[1]
    results = []
    for label, make in _cases(quick).items():
        base = Path(tempfile.mkdtemp(prefix="hostile_rss_"))
        try:
            ev = base / "ev"
            ev.mkdir()
            make(ev)
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", SCAN, str(ev), str(base / "case"),
                                   str(base / "store")], cwd=repo, capture_output=True,
                                  text=True, timeout=900)
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"{label}: scan failed: {proc.stderr[-2000:]}")
            out = json.loads(proc.stdout.splitlines()[-1])
        finally:
            shutil.rmtree(base, ignore_errors=True)
        results.append({"case": label, "seconds": seconds, **out})
    rows = [[r["case"], r["parent"] / MiB, r["worker"] / MiB, r["rows"], r["errors"],
             r["first_error"], r["seconds"]] for r in results]
    fig, (ax,) = grid(1, ncols=1, panel_size=(12.0, 4.5))
    bars(ax, [r["case"].split(" (")[0] for r in results],
         {"scan process": [r["parent"] / MiB for r in results],
          "largest worker": [r["worker"] / MiB for r in results]}, "peak RSS (MiB)")
    ax.axhline(BOUND / MiB, color="k", linestyle="--", linewidth=1)
    ax.tick_params(axis="x", labelrotation=30)
    save(fig, Path(out_dir) / "hostile_rss.png", title="Peak RSS per hostile file (2 workers)")
    ok = all(r["parent"] < BOUND and r["worker"] < BOUND for r in results)
    write_results(out_dir, "hostile_rss", {"results": results, "all_under_1_gib": ok},
                  ["case", "scan MiB", "worker MiB", "rows", "errors", "first error row",
                   "seconds"], rows,
                  notes=("Peak RSS is VmHWM (the process's own peak). Every case "
                         + ("stays" if ok else "does NOT stay") + " under 1 GiB per process."))
    return {"results": results}


if __name__ == "__main__":
    main(run, "hostile_rss", __doc__)
