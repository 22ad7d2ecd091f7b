"""Scan scale: the real `triage scan` of 10^5, 10^6 and 10^7 generated small files.

Each row is one default `triage scan EVIDENCE --case CASE --store STORE` run as a subprocess
(the CLI's code path: walk, read once, hash in the default worker pool, record, match,
cluster, score, write), of a fresh tree of small files: 92 % small text documents and 8 %
tiny JPEGs, 1,000 files a folder. Peak RSS is the largest summed RSS of the scan's whole
process tree (the parent, its forkserver and the hashing workers), polled with psutil
(`benchmarks.process_tree`); the RSS timeline is kept too, so growth with the file count
shows where it happens. CPU time is each process's last polled CPU time, summed.

Generation writes bytes directly (`os.open`/`os.write`). Documents are a pool of text bodies
with the file's number appended; images are tiny JPEGs, one base image per 8 images (the
pixels of a base repeat, as re-saved copies in seizures do), each copy with its own COM
segment, so every file's digests differ while every JPEG decodes for real. The bank holds,
per 10,000 files, the digests of two documents and of one image, whose PDQ then matches its
base's other copies. The tree is deleted as soon as its scan ends.

`--loop-image` (root only) generates the tree inside an ext4 image on a loop device instead of
the work folder's file system: 1 KiB blocks and 1 KiB inodes with inline data, so a document
lives in its inode and a JPEG costs one block (10^7 files take ~12 GB, not the host's 4 KiB a
file and its inode table), and deleting the tree is one unlink. The image is mounted
read-write for generation, read back (a sample of files compared with what was written) and
remounted read-only for the scan: evidence is read-only.

A row is published only if its counts are what the generated case must give: no attention
rows (every file is readable and every JPEG decodes) and the images' clusters present;
otherwise the run fails loudly and keeps the case, the store and the image for inspection
(`--keep` keeps them after a valid run too).

Run: `python -m benchmarks.scan_scale --files 100000,1000000 --out DIR` (one row per size;
`--merge OUT NOTE PART...` publishes separately run rows as one result).
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks import harness, plots, process_tree
from synthetic_fixtures.hashlists import entry_from_bytes, write_hash_lists

REPO = Path(__file__).resolve().parent.parent
PER_FOLDER = 1000
MEDIA_EVERY = (0, 12)  # of each 25 files: 8 % JPEGs
COPIES = 8  # images per base picture
BANK_EVERY = 10_000
POLL_SECONDS = 0.2
TIMELINE_SECONDS = 2.0
FULL_FILES = (100_000, 1_000_000)
QUICK_FILES = (2_000, 10_000)
# Targets from issue 14.
TARGET_RATIO = 1.25
TARGET_MB = {1_000_000: 1024 * 1.048576, 10_000_000: 2048 * 1.048576}  # 1 GiB, 2 GiB in MB
READ_BACK = 20_000  # files compared with their bytes after generation
IMAGE_SLACK = 1.3  # the loop image's size over its estimated use (sparse: unused costs nothing)
WORDS = (b"case", b"note", b"the", b"file", b"meeting", b"report", b"data", b"invoice", b"2026",
         b"draft", b"minutes", b"project", b"budget", b"call", b"review", b"and", b"of", b"to")


@dataclass(frozen=True, slots=True)
class ScaleScan:
    files: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float  # the whole process tree
    peak_process_rss_mb: float  # its largest single process
    generate_seconds: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    nice: int
    counts: dict[str, int]
    stages: dict[str, float]
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (s, tree RSS MB)

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds

    @property
    def cpu_us_per_file(self) -> float:
        return 1e6 * self.cpu_seconds / self.files

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "files_per_s": self.files_per_s,
                "cpu_us_per_file": self.cpu_us_per_file}


def is_media(k: int) -> bool:
    return k % 25 in MEDIA_EVERY


def _bodies(rng: np.random.Generator, count: int) -> list[bytes]:
    words = np.array(WORDS)
    out = []
    for _ in range(count):
        lines = [b" ".join(rng.choice(words, int(rng.integers(4, 12))))
                 for _ in range(int(rng.integers(2, 12)))]
        out.append(b"\n".join(lines))
    return out


def _base_jpeg(rng: np.random.Generator) -> bytes:
    """A tiny JPEG of a smooth random picture (a real decode, a PDQ of its own)."""
    coarse = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((48, 36), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _with_comment(jpeg: bytes, k: int) -> bytes:
    """`jpeg` with a COM segment naming file `k` right after SOI: new digests, same pixels."""
    text = b"file %d" % k
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + jpeg[2:]


def _folder(k: int) -> str:
    return f"g{k // 1_000_000:02d}/d{k // PER_FOLDER % 1000:03d}"


def _name(k: int) -> str:
    return f"f{k:08d}.{'jpg' if is_media(k) else 'txt'}"


def file_path(root: Path, k: int) -> Path:
    return root / _folder(k) / _name(k)


def file_bytes(k: int, bodies: list[bytes], bases: list[bytes]) -> bytes:
    if is_media(k):
        image = k // 25 * 2 + (k % 25 != 0)
        return _with_comment(bases[image // COPIES % len(bases)], k)
    return bodies[k % len(bodies)] + b"\n-- %d\n" % k


_POOL: tuple[str, list[bytes], list[bytes]] = ("", [], [])  # inherited by forked writers


def _write_range(span: tuple[int, int]) -> None:
    """Files lo..hi-1, one folder at a time, opened relative to the folder (`dir_fd`): the
    per-file work is the three system calls."""
    root, bodies, bases = _POOL
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for start in range(span[0], span[1], PER_FOLDER):
        folder = os.path.join(root, _folder(start))
        os.makedirs(folder, exist_ok=True)
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for k in range(start, min(span[1], start + PER_FOLDER)):
                fd = os.open(_name(k), flags, 0o644, dir_fd=dfd)
                try:
                    os.write(fd, file_bytes(k, bodies, bases))
                finally:
                    os.close(fd)
        finally:
            os.close(dfd)


def generate(root: Path, n: int, seed: int = 14,
             processes: int = 2) -> tuple[list[bytes], list[bytes]]:
    """Write `n` files under `root` (by `processes` forked writers, a folder range each);
    returns the (bodies, bases) they were built from."""
    import multiprocessing

    global _POOL
    rng = np.random.default_rng(seed)
    bodies = _bodies(rng, 997)
    bases = [_base_jpeg(rng) for _ in range(max(1, n * len(MEDIA_EVERY) // 25 // COPIES))]
    _POOL = (str(root), bodies, bases)
    folders = range(0, n, PER_FOLDER)
    spans = [(lo, min(n, lo + 50 * PER_FOLDER)) for lo in folders[::50]]
    if processes <= 1 or len(spans) == 1:
        for span in spans:
            _write_range(span)
    else:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            pool.map(_write_range, spans, chunksize=1)
    return bodies, bases


def bank_picks(n: int) -> list[int]:
    """The planted files: per 10,000, two documents and one image."""
    return [k for lo in range(0, n, BANK_EVERY) for k in (lo + 1, lo + 5001, lo) if k < n]


def write_bank(store: Path, work: Path, root: Path, n: int, bodies: list[bytes],
               bases: list[bytes]) -> int:
    """Import the planted files' digests (and the images' PDQ) as one bank; returns entries."""
    from hashing.hasher import HashOptions, hash_path

    entries = []
    for i, k in enumerate(bank_picks(n)):
        data = file_bytes(k, bodies, bases)
        pdq = quality = None
        if is_media(k):
            rec = hash_path(str(file_path(root, k)), HashOptions(("pdq",)))
            pdq, quality = rec.hashes.get("pdq"), rec.pdq_quality
            if pdq is None:  # a tree whose JPEGs do not decode is no benchmark: stop early
                raise RuntimeError(f"generated {file_path(root, k)} has no PDQ: "
                                   f"{rec.status} {rec.error}")
        entries.append(entry_from_bytes(data, entry_id=f"K{i:06d}",
                                        file_name=file_path(root, k).name, category=1 + i % 3,
                                        series=f"S{i % 5}", pdq=pdq, pdq_quality=quality))
    infos = write_hash_lists(work, entries, 14, name="scale_bank", malformed=False)
    csv_path = next(i.path for i in infos if i.format == "csv")
    process_tree.import_bank(store, Path(csv_path), "scale")
    return len(entries)


class InvalidRow(RuntimeError):
    """A scan whose counts are not what its generated case must give: not to be published."""


def expected_clusters(n: int) -> int:
    """Image clusters the case must give at least: half of its base pictures (each base's 8
    copies are one cluster; a few bases' copies fall into one cluster with another's)."""
    return n * len(MEDIA_EVERY) // 25 // COPIES // 2


def check_counts(n: int, counts: dict[str, int], summary: dict[str, Any],
                 min_clusters: int | None = None) -> None:
    """Raise `InvalidRow` unless the scan saw every file as the generator wrote it: the tree
    holds no undecodable or unreadable file, so any attention row is a fault (of the
    generation, the file system or the scan), and the images must cluster (at least
    `min_clusters`, by default `expected_clusters(n)` of this module's generator)."""
    problems = []
    min_clusters = expected_clusters(n) if min_clusters is None else min_clusters
    if counts.get("attention", 0):
        top = Counter(str(e.get("reason")) for e in summary.get("attention", [])).most_common(5)
        problems.append(f"{counts['attention']:,} attention rows, none expected (reasons of "
                        f"the first listed: {top})")
    if counts.get("clusters", 0) < min_clusters:
        problems.append(f"{counts.get('clusters', 0):,} clusters, at least "
                        f"{min_clusters:,} expected")
    if problems:
        raise InvalidRow(f"scan of {n:,} files is not a valid row: " + "; ".join(problems))


class LoopUnavailable(RuntimeError):
    """The loop image could not be made or mounted (not root, no loop device, no mkfs.ext4)."""


def _run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {done.returncode}: "
                           f"{done.stderr.strip()[-1000:]}")


def image_bytes(n: int) -> int:
    """The loop image's size for `n` files: an inode each, a block per JPEG (just over the
    inline space), directory blocks (~24 bytes an entry), metadata, with slack."""
    media = n * len(MEDIA_EVERY) // 25
    used = n * 1024 + media * 1024 + n * 32 + 64 * 1024 * 1024
    return int(used * IMAGE_SLACK)


@contextmanager
def loop_image(image: Path, mount: Path, n: int, keep: bool = False) -> Iterator[Path]:
    """An ext4 file system for `n` generated files in the sparse file `image`, mounted
    read-write at `mount`; unmounted at the end and the image deleted unless `keep` is set
    (or `keep_image` was called), also when the block fails or is interrupted."""
    image.parent.mkdir(parents=True, exist_ok=True)
    mount.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as fh:
        fh.truncate(image_bytes(n))
    mounted = False
    _KEPT.discard(image)
    try:
        # -N: an inode per file plus the folders, with room for mkfs rounding inodes per
        # group down; no journal: a scratch file system
        try:
            _run("mkfs.ext4", "-q", "-F", "-b", "1024", "-I", "1024", "-O",
                 "inline_data,^has_journal", "-N", str(n + n // 20 + 10_000), "-m", "0",
                 str(image))
            _run("mount", "-o", "loop,noatime", str(image), str(mount))
        except (OSError, RuntimeError) as exc:
            raise LoopUnavailable(str(exc)) from exc
        mounted = True
        yield mount
    finally:
        if mounted:
            _unmount(mount)
        if keep or image in _KEPT:
            print(f"kept the evidence image {image} (mount -o loop,ro {image} {mount})",
                  file=sys.stderr)
        else:
            image.unlink(missing_ok=True)
            mount.rmdir()


_KEPT: set[Path] = set()  # images a failed run asked to keep
UMOUNT_TRIES = 30


def _unmount(mount: Path) -> None:
    """Unmount, waiting for an interrupted scan's workers to close their files; a mount still
    busy after that is detached lazily (the kernel drops it when the last file closes)."""
    for _ in range(UMOUNT_TRIES):
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0:
            return
        time.sleep(1.0)
    _run("umount", "--lazy", str(mount))


def remount_read_only(mount: Path) -> None:
    """Flush the generated tree and remount it read-only, so the scan cannot change evidence
    (and a write-back failure shows here, not as unreadable files in the scan)."""
    os.sync()
    _run("mount", "-o", "remount,ro", str(mount))
    probe = mount / ".ro_probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return
    probe.unlink()
    raise RuntimeError(f"{mount} is still writable after remount,ro")


def read_back(root: Path, n: int, bodies: list[bytes], bases: list[bytes],
              count: int = READ_BACK) -> None:
    """Compare `count` files (every JPEG kind and the last file included) with the bytes
    they were written from; raise naming the first few that differ or cannot be read."""
    picks = sorted({*random.Random(n).sample(range(n), min(count, n)), 0, 1, n - 1})
    bad = []
    for k in picks:
        try:
            if file_path(root, k).read_bytes() != file_bytes(k, bodies, bases):
                bad.append(f"file {k}: other bytes")
        except OSError as exc:
            bad.append(f"file {k}: {exc}")
    if bad:
        raise RuntimeError(f"{len(bad):,} of {len(picks):,} generated files read back wrong: "
                           f"{bad[:5]}")


def scan(evidence: Path, case: Path, store: Path, n: int,
         generate_seconds: float, min_clusters: int | None = None) -> ScaleScan:
    """One default `triage scan`, its process tree polled for RSS and CPU until it exits
    (`min_clusters`: see `check_counts`; another generator's case states its own)."""
    cmd = [sys.executable, "-m", "cli.main", "scan", str(evidence), "--case", str(case),
           "--store", str(store)]
    load_before = os.getloadavg()
    done = process_tree.run_polled(cmd, f"scan of {n:,} files", POLL_SECONDS, TIMELINE_SECONDS)
    summary = json.loads((case / "summary.json").read_text())
    counts = {k: v for k, v in summary.get("counts", {}).items() if isinstance(v, int)}
    check_counts(n, counts, summary, min_clusters)
    return ScaleScan(files=n, seconds=done.seconds, cpu_seconds=done.cpu_seconds,
                     peak_rss_mb=done.peak_rss / 1e6,
                     peak_process_rss_mb=done.peak_process_rss / 1e6,
                     generate_seconds=generate_seconds,
                     load_before=load_before, load_after=os.getloadavg(),
                     nice=os.nice(0), counts=counts,
                     stages={k: float(v) for k, v in summary.get("timings", {}).items()},
                     timeline=list(done.timeline))


def prepare(n: int, work: Path, loop: bool = False) -> float:
    """Generate `n` files under `work` and bank the planted ones; returns the seconds taken
    (also left in `work/generated_N.json`, so a tree generated ahead is scanned later). With
    `loop` the tree's mount point is ready (`loop_image`): it is read back and remounted
    read-only."""
    evidence, store = work / f"evidence_{n}", work / f"store_{n}"
    t0 = time.perf_counter()
    bodies, bases = generate(evidence, n)
    seconds = time.perf_counter() - t0
    write_bank(store, work / f"bank_{n}", evidence, n, bodies, bases)
    if loop:
        remount_read_only(evidence)
        read_back(evidence, n, bodies, bases)
    (work / f"generated_{n}.json").write_text(json.dumps({"seconds": seconds}))
    return seconds


def _remove(work: Path, n: int, evidence: bool) -> None:
    paths = [work / f"case_{n}", work / f"store_{n}", work / f"bank_{n}"]
    for p in paths + ([work / f"evidence_{n}"] if evidence else []):
        shutil.rmtree(p, ignore_errors=True)


def _kept(work: Path, n: int, exc: BaseException | None) -> None:
    print(f"kept the case {work / f'case_{n}'} and store {work / f'store_{n}'}"
          + (f" after: {exc}" if exc else ""), file=sys.stderr)


def scan_prepared(n: int, work: Path, keep: bool = False, evidence_owned: bool = True
                  ) -> ScaleScan:
    """Scan the tree `prepare` left in `work`, then delete it (millions of inodes of a shared
    disk are never left behind) unless `keep` is set or the row is invalid (`InvalidRow`:
    its case, store and tree are kept for inspection)."""
    evidence, case, store = work / f"evidence_{n}", work / f"case_{n}", work / f"store_{n}"
    try:
        seconds = json.loads((work / f"generated_{n}.json").read_text())["seconds"]
        row = scan(evidence, case, store, n, seconds)
    except InvalidRow as exc:
        _KEPT.add(work / f"evidence_{n}.img")
        _kept(work, n, exc)
        raise
    except BaseException:
        if not keep:
            _remove(work, n, evidence_owned)
        raise
    if keep:
        _kept(work, n, None)
    else:
        _remove(work, n, evidence_owned)
    return row


def measure(n: int, work: Path, loop: bool = False, keep: bool = False) -> ScaleScan:
    """Generate `n` files under `work` (in a loop image with `loop`), bank the planted ones,
    scan, delete the tree (see `scan_prepared` for what is kept)."""
    if not loop:
        try:
            prepare(n, work)
        except BaseException:
            shutil.rmtree(work / f"evidence_{n}", ignore_errors=True)
            raise
        return scan_prepared(n, work, keep)
    with loop_image(work / f"evidence_{n}.img", work / f"evidence_{n}", n, keep):
        try:
            prepare(n, work, loop=True)
        except BaseException:
            _remove(work, n, evidence=False)
            raise
        return scan_prepared(n, work, keep, evidence_owned=False)


def plot(out: Path, scans: list[ScaleScan]) -> Path:
    fig, (ax1, ax2) = plots.grid(2, ncols=2)
    for k, s in enumerate(scans):
        if s.timeline:
            t, mb = zip(*s.timeline, strict=True)
            ax1.plot(np.asarray(t) / s.seconds, mb, color=plots.colour(k),
                     label=f"{s.files:,} files")
    ax1.set_xlabel("share of the scan's wall time")
    ax1.set_ylabel("process-tree RSS (MB)")
    ax1.set_title("memory over the scan")
    ax1.legend(fontsize="small")
    files = [s.files for s in scans]
    ax2.plot(files, [s.cpu_us_per_file for s in scans], "o-", color=plots.colour(0),
             label="CPU us per file")
    ax2.plot(files, [1e6 / s.files_per_s for s in scans], "s--", color=plots.colour(1),
             label="wall us per file")
    ax2.set_xscale("log")
    ax2.set_xlabel("files")
    ax2.set_ylabel("us per file")
    ax2.set_title("time per file")
    ax2.legend(fontsize="small")
    return plots.save(fig, out / "scan_scale.png")


def _notes(scans: list[ScaleScan], note: str) -> tuple[dict[str, Any], str]:
    by_n = {s.files: s for s in scans}
    facts: dict[str, Any] = {}
    lines = []
    for lo, hi in ((100_000, 1_000_000), (1_000_000, 10_000_000)):
        if lo not in by_n or hi not in by_n:
            continue
        a, b = by_n[lo], by_n[hi]
        e_lo, e_hi = f"1e{len(str(lo)) - 1}", f"1e{len(str(hi)) - 1}"
        cpu = facts[f"cpu_per_file_ratio_{e_hi}_vs_{e_lo}"] = b.cpu_us_per_file / a.cpu_us_per_file
        wall = facts[f"wall_per_file_ratio_{e_hi}_vs_{e_lo}"] = a.files_per_s / b.files_per_s
        kb = facts[f"kb_per_extra_file_{e_lo}_to_{e_hi}"] = (b.peak_rss_mb - a.peak_rss_mb) * (
            1000 / (b.files - a.files))
        lines.append(
            f"Per-file cost at 10^{e_hi[2:]} vs 10^{e_lo[2:]}: {cpu:.2f}x the CPU time, "
            f"{wall:.2f}x the wall time (target <= {TARGET_RATIO}x); peak RSS grows "
            f"{kb:.3f} KB per extra file.")
    for n, limit in TARGET_MB.items():
        if n in by_n:
            ok = by_n[n].peak_rss_mb < limit
            facts[f"under_target_{n}"] = ok
            lines.append(f"{n:,} files: peak RSS {by_n[n].peak_rss_mb:,.0f} MB, target < "
                         f"{limit:,.0f} MB ({limit / 1.048576 / 1024:.0f} GiB): "
                         f"{'met' if ok else 'NOT met'}.")
    for s in scans:
        lines.append(f"{s.files:,} files: load average {s.load_before[0]:.1f} at the start, "
                     f"{s.load_after[0]:.1f} at the end (2 cores shared with other work), "
                     f"nice {s.nice}; generation took {s.generate_seconds:.0f} s.")
    lines.append("Wall-clock rates are inflated by the load; CPU time per file is the steadier "
                 "measure. Peak RSS is the summed RSS of the scan's process tree.")
    if note:
        lines.append(note)
    return facts, "\n\n".join(lines)


def publish(out: Path, scans: list[ScaleScan], quick: bool, note: str = "") -> dict[str, Any]:
    scans = sorted(scans, key=lambda s: s.files)
    facts, notes = _notes(scans, note)
    result: dict[str, Any] = {"quick": quick, **facts, "note": note,
                              "scans": [s.to_dict() for s in scans]}
    out.mkdir(parents=True, exist_ok=True)
    plot(out, scans)
    stage_names = ("walk_and_hash", "match", "cluster", "score", "write", "manifest")
    harness.write_results(
        out, "scan_scale", result,
        ("files", "wall s", "files/s", "CPU s", "CPU us/file", "peak RSS MB (tree)",
         "largest process MB", "load", *(f"{s} s" for s in stage_names)),
        [(f"{s.files:,}", s.seconds, s.files_per_s, s.cpu_seconds, s.cpu_us_per_file,
          s.peak_rss_mb, s.peak_process_rss_mb, f"{s.load_before[0]:.1f}",
          *(s.stages.get(name, float("nan")) for name in stage_names)) for s in scans],
        notes=notes + "\n\nPlot: `scan_scale.png`.",
    )
    return result


def _load(part: Path) -> tuple[list[ScaleScan], bool]:
    data = json.loads((part / "result.json").read_text())
    names = ScaleScan.__dataclass_fields__
    scans = []
    for d in data["scans"]:
        kw = {f: d[f] for f in names}
        kw["load_before"], kw["load_after"] = tuple(kw["load_before"]), tuple(kw["load_after"])
        kw["timeline"] = [tuple(p) for p in kw["timeline"]]
        scans.append(ScaleScan(**kw))
    return scans, bool(data["quick"])


def merge(out: Path, parts: list[Path], note: str = "") -> dict[str, Any]:
    scans: list[ScaleScan] = []
    quick = False
    for part in parts:
        more, q = _load(part)
        scans += more
        quick = quick or q
    return publish(out, scans, quick, note)


def run(out_dir: str | Path, quick: bool = False, sizes: tuple[int, ...] | None = None,
        work_dir: Path | None = None, loop: bool = False, keep: bool = False,
        note: str = "") -> dict[str, Any]:
    """Measure each size and publish the rows so far after each. Cases are made in a fresh
    folder in `work_dir`; it is removed at the end unless something in it was kept."""
    sizes = sizes or (QUICK_FILES if quick else FULL_FILES)
    scans: list[ScaleScan] = []
    work = Path(tempfile.mkdtemp(prefix="triage-scan-scale-", dir=work_dir))
    try:
        for n in sizes:
            scans.append(measure(n, work, loop, keep))
            publish(Path(out_dir), scans, quick, note)  # each row kept as soon as measured
    finally:
        if not keep and not any(work.iterdir()):
            work.rmdir()
    return publish(Path(out_dir), scans, quick, note)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--files", type=lambda t: tuple(int(x) for x in t.split(",") if x))
    parser.add_argument("--out", default="benchmarks/results/scan_scale")
    parser.add_argument("--merge", nargs="+", metavar="PART")
    parser.add_argument("--note", default="")
    parser.add_argument("--work", type=Path, help="with --prepare/--scan-prepared: the folder")
    parser.add_argument("--prepare", type=int, metavar="N", help="only generate N files")
    parser.add_argument("--scan-prepared", type=int, metavar="N", help="scan, publish, delete")
    parser.add_argument("--loop-image", action="store_true",
                        help="generate each tree in an ext4 image on a loop device (root)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the case, the store and the evidence after the run")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare, args.work)
    elif args.scan_prepared:
        publish(Path(args.out), [scan_prepared(args.scan_prepared, args.work, args.keep)],
                False, args.note)
    elif args.merge:
        merge(Path(args.out), [Path(p) for p in args.merge], args.note)
    else:
        run(args.out, quick=args.quick, sizes=args.files, work_dir=args.work,
            loop=args.loop_image, keep=args.keep, note=args.note)
