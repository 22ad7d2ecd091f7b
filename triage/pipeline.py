"""`triage scan`: walk -> hash (workers) -> case DB -> match -> cluster -> queue -> outputs.

Data flows one way. The parent walks the evidence, sends batches of hashing work to an
executor and alone writes the case database; everything after hashing is recomputed from
the database, so a killed scan rerun with the same arguments converges on the same
manifest and queue without re-hashing what was recorded. When neither the evidence, the
banks nor the policy changed since the last finished scan, outputs are left untouched and
only the audit log grows.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hashing.errors import TriageError
from hashing.hasher import HashOptions
from hashing.registry import DEFAULT_ALGORITHMS
from hashing.types import HashRecord, path_to_text
from index.bank_index import BankMatcher
from index.banks import BankStore, default_store_dir
from triage.audit import append_audit, tool_version, who
from triage.batches import INTERNAL_ERROR, BatchResult, HashBatch, HashTask
from triage.casedb import CaseDB
from triage.cluster import cluster_records
from triage.executor import Executor, make_executor
from triage.limits import WalkLimits
from triage.match import match_records
from triage.outputs import atomic_text, ensure_private_dir, sha256_file
from triage.policy import Policy, load_policy
from triage.queue import build_queue, write_queue_csv, write_queue_jsonl
from triage.reports.html import write_report
from triage.reports.vics import write_vics
from triage.summary import attention_items, build_summary, write_summary
from triage.walk import WalkItem, walk

OUTPUT_NAMES = ("manifest.jsonl", "queue.jsonl", "queue.csv", "summary.json", "report.html",
                "export.vics.json")
BATCH_BYTES = 32 << 20  # cap on archive-member bytes held by one batch


class ScanError(TriageError):
    """A scan that cannot start or cannot write its case (names the path at fault)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ScanConfig:
    evidence: tuple[Path, ...]
    case_dir: Path
    store_dir: Path | None = None
    workers: int | None = None
    scheduler: str | None = None
    policy_path: Path | None = None
    decode_mode: str = "fast"
    batch_size: int = 32
    argv: tuple[str, ...] = ()
    # called with the number of files just hashed (the CLI's progress bar); never pickled
    progress: Callable[[int], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ScanResult:
    case_dir: Path
    summary: dict[str, Any]
    outputs: dict[str, Path]
    output_sha256: dict[str, str | None]
    noop: bool
    hash_calls: int


@dataclass(slots=True)
class _Stages:
    """Wall time per stage; walking and hashing overlap, so `walk` is time inside the walk."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, dt: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + dt


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def _check_paths(cfg: ScanConfig, store_dir: Path) -> None:
    """Refuse before anything is created: nothing may ever be written into the evidence."""
    for root in cfg.evidence:
        if not os.path.lexists(root):
            raise ScanError(str(root), "evidence path does not exist")
        for what, path in (("case directory", cfg.case_dir), ("bank store", store_dir)):
            if root.is_dir() and _inside(path, root):
                raise ScanError(str(path), f"the {what} may not be inside the evidence")


def _plain_record(item: WalkItem) -> HashRecord:
    """The manifest row of an item the walk already settled (symlink, special, walk error)."""
    return HashRecord(
        path=item.path, status=item.status if item.status != "pending" else "skipped",
        error=item.reason if item.status == "error" else None, reason=item.reason,
        size=item.size, mtime=item.mtime, kind=item.kind, link_target=item.link_target,
    )


def _row(rec: HashRecord, archive_error: bool) -> dict[str, Any]:
    d = rec.to_dict()
    if archive_error:
        d["archive_error"] = True
    return d


class _Feeder:
    """Turns the walk into hashing batches, settling what needs no hashing on the way."""

    def __init__(self, cfg: ScanConfig, db: CaseDB, run: int, opts: HashOptions, key: str,
                 stages: _Stages, walk_limits: WalkLimits) -> None:
        self.cfg, self.db, self.run, self.opts, self.key = cfg, db, run, opts, key
        self.walk_limits = walk_limits
        self.stages = stages
        self.walked = 0
        self.reused = 0
        self.sent = 0

    def _items(self) -> Iterator[WalkItem]:
        # Absolute paths: a rerun from another directory must find the same rows.
        it = iter(walk([os.path.abspath(r) for r in self.cfg.evidence], self.walk_limits))
        while True:
            t0 = time.perf_counter()
            item = next(it, None)
            self.stages.add("walk", time.perf_counter() - t0)
            if item is None:
                return
            self.walked += 1
            yield item

    def batches(self) -> Iterator[HashBatch]:
        tasks: list[HashTask] = []
        nbytes = 0
        seen: list[str] = []
        plain: list[tuple[dict[str, Any], str, bool]] = []
        seq = 0
        # Members of an archive that changed are hashed again even when their own header
        # (size, mtime) looks unchanged: a replaced archive can repeat both with new content.
        changed_archive: str | None = None
        for item in self._items():
            if item.kind == "file":
                changed_archive = None
            in_changed = changed_archive is not None and item.path.startswith(changed_archive)
            if item.status != "pending" or item.kind not in ("file", "archive_member"):
                plain.append((_row(_plain_record(item), item.archive_error), item.path, False))
            elif not in_changed and self.db.reusable(item.path, item.size, item.mtime, self.key):
                seen.append(item.path)
                self.reused += 1
            else:
                tasks.append(HashTask(
                    path=item.path,
                    fs_path=None if item.kind == "archive_member" else (item.fs_path or item.path),
                    data=item.data if item.kind == "archive_member" else None,
                    size=item.size, mtime=item.mtime, kind=item.kind, reason=item.reason,
                    archive_error=item.archive_error,
                ))
                nbytes += len(item.data or b"")
                if item.kind == "file":
                    changed_archive = item.path + "!/"
            if len(seen) + len(plain) >= 512:
                self._flush(seen, plain)
            if len(tasks) >= self.cfg.batch_size or nbytes >= BATCH_BYTES:
                yield HashBatch(seq, tuple(tasks), self.opts)
                seq += 1
                self.sent += len(tasks)
                tasks, nbytes = [], 0
        self._flush(seen, plain)
        if tasks:
            self.sent += len(tasks)
            yield HashBatch(seq, tuple(tasks), self.opts)

    def _flush(self, seen: list[str], plain: list[tuple[dict[str, Any], str, bool]]) -> None:
        t0 = time.perf_counter()
        if seen:
            self.db.mark_seen(self.run, seen)
        if plain:
            self.db.put(self.run, self.key, plain)
        seen.clear()
        plain.clear()
        self.stages.add("record", time.perf_counter() - t0)


def _record_results(db: CaseDB, run: int, key: str, batch: HashBatch, result: BatchResult,
                    stages: _Stages) -> None:
    t0 = time.perf_counter()
    rows = []
    for task, rec in zip(batch.tasks, result.records, strict=True):
        full = replace(rec, path=task.path, size=task.size, mtime=task.mtime,
                       kind=task.kind, reason=task.reason or rec.reason)  # type: ignore[arg-type]
        # A failure of our own code (not of the file) is recorded but hashed again next time.
        final = not (rec.error or "").startswith(INTERNAL_ERROR)
        rows.append((_row(full, task.archive_error), task.path, final))
    db.put(run, key, rows)
    stages.add("record", time.perf_counter() - t0)
    stages.add("hash_cpu", result.seconds)


def _hash_phase(cfg: ScanConfig, db: CaseDB, run: int, opts: HashOptions, key: str,
                executor: Executor, stages: _Stages,
                walk_limits: WalkLimits) -> tuple[_Feeder, set[str]]:
    feeder = _Feeder(cfg, db, run, opts, key, stages, walk_limits)
    in_flight: dict[int, HashBatch] = {}
    workers: set[str] = set()

    def tracked() -> Iterator[HashBatch]:
        for batch in feeder.batches():
            in_flight[batch.seq] = batch
            yield batch

    t0 = time.perf_counter()
    for result in executor.run(tracked()):
        _record_results(db, run, key, in_flight.pop(result.seq), result, stages)
        workers.add(result.worker)
        if cfg.progress is not None:
            cfg.progress(len(result.records))
    stages.add("walk_and_hash", time.perf_counter() - t0)
    return feeder, workers


def _fingerprint(db: CaseDB, run: int, policy: Policy, bank_info: Mapping[str, Any]) -> str:
    """Everything the outputs are computed from: manifest rows, banks, policy, tool version."""
    h = hashlib.sha256()
    h.update(json.dumps({"tool": tool_version(), "policy": policy.to_dict(),
                         "banks": bank_info}, sort_keys=True, default=str).encode())
    for row in db.rows(run):
        h.update(row.text.encode())
        h.update(b"\n")
    return h.hexdigest()


def _write_manifest(path: Path, db: CaseDB, run: int,
                    stages: _Stages) -> tuple[list[HashRecord], set[int]]:
    """Stream the manifest out of the case DB, keeping only the parsed records for matching."""
    t0 = time.perf_counter()
    records: list[HashRecord] = []
    archive_errors: set[int] = set()
    with atomic_text(path) as fh:
        for i, row in enumerate(db.rows(run)):
            fh.write(row.text + "\n")
            d = row.record
            records.append(HashRecord.from_dict(d, DEFAULT_ALGORITHMS))
            if d.get("archive_error"):
                archive_errors.add(i)
    stages.add("manifest", time.perf_counter() - t0)
    return records, archive_errors


def _digests(outputs: Mapping[str, Path]) -> dict[str, str | None]:
    return {n: sha256_file(p) if p.exists() else None for n, p in outputs.items()}


def _open_banks(store_dir: Path) -> tuple[BankMatcher, dict[str, Any]]:
    """One matcher per scan: digest lookups and indexes are loaded once, not per file."""
    try:
        with BankStore(store_dir) as store:
            matcher = store.open_matcher()
            # Entry and retraction counts catch changes a version string misses; import times
            # are left out so re-importing the same list leaves a case unchanged.
            banks = [{**b.to_dict(), "retracted": b.retracted} for b in store.list_banks()]
    except TriageError:
        raise
    except (sqlite3.Error, OSError) as exc:  # e.g. a stale index that cannot be rebuilt
        raise ScanError(str(store_dir), f"cannot open the bank store: {exc}") from exc
    info = {"versions": matcher.bank_versions(), "index_checksums": matcher.index_checksums(),
            "banks": banks}
    return matcher, info


def run_scan(cfg: ScanConfig) -> ScanResult:
    started = _now()
    t_start = time.perf_counter()
    stages = _Stages()
    store_dir = Path(cfg.store_dir or default_store_dir()).resolve()
    _check_paths(cfg, store_dir)
    policy = load_policy(cfg.policy_path)
    case = ensure_private_dir(cfg.case_dir)
    with _case_lock(case):
        for stale in case.glob(".*.tmp"):  # left by a scan killed while writing an output
            stale.unlink()
        t0 = time.perf_counter()
        matcher, bank_info = _open_banks(store_dir)
        stages.add("open_banks", time.perf_counter() - t0)
        try:
            return _scan(cfg, case, policy, store_dir, matcher, bank_info, stages, started,
                         t_start)
        except TriageError:
            raise
        except (sqlite3.Error, OSError) as exc:
            # a full disk or failing device under the case: what was committed stays, and a
            # rerun with room resumes from it
            raise ScanError(str(case), f"cannot write the case: {exc}") from exc
        finally:
            matcher.close()


@contextmanager
def _case_lock(case: Path) -> Iterator[None]:
    """One scan per case at a time; the kernel drops the lock if the scan dies, even by SIGKILL."""
    fd = os.open(case / ".scan.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ScanError(str(case), "another scan is running on this case") from None
        yield
    finally:
        os.close(fd)


def _scan(cfg: ScanConfig, case: Path, policy: Policy, store_dir: Path, matcher: BankMatcher,
          bank_info: dict[str, Any], stages: _Stages, started: str,
          t_start: float) -> ScanResult:
    opts = HashOptions(algorithms=DEFAULT_ALGORITHMS, dihedral=policy.dihedral,
                       decode_mode=cfg.decode_mode,  # type: ignore[arg-type]
                       pixel_limit=policy.pixel_limit, max_media_bytes=policy.max_media_bytes)
    # Resume reuses a row only when the file and the way it was hashed are both unchanged
    # (the media limits included: a row hashed under other limits is hashed again).
    opts_key = f"{tool_version()} {opts!r}"
    audit_path = case / "audit.jsonl"
    common = {
        "tool": "osec-triage", "version": tool_version(), "argv": list(cfg.argv), **who(),
        "pid": os.getpid(), "case_dir": str(case.resolve()),
        "evidence_roots": [path_to_text(str(r.resolve()))[0] for r in cfg.evidence],
        "store": str(store_dir), "banks": bank_info,
    }
    append_audit(audit_path, {**common, "event": "scan_started", "started": started})
    with CaseDB(case / "case.sqlite") as db:
        run = db.begin_run(started)
        executor = make_executor(cfg.workers, cfg.scheduler)
        try:
            feeder, workers = _hash_phase(cfg, db, run, opts, opts_key, executor, stages,
                                          policy.walk_limits)
            placement = executor.describe()
        finally:
            executor.close()
        fingerprint = _fingerprint(db, run, policy, bank_info)
        outputs = {name: case / name for name in OUTPUT_NAMES}
        run_info = {"hash_calls": feeder.sent, "reused": feeder.reused, "walked": feeder.walked,
                    "executor": placement, "workers_seen": sorted(workers)}
        noop = (db.last_fingerprint(run) == fingerprint
                and db.get_meta("outputs_sha256") == json.dumps(_digests(outputs)))
        if noop:
            summary = json.loads((case / "summary.json").read_text())
        else:
            records, archive_errors = _write_manifest(case / "manifest.jsonl", db, run, stages)
            summary = _write_outputs(case, records, archive_errors, matcher, policy, run_info,
                                     stages, t_start)
        sha = _digests(outputs)
        db.set_meta("outputs_sha256", json.dumps(sha))
        append_audit(audit_path, {
            **common, "event": "scan_finished", "started": started, "ended": _now(),
            "noop": noop, "run": run_info, "counts": summary["counts"], "files": summary["files"],
            "policy": policy.to_dict(), "hash_options": opts_key, "outputs_sha256": sha,
        })
        db.finish_run(run, _now(), feeder.sent, fingerprint)
    return ScanResult(case, summary, outputs, sha, noop, feeder.sent)


def _write_outputs(case: Path, records: list[HashRecord],
                   archive_errors: set[int], matcher: BankMatcher, policy: Policy,
                   run_info: dict[str, Any], stages: _Stages, t_start: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    reasons = match_records(records, matcher, policy)
    stages.add("match", time.perf_counter() - t0)
    t0 = time.perf_counter()
    clusters = cluster_records(records, reasons, policy)
    stages.add("cluster", time.perf_counter() - t0)
    t0 = time.perf_counter()
    queue = build_queue(records, reasons, clusters, policy)
    attention = attention_items(records, archive_errors)
    stages.add("queue", time.perf_counter() - t0)
    t0 = time.perf_counter()
    write_queue_jsonl(case / "queue.jsonl", queue)
    write_queue_csv(case / "queue.csv", queue)
    write_vics(case / "export.vics.json", queue)
    stages.add("write", time.perf_counter() - t0)
    stages.add("total", time.perf_counter() - t_start)
    summary = build_summary(records, reasons, queue, clusters, attention, policy, run_info,
                            stages.seconds)
    write_summary(case / "summary.json", summary)
    write_report(case / "report.html", summary, queue, case.name)
    return summary
