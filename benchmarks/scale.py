"""Scan scale: memory and speed from 10^5 to 10^7 items, and where the memory goes.

Two kinds of rows, each measured in a subprocess whose peak RSS (`ru_maxrss`, the largest
single process; hashing workers are separate processes of bounded size) and CPU time are read
when it exits:

1. `files`: a real `triage scan --workers 1` of generated small files on disk, 92 % documents
   and 8 % tiny JPEGs (the mix of a seized workstation's small files): every stage, per file.
2. `rows`: the stages after hashing (manifest, match, cluster, score, write) over a case
   database filled with generated manifest rows of the same mix, written the way the record
   stage writes them. This is where memory used to grow per file (every record was held for
   matching, clustering, the queue and the summary); hashing holds only the executor's
   in-flight batches. It reaches 10^7 rows without 10^7 files on disk, whose generation and
   hashing would take hours on a shared 2-core machine and 10M of its 16M shared inodes.

Both use the same bank: per 10,000 rows, the digests of two documents and of one image with its
PDQ (whose series of near-duplicates then matches too).
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks import harness, plots
from hashing.types import HashRecord
from synthetic_fixtures.hashlists import BankListEntry, write_hash_lists

REPO = Path(__file__).resolve().parent.parent
MEDIA_SHARE = 0.08
FULL_FILES = (100_000, 1_000_000)
FULL_ROWS = (100_000, 1_000_000, 10_000_000)
QUICK_FILES = (2_000, 10_000)
QUICK_ROWS = (2_000, 20_000)
CHUNK = 20_000


@dataclass(frozen=True, slots=True)
class ScaleRun:
    kind: str  # files | rows
    items: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    stages: dict[str, float]

    @property
    def per_s(self) -> float:
        return self.items / self.seconds

    @property
    def cpu_us_per_item(self) -> float:
        return 1e6 * self.cpu_seconds / self.items


def _is_media(k: int) -> bool:
    return k % 100 < MEDIA_SHARE * 100


def _pdq(rng: np.random.Generator, bases: np.ndarray, k: int) -> str:
    """Series of near-duplicates: a base hash per 20 images, each image 0-12 bits from it."""
    code = np.unpackbits(bases[(k // 100) % len(bases)]).copy()
    code[rng.choice(256, int(rng.integers(0, 13)), replace=False)] ^= 1
    return np.packbits(code).tobytes().hex()


def synthetic_record(k: int, rng: np.random.Generator, bases: np.ndarray) -> HashRecord:
    digests = {"md5": rng.bytes(16).hex(), "sha1": rng.bytes(20).hex(),
               "sha256": rng.bytes(32).hex()}
    path = f"/evidence/u{k % 7}/d{k // 1000:05d}/f{k:08d}"
    if _is_media(k):
        return HashRecord(path=path + ".jpg", status="hashed", media_type="image/jpeg",
                          width=48, height=36, hashes={"pdq": _pdq(rng, bases, k), **digests},
                          pdq_quality=90, size=900, mtime=1.7e9, kind="file")
    return HashRecord(path=path + ".txt", status="hashed", media_type=None,
                      hashes=digests, size=700, mtime=1.7e9, kind="file")


def fill_case(case: Path, n: int, seed: int) -> list[HashRecord]:
    """A case database whose latest run saw `n` generated rows; returns the bank's picks."""
    from triage.casedb import CaseDB
    from triage.outputs import ensure_private_dir

    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 256, (max(1, n // 2000), 32), dtype=np.uint8)
    picks: list[HashRecord] = []
    ensure_private_dir(case)
    with CaseDB(case / "case.sqlite") as db:
        run = db.begin_run("2026-01-01T00:00:00+00:00")
        for lo in range(0, n, CHUNK):
            rows = []
            for k in range(lo, min(n, lo + CHUNK)):
                rec = synthetic_record(k, rng, bases)
                if k % 10_000 in (50, 3_050) or k % 10_000 == 0:  # 2 documents, 1 image
                    picks.append(rec)
                rows.append((rec.to_dict(), os.fsencode(rec.path), True))  # a unique row key
            db.put(run, "bench", rows)
    return picks


def write_bank(store: Path, work: Path, picks: list[HashRecord]) -> None:
    from index.bank_import import ImportOptions
    from index.banks import BankStore

    entries = [BankListEntry(id=f"K{i:06d}", md5=r.hashes["md5"], sha1=r.hashes["sha1"],
                             sha256=r.hashes["sha256"], size=r.size or 0, crc32="00000000",
                             file_name=Path(r.path).name, category=1 + i % 3,
                             series=f"S{i % 5}", pdq=r.hashes.get("pdq"),
                             pdq_quality=90 if "pdq" in r.hashes else None)
               for i, r in enumerate(picks)]
    infos = write_hash_lists(work, entries, 1, name="scale_bank", malformed=False)
    csv_path = next(i.path for i in infos if i.format == "csv")
    with BankStore(store) as bank_store:
        bank_store.import_file(str(csv_path), ImportOptions(bank="scale", format="csv",
                                                            scheme="vic"))


def _tiny_jpegs(seed: int, count: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (36, 48, 3), dtype=np.int16)
    out = []
    for _ in range(count):
        img = np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def write_small_files(root: Path, n: int, seed: int) -> None:
    """`n` files on disk, 1,000 per folder: the mix `synthetic_record` describes."""
    rng = np.random.default_rng(seed)
    jpegs = _tiny_jpegs(seed, max(1, int(n * MEDIA_SHARE)))
    words = np.array([b"case", b"note", b"the", b"file", b"meeting", b"data", b"2026"])
    for k in range(n):
        folder = root / f"u{k % 7}" / f"d{k // 1000:05d}"
        if k // 7 % 1000 == 0 or not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
        if _is_media(k):
            (folder / f"f{k:08d}.jpg").write_bytes(jpegs[k % len(jpegs)])
        else:
            body = b" ".join(rng.choice(words, int(rng.integers(40, 400))))
            (folder / f"f{k:08d}.txt").write_bytes(body + b" %d" % k)


def _measure(cmd: list[str], kind: str, items: int) -> ScaleRun:
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # The hashing worker is the forkserver's child, not ours: its CPU time is the summary's.
    cpu += report["stages"].get("hash_cpu", 0.0)
    return ScaleRun(kind, items, seconds, cpu, report["peak_rss_mb"], report["stages"])


def derive_rows(case: Path, store: Path) -> dict[str, Any]:
    """In the child: the manifest and every derive stage over the case's latest run."""
    from index.banks import BankStore
    from triage.casedb import CaseDB
    from triage.derive import derive_and_write
    from triage.policy import Policy
    from triage.reports.manifest import write_manifest
    from triage.stages import StageTimer

    timer = StageTimer()
    with BankStore(store) as bank_store:
        matcher = bank_store.open_matcher()
    with CaseDB(case / "case.sqlite") as db:
        run = max(r for (r,) in db._db.execute("SELECT id FROM runs"))
        with timer.stage("manifest"):
            write_manifest(case / "manifest.jsonl", (row.text for row in db.rows(run)))
        summary = derive_and_write(case, db, run, matcher, Policy(), {}, timer)
    matcher.close()
    return {"counts": summary["counts"], "stages": summary["timings"]}


def _child(argv: list[str]) -> None:
    if argv[0] == "rows":
        out = derive_rows(Path(argv[1]), Path(argv[2]))
    else:  # files: the real scan, in this process
        from triage.pipeline import ScanConfig, run_scan

        result = run_scan(ScanConfig(evidence=(Path(argv[1]),), case_dir=Path(argv[2]),
                                     store_dir=Path(argv[3]), workers=1))
        out = {"counts": result.summary["counts"], "stages": result.summary["timings"]}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def run(out_dir: str | Path, quick: bool = False, files_sizes: tuple[int, ...] | None = None,
        row_sizes: tuple[int, ...] | None = None) -> dict[str, Any]:
    if files_sizes is None:
        files_sizes = QUICK_FILES if quick else FULL_FILES
    if row_sizes is None:
        row_sizes = QUICK_ROWS if quick else FULL_ROWS
    runs: list[ScaleRun] = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="triage-bench-scale-") as tmp:
        work = Path(tmp)
        store = work / "store"
        write_bank(store, work / "bank", fill_case(work / "bank_case", 20_000, 11))
        shutil.rmtree(work / "bank_case")
        for n in row_sizes:
            case = work / f"rows_{n}"
            fill_case(case, n, 11)
            runs.append(_measure([sys.executable, "-m", "benchmarks.scale", "--child", "rows",
                                  str(case), str(store)], "rows", n))
            shutil.rmtree(case)
            publish(Path(out_dir), runs, quick, load)  # each row kept as soon as measured
        for n in files_sizes:
            evidence = work / f"files_{n}"
            write_small_files(evidence, n, 12)
            try:
                runs.append(_measure([sys.executable, "-m", "benchmarks.scale", "--child",
                                      "files", str(evidence), str(work / f"case_{n}"),
                                      str(store)], "files", n))
            finally:
                shutil.rmtree(evidence)  # 10^6 inodes of a shared disk: never left behind
                shutil.rmtree(work / f"case_{n}", ignore_errors=True)
            publish(Path(out_dir), runs, quick, load)
    return publish(Path(out_dir), runs, quick, load)


def _per_item_kb(a: ScaleRun, b: ScaleRun) -> float:
    return (b.peak_rss_mb - a.peak_rss_mb) * 1024 / (b.items - a.items)


def plot(out: Path, runs: list[ScaleRun]) -> Path:
    fig, (ax1, ax2) = plots.grid(2, ncols=2)
    for k, kind in enumerate(("rows", "files")):
        mine = [r for r in runs if r.kind == kind]
        if mine:
            items = [r.items for r in mine]
            ax1.plot(items, [r.peak_rss_mb for r in mine], "o-", color=plots.colour(k),
                     label=kind)
            ax2.plot(items, [r.cpu_us_per_item for r in mine], "o-", color=plots.colour(k),
                     label=kind)
    for ax, label in ((ax1, "peak RSS (MB)"), (ax2, "CPU us per item")):
        ax.set_xscale("log")
        ax.set_xlabel("items")
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
    ax1.set_title("memory")
    ax2.set_title("time per item")
    return plots.save(fig, out / "scale.png")


def publish(out: Path, runs: list[ScaleRun], quick: bool,
            load: tuple[float, float, float], note: str = "") -> dict[str, Any]:
    result: dict[str, Any] = {"quick": quick, "load_average_at_start": load, "note": note,
                              "runs": [{**asdict(r), "per_s": r.per_s,
                                        "cpu_us_per_item": r.cpu_us_per_item} for r in runs]}
    notes = []
    for kind in ("rows", "files"):
        mine = [r for r in runs if r.kind == kind]
        if len(mine) >= 2:
            kb = _per_item_kb(mine[0], mine[-1])
            cpu = mine[-1].cpu_us_per_item / mine[0].cpu_us_per_item
            result[f"{kind}_kb_per_item"] = kb
            result[f"{kind}_cpu_per_item_ratio"] = cpu
            notes.append(f"{kind}: peak RSS grows {kb:.3f} KB per extra item from "
                         f"{mine[0].items:,} to {mine[-1].items:,}; CPU time per item at "
                         f"{mine[-1].items:,} is {cpu:.2f}x that at {mine[0].items:,}.")
    notes.append(f"Load average when the run started: {load[0]:.1f} (2 cores shared by other "
                 "work): wall times and items/s are inflated by it; CPU time per item is the "
                 "steadier measure.")
    if note:
        notes.append(note)
    out.mkdir(parents=True, exist_ok=True)
    plot(out, runs)
    harness.write_results(
        out, "scale", result,
        ("kind", "items", "wall s", "items/s", "CPU s", "CPU us/item", "peak RSS MB"),
        [(r.kind, f"{r.items:,}", r.seconds, r.per_s, r.cpu_seconds, r.cpu_us_per_item,
          r.peak_rss_mb) for r in runs],
        notes="\n\n".join(notes),
    )
    return result


def merge(out: Path, parts: list[Path], note: str = "") -> dict[str, Any]:
    """Publish the runs of separately run parts (e.g. the 10^7 rows beside the files) as one."""
    runs, loads, quick = [], [], False
    for part in parts:
        data = json.loads((part / "result.json").read_text())
        quick = quick or data["quick"]
        loads.append(tuple(data["load_average_at_start"]))
        runs += [ScaleRun(**{f: d[f] for f in ScaleRun.__dataclass_fields__})
                 for d in data["runs"]]
    runs.sort(key=lambda r: (r.kind != "rows", r.items))
    return publish(out, runs, quick, max(loads), note)


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2:])
    elif sys.argv[1:2] == ["--merge"]:  # --merge OUT NOTE PART...
        merge(Path(sys.argv[2]), [Path(p) for p in sys.argv[4:]], sys.argv[3])
    elif "--rows" in sys.argv or "--files" in sys.argv:
        import argparse

        parser = argparse.ArgumentParser()
        parser.add_argument("--rows", type=_sizes, default=())
        parser.add_argument("--files", type=_sizes, default=())
        parser.add_argument("--out", required=True)
        args = parser.parse_args()
        run(args.out, files_sizes=args.files, row_sizes=args.rows)
    else:
        harness.main(run, "scale", __doc__)
