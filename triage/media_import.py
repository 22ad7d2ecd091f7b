"""`triage bank import-media`: hash a folder of reference media into a media bank.

The folder is read exactly as a scan reads evidence: the scan's walker (read-only, every
container it opens: archives, nested archives) and the scan's executor. Each file becomes
one bank item whose entry id is its path relative to the folder (`a.zip!/x.jpg` for an
archive member), so an analyst can find the reference file in their own holdings. Per item:
MD5, SHA-1, SHA-256, PDQ, pHash; for images also the sub-window PDQs (`pdq_grid`) and the
local features (`orb`); for videos the PDQ of sampled frames. What was walked but not
hashed (errors, containers that could not be opened, symlinks) is listed in the report.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from hashing.algorithms.local_features import LocalFeatures
from hashing.errors import TriageError
from hashing.hasher import HashOptions
from hashing.i18n import tr
from hashing.registry import spec
from hashing.types import HashRecord
from index.bank_types import ImportResult
from index.banks import BankStore
from index.errors import BankError
from index.ingest.records import ParsedRecord, RejectedRecord
from index.media_bank import MediaImport, MediaItem, MediaTally, write_media
from triage.audit import tool_version
from triage.executor import make_executor
from triage.identity import location_key
from triage.media_staging import MediaStaging, staging_path
from triage.resume import resume_key
from triage.runner import Runner, Settled
from triage.walk import WalkItem, walk

MEDIA_ALGORITHMS = ("pdq", "phash", "md5", "sha1", "sha256", "pdq_grid", "orb")
BATCH_FILES = 16


@dataclass(frozen=True, slots=True)
class MediaImportOptions:
    bank: str
    category: str | None = None
    categories: str | None = None  # CSV: path,category (path relative to the folder)
    source: str | None = None
    version: str | None = None
    known_good: bool = False
    workers: int | None = None


def read_categories(path: str) -> dict[str, str]:
    """`path,category` rows (a header row naming those two columns is optional)."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for n, row in enumerate(csv.reader(f), start=1):
                if not row or row[0].startswith("#"):
                    continue
                if n == 1 and [c.strip().lower() for c in row[:2]] == ["path", "category"]:
                    continue
                if len(row) < 2 or not row[0].strip() or not row[1].strip():
                    raise BankError(tr("{path}: line {n}: expected 'path,category'",
                                       path=str(path), n=n))
                out[row[0].strip()] = row[1].strip()
    except (OSError, UnicodeDecodeError) as e:
        raise BankError(tr("{path}: cannot read the categories: {reason}",
                           path=str(path), reason=str(e))) from None
    return out


def _relative(path: str, folder: str) -> str:
    prefix = folder.rstrip(os.sep) + os.sep
    return path[len(prefix):] if path.startswith(prefix) else os.path.basename(path)


def _entries(rec: HashRecord, line: int, entry_id: str,
             category: str | None, known_good: bool) -> tuple[ParsedRecord, LocalFeatures | None]:
    hashes: list[tuple[str, str]] = [(a, h) for a, h in rec.hashes.items()]
    floor = spec("pdq_grid").quality_floor or 0
    hashes += [("pdq_grid", h) for h, q in rec.pdq_windows or () if q >= floor]
    hashes += [("pdq", f.pdq) for f in rec.pdq_frames or ()]  # a video's frames, as vPDQ
    features = None
    if rec.local_features is not None:
        features = LocalFeatures.from_bytes(rec.local_features)
        if len(features):
            hashes.append(("orb", features.fingerprint()))
        else:
            features = None
    seen: set[tuple[str, str]] = set()
    unique = tuple(h for h in hashes if not (h in seen or seen.add(h)))  # type: ignore[func-returns-value]
    parsed = ParsedRecord(line=line, hashes=unique, entry_id=entry_id, quality=rec.pdq_quality,
                          category=category, known_good=known_good)
    return parsed, features


def _hash_into(staging: MediaStaging, folder: str, opts: HashOptions, workers: int | None,
               progress: Callable[[int], None] | None) -> Runner:
    """Hash the folder's walk items into `staging`, reusing what an interrupted import of
    the same folder and bank already hashed."""
    def reusable(item: WalkItem) -> bool:
        return staging.reusable(location_key(item.location), item.size, item.mtime)

    def record(chunk: list[Settled]) -> None:
        staging.put(chunk)
        if progress is not None:
            progress(len(chunk))

    executor = make_executor(workers, None)
    runner = Runner(opts, executor, BATCH_FILES, reusable)
    try:
        runner.run(walk([folder]), record)
    finally:
        executor.close()
    return runner


def _spec(folder: str, options: MediaImportOptions) -> MediaImport:
    return MediaImport(options.bank, folder, options.category, options.source,
                       options.version, options.known_good)


def _items(staging: MediaStaging, folder: str, options: MediaImportOptions,
           labels: dict[str, str], tally: MediaTally) -> Iterator[MediaItem]:
    """The staged outcomes as bank items, one at a time in location order; what is not an
    item goes to `tally`."""
    listed: set[str] = set()
    for staged in staging.outcomes():
        rec = staged.record
        rel = _relative(staged.path, folder)
        if rec.status != "hashed" and not rec.hashes:
            tally.notes[f"not hashed: {rec.kind}"] += 1
            if rec.status == "error" or staged.archive_error:
                tally.skipped.append(
                    RejectedRecord(staged.line, f"{rel}: {rec.error or rec.reason}"))
            continue
        if rec.status == "error":
            tally.notes["errors"] += 1
            tally.skipped.append(RejectedRecord(staged.line, f"{rel}: {rec.error}"))
        kind = (rec.media_type or "other").split("/")[0]
        tally.notes[f"{kind}s" if kind in ("image", "video") else "other files"] += 1
        parsed, features = _entries(rec, staged.line, rel, labels.get(rel, options.category),
                                    options.known_good)
        listed.add(rel)
        yield MediaItem(parsed, features, rel)
    unlabelled = [rel for rel in labels if rel not in listed]
    if unlabelled:
        tally.notes["categories without a file"] = len(unlabelled)


def import_media(store: BankStore, folder: str, options: MediaImportOptions,
                 progress: Callable[[int], None] | None = None) -> ImportResult:
    """Hash `folder` and write it into bank `options.bank`; the JSON report goes to the
    store's reports directory (it lists paths, counts and reasons, never signatures)."""
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise BankError(tr("{folder}: not a directory", folder=str(folder)))
    if options.category and options.categories:
        raise BankError(tr("give --category or --categories, not both"))
    labels = read_categories(options.categories) if options.categories else {}
    opts = HashOptions(algorithms=MEDIA_ALGORITHMS)
    with MediaStaging(staging_path(store.dir, options.bank, folder),
                      resume_key(opts, tool_version()), MEDIA_ALGORITHMS) as staging:
        runner = _hash_into(staging, folder, opts, options.workers, progress)
        tally = MediaTally()
        if runner.reused:
            tally.notes["reused from an interrupted import"] = runner.reused
        result = write_media(store, _spec(folder, options),
                             _items(staging, folder, options, labels, tally), tally)
        staging.remove()  # the bank is written: a rerun hashes the folder afresh
    report = os.path.join(
        store.dir, "reports",
        f"import-media-{options.bank}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.json",
    )
    try:
        fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(result.to_dict(), indent=2) + "\n")
        result = replace(result, report_path=report)
    except OSError as e:
        raise TriageError(tr("{report}: import done, report not written: {reason}",
                             report=str(report), reason=str(e))) from None
    return result
