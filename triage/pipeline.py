"""`triage scan`: walk -> hash -> record -> match -> cluster -> score -> write.

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hashing.errors import TriageError
from hashing.hasher import HashOptions
from hashing.i18n import Text, _, language, tr
from hashing.registry import scan_algorithms
from hashing.types import path_to_text
from index.bank_index import BankMatcher
from index.banks import BankStore, default_store_dir, store_exists
from index.media_bank import MediaMatcher
from triage.audit import append_audit, last_scan_entry, tool_version, who
from triage.casedb import CaseDB
from triage.casedir import CaseDir, check_case_dir, check_overlap, open_case_dir, protected_ids
from triage.derive import DEFAULT_MEMORY_BUDGET, derive_and_write
from triage.executor import TlsFiles, make_executor, scan_cores
from triage.identity import Location, location_json, location_key
from triage.local_match import LOCAL_ALGORITHMS, local_features_needed
from triage.match import matching_notes
from triage.outputs import sha256_file, stale_temp_files
from triage.policy import Policy, load_policy, policy_from_mapping
from triage.progress import count_ahead
from triage.reports.manifest import write_manifest
from triage.reports.summary import ATTENTION_KEPT
from triage.resume import resume_key
from triage.review.casefile import decisions_digest
from triage.runner import Runner, Settled
from triage.stages import StageTimer
from triage.walk import WalkItem, contained, walk
from triage.worker_threads import scan_threads

OUTPUT_NAMES = ("manifest.jsonl", "queue.jsonl", "queue.csv", "summary.json", "report.html",
                "export.vics.json")


class ScanError(TriageError):
    """A scan that cannot start or cannot write its case (names the path at fault)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(Text("{path}: {reason}", {"path": path, "reason": reason}))
        self.path = path
        self.reason = reason


class NoBanksError(ScanError):
    """A scan with nothing to match against: every file would pass as "unmatched".

    Raised before anything is created (a mistyped `--store` must not leave an empty store or
    a case of false negatives behind); the CLI exits 2 with the message.
    """




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
    tls: TlsFiles | None = None  # certificates for a tls:// scheduler
    insecure: bool = False  # allow plain tcp:// to a scheduler that is not on loopback
    # what the derive stages may hold at once (chunk sizes follow from it); larger cases stream
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    argv: tuple[str, ...] = ()
    # hash without matching: allowed only when asked for, since every row reads "unmatched"
    inventory: bool = False
    # in-case linking by local features, over the policy's [cluster] local_links (None: policy)
    local_links: bool | None = None
    # Progress (the CLI's bar; never pickled): `progress(n)` after n more file-system entries
    # are recorded, `progress_total(total)` once the count ahead is done, and
    # `on_stage(name, seconds)` as each stage ends.
    progress: Callable[[int], None] | None = field(default=None, compare=False, repr=False)
    progress_total: Callable[[int], None] | None = field(default=None, compare=False,
                                                         repr=False)
    on_stage: Callable[[str, float], None] | None = field(default=None, compare=False,
                                                          repr=False)


@dataclass(frozen=True, slots=True)
class ScanResult:
    case_dir: Path
    summary: dict[str, Any]  # summary.json's, with at most ATTENTION_KEPT attention entries
    outputs: dict[str, Path]
    output_sha256: dict[str, str | None]
    noop: bool
    hash_calls: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_paths(cfg: ScanConfig, store_dir: Path) -> None:
    """Refuse before anything is created: the case must be ours, apart from the evidence."""
    check_case_dir(cfg.case_dir)
    check_overlap(cfg.evidence, (("case directory", cfg.case_dir), ("bank store", store_dir)))


def _row(settled: Settled) -> tuple[dict[str, Any], bytes, bool]:
    """A settled outcome as the case DB stores it: (manifest fields, location key, final)."""
    assert settled.record is not None
    d = settled.record.to_dict()
    d["location"] = location_json(settled.location)
    if settled.archive_error:
        d["archive_error"] = True
    if settled.extra:
        d.update(settled.extra)
    return d, location_key(settled.location), settled.final


def _record(db: CaseDB, run: int, key: str, chunk: list[Settled]) -> None:
    """Write one chunk of outcomes: reused rows are marked seen, the others upserted."""
    reused = [location_key(s.location) for s in chunk if s.record is None]
    if reused:
        db.mark_seen(run, reused)
    if len(reused) < len(chunk):
        db.put(run, key, [_row(s) for s in chunk if s.record is not None])
        db.put_features((location_key(s.location), s.record.local_features) for s in chunk
                        if s.record is not None)


def _hash_options(cfg: ScanConfig, policy: Policy, held: tuple[str, ...],
                  local: bool) -> HashOptions:
    # Every perceptual algorithm an enabled bank holds is hashed (and no other), so a pHash
    # list matches; PDQ always (clustering and videos use it); local features only when
    # in-case linking or a media bank with local features needs them.
    return HashOptions(algorithms=(*scan_algorithms(held), *(LOCAL_ALGORITHMS if local else ())),
                       dihedral=policy.dihedral, variants=policy.variants,
                       decode_mode=cfg.decode_mode,  # type: ignore[arg-type]
                       pixel_limit=policy.pixel_limit, max_media_bytes=policy.max_media_bytes,
                       max_frames=policy.max_frames, max_decode_bytes=policy.max_decode_bytes,
                       decode_seconds=policy.decode_seconds)


def _fingerprint(db: CaseDB, run: int, policy: Policy, bank_info: Mapping[str, Any],
                 case: Path) -> str:
    """Everything the outputs are computed from: manifest rows, banks, policy, tool version,
    analysts' decisions and the output language."""
    h = hashlib.sha256()
    h.update(json.dumps({"tool": tool_version(), "policy": policy.to_dict(),
                         "banks": bank_info, "decisions": decisions_digest(case),
                         "language": language()}, sort_keys=True, default=str).encode())
    for row in db.rows(run):
        h.update(row.text.encode())
        h.update(b"\n")
    return h.hexdigest()


def _digests(outputs: Mapping[str, Path]) -> dict[str, str | None]:
    return {n: sha256_file(p) if p.exists() else None for n, p in outputs.items()}


def _check_store(store_dir: Path, inventory: bool) -> None:
    """Refuse, before anything (store or case) is created, a store that does not exist, and
    one without an enabled, non-empty bank unless a hashing-only inventory was asked for."""
    if not store_exists(store_dir):
        raise NoBanksError(str(store_dir), tr(
            "no bank store here (nothing was created); create one with "
            "`triage bank import LIST --bank NAME --store {store}`", store=str(store_dir)))
    if inventory:
        return
    try:
        with BankStore(store_dir) as store:
            usable = any(b.enabled and b.entries for b in store.list_banks())
    except (sqlite3.Error, OSError) as exc:
        raise ScanError(str(store_dir), tr("cannot open the bank store: {reason}",
                                              reason=str(exc))) from exc
    if not usable:
        raise NoBanksError(str(store_dir), tr(
            "the store has no enabled bank with entries, so nothing could match; create one "
            "with `triage bank import LIST --bank NAME --store {store}` or enable one, or ask "
            "for a hashing-only inventory (--inventory)", store=str(store_dir)))


def banks_used(bank_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The enabled banks a scan matched against: name, source, version, entries."""
    return [{k: b[k] for k in ("name", "source", "version", "entries")}
            for b in bank_info["banks"] if b["enabled"]]


def _open_banks(store_dir: Path,
                inventory: bool) -> tuple[BankMatcher, MediaMatcher, dict[str, Any]]:
    """One matcher per scan: digest lookups and indexes are loaded once, not per file."""
    try:
        with BankStore(store_dir) as store:
            matcher = store.open_matcher()
            media = MediaMatcher(store.db_path, store.dir)
            # Entry and retraction counts catch changes a version string misses; import times
            # are left out so re-importing the same list leaves a case unchanged.
            banks = [{**b.to_dict(), "retracted": b.retracted,
                      "false_positives": b.false_positives} for b in store.list_banks()]
    except TriageError:
        raise
    except (sqlite3.Error, OSError) as exc:  # e.g. a stale index that cannot be rebuilt
        raise ScanError(str(store_dir), tr("cannot open the bank store: {reason}",
                                              reason=str(exc))) from exc
    checksums = matcher.index_checksums()
    if media.windows_sha256:
        checksums["pdq_grid"] = media.windows_sha256
    info = {"versions": matcher.bank_versions(), "index_checksums": checksums, "banks": banks,
            "inventory": inventory}
    return matcher, media, info


def run_scan(cfg: ScanConfig) -> ScanResult:
    started = _now()
    timer = StageTimer(cfg.on_stage)
    store_dir = Path(cfg.store_dir or default_store_dir()).resolve()
    _check_paths(cfg, store_dir)
    _check_store(store_dir, cfg.inventory)
    policy = load_policy(cfg.policy_path)
    if cfg.local_links is not None:
        policy = replace(policy, local_links=cfg.local_links)
    case_dir = open_case_dir(cfg.case_dir)
    case = case_dir.path
    with _case_lock(case):
        for stale in stale_temp_files(case):  # left by a scan killed while writing an output
            stale.unlink()
        with timer.stage("open_banks"):
            matcher, media, bank_info = _open_banks(store_dir, cfg.inventory)
        try:
            return _scan(cfg, case_dir, policy, store_dir, (matcher, media), bank_info, timer,
                         started)
        except TriageError:
            raise
        except (sqlite3.Error, OSError) as exc:
            # a full disk or failing device under the case: what was committed stays, and a
            # rerun with room resumes from it
            raise ScanError(str(case), tr("cannot write the case: {reason}",
                                                reason=str(exc))) from exc
        finally:
            matcher.close()
            media.close()


def _case_info(case: Path, policy: Policy, bank_info: Mapping[str, Any],
               header: Mapping[str, Any]) -> dict[str, Any]:
    """What the report's header and the VICS provenance say about the case."""
    return {**header, "name": case.name, "tool_version": tool_version(),
            "banks": bank_info.get("banks", []), "policy": policy.to_dict()}


@contextmanager
def _case_lock(case: Path) -> Iterator[None]:
    """One scan per case at a time; the kernel drops the lock if the scan dies, even by SIGKILL."""
    fd = os.open(case / ".osec-triage-scan.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ScanError(str(case), tr("another scan is running on this case")) from None
        yield
    finally:
        os.close(fd)


def _scan(cfg: ScanConfig, case_dir: CaseDir, policy: Policy, store_dir: Path,
          matchers: tuple[BankMatcher, MediaMatcher], bank_info: dict[str, Any],
          timer: StageTimer, started: str) -> ScanResult:
    case = case_dir.path
    opts = _hash_options(cfg, policy, matchers[0].held_algorithms(),
                         local_features_needed(policy, matchers[1]))
    # Resume reuses a row only when the file and the way it was hashed are both unchanged
    # (the media limits included: a row hashed under other limits is hashed again).
    key = resume_key(opts, tool_version())
    audit_path = case / "audit.jsonl"
    common = {
        "tool": "osec-triage", "version": tool_version(), "argv": list(cfg.argv), **who(),
        "pid": os.getpid(), "case_dir": str(case.resolve()), "case_id": case_dir.case_id,
        "evidence_roots": [path_to_text(str(r.resolve()))[0] for r in cfg.evidence],
        "store": str(store_dir), "banks": bank_info,
    }
    append_audit(audit_path, {**common, "event": "scan_started", "started": started})
    # `--workers N` is N cores: N hashing workers, then N threads for matching and linking
    with scan_threads(scan_cores(cfg.workers, cfg.scheduler)), \
            CaseDB(case / "case.sqlite") as db:
        run = db.begin_run(started)
        # everything the case and the store hold now, the case database included
        exclude = protected_ids(case, store_dir)
        run_info = _walk_hash_record(cfg, db, run, opts, key, policy, timer, exclude)
        for check in run_info["image_integrity"]:
            append_audit(audit_path, {**common, "event": "image_integrity", **check})
        fingerprint = _fingerprint(db, run, policy, bank_info, case)
        outputs = {name: case / name for name in OUTPUT_NAMES}
        noop = (db.last_fingerprint(run) == fingerprint
                and db.get_meta("outputs_sha256") == json.dumps(_digests(outputs)))
        if noop:
            summary = json.loads((case / "summary.json").read_text())
            summary["attention"] = summary["attention"][:ATTENTION_KEPT]
        else:
            with timer.stage("manifest"):
                write_manifest(case / "manifest.jsonl", (row.text for row in db.rows(run)))
            header = {"evidence_roots": common["evidence_roots"], "started": started,
                      "ended": _now()}
            summary = derive_and_write(
                case, db, run, matchers[0], policy, run_info, timer, cfg.memory_budget,
                banks_used(bank_info), media=matchers[1],
                case_info=_case_info(case, policy, bank_info, header),
                extra={"matching": matching_notes(matchers[0].held_algorithms(), policy)})
        sha = _digests(outputs)
        db.set_meta("outputs_sha256", json.dumps(sha))
        append_audit(audit_path, {
            **common, "event": "scan_finished", "started": started, "ended": _now(),
            "noop": noop, "run": run_info, "counts": summary["counts"], "files": summary["files"],
            "policy": policy.to_dict(), "hash_options": opts.to_dict(), "resume_key": key,
            "outputs_sha256": sha,
        })
        db.finish_run(run, _now(), run_info["hash_calls"], fingerprint)
    return ScanResult(case, summary, outputs, sha, noop, run_info["hash_calls"])


def _walk_hash_record(cfg: ScanConfig, db: CaseDB, run: int, opts: HashOptions, key: str,
                      policy: Policy, timer: StageTimer,
                      exclude: Mapping[tuple[int, int], str]) -> dict[str, Any]:
    """walk -> hash -> record: every walk item ends as a case-DB row seen by `run`.
    Returns what the audit log says about the run (counts, where hashing ran)."""
    executor = make_executor(cfg.workers, cfg.scheduler, tls=cfg.tls, insecure=cfg.insecure)

    def reusable(item: WalkItem) -> bool:
        return db.reusable(location_key(item.location), item.size, item.mtime, key)

    def record(chunk: list[Settled]) -> None:
        with timer.stage("record", announce=False):
            _record(db, run, key, chunk)
        if cfg.progress is not None:
            cfg.progress(sum(not s.member for s in chunk))

    integrity: list[dict[str, Any]] = []  # disk images checked against their stored hashes

    def noted(items: Iterator[WalkItem]) -> Iterator[WalkItem]:
        for item in items:
            if item.extra and "integrity" in item.extra:
                integrity.append(item.extra["integrity"])
            yield item

    def members(path: str, fs_path: str, location: Location) -> Iterator[WalkItem]:
        return timer.timed("walk", noted(contained(path, fs_path, location,
                                                   policy.walk_limits)))

    # files are opened once, by the worker that hashes them; containers among them again
    # here, to walk their members
    runner = Runner(opts, executor, cfg.batch_size, reusable, members)
    # Absolute paths: a rerun from another directory must find the same rows.
    roots = [os.path.abspath(r) for r in cfg.evidence]
    if cfg.progress_total is not None:
        count_ahead(roots, cfg.progress_total)
    walked = timer.timed("walk", noted(walk(roots, policy.walk_limits, exclude, sniff=False)))
    try:
        with timer.stage("walk_and_hash"):
            runner.run(walked, record)
        placement = executor.describe()
    finally:
        executor.close()
    timer.add("hash_cpu", runner.hash_seconds)
    return {"hash_calls": runner.sent, "reused": runner.reused, "walked": runner.walked,
            "executor": placement, "workers_seen": sorted(runner.workers),
            "image_integrity": integrity}



def regenerate_outputs(case_dir: Path, store_dir: Path) -> dict[str, Any]:
    """Rewrite a case's outputs from its database and current decisions and banks, under the
    policy of its last scan: nothing is walked or hashed (used after a review import)."""
    case = case_dir
    last = last_scan_entry(case)
    policy = policy_from_mapping(last["policy"], "audit.jsonl") if last.get("policy") else Policy()
    timer = StageTimer()
    with _case_lock(case):
        inventory = bool((last.get("banks") or {}).get("inventory"))
        matcher, media, bank_info = _open_banks(store_dir, inventory)
        try:
            with CaseDB(case / "case.sqlite") as db:
                run = db.last_finished_run()
                if run is None:
                    raise ScanError(str(case), _("no finished scan to regenerate from"))
                with timer.stage("manifest"):
                    write_manifest(case / "manifest.jsonl", (row.text for row in db.rows(run)))
                header = {k: last.get(k) for k in ("evidence_roots", "started", "ended")}
                summary = derive_and_write(case, db, run, matcher, policy,
                                           dict(last.get("run") or {}), timer,
                                           used_banks=banks_used(bank_info), media=media,
                                           case_info=_case_info(case, policy, bank_info, header),
                                           extra={"matching": matching_notes(
                                               matcher.held_algorithms(), policy)})
                # the next identical scan compares against what is on disk now
                db.set_meta("outputs_sha256", json.dumps(_digests(
                    {name: case / name for name in OUTPUT_NAMES})))
        finally:
            matcher.close()
            media.close()
    return summary
