"""The case directory is the tool's own, and never shares a byte with the evidence.

- A case directory is created by the tool and marked with a file holding the case's id
  (`MARKER`). An existing directory is used only when it holds that marker, or when it is
  empty (then it becomes a new case); anything else is refused before a byte is written, so
  an unrelated directory given as `--case` by mistake is never changed.
- Evidence and the case directory (and the bank store) may not overlap in either direction.
  Paths are compared by device and inode of every ancestor, walked up with `..` from the
  directory itself, so bind mounts, symlinked path components and other names of the same
  directory are seen through; an evidence root that is a hard link to a file of the case or
  the store is refused too. Overlaps deeper inside the evidence tree (a bind mount of the
  case below an evidence root, a hard link to a case file) are found by the walk, which is
  given the device and inode of everything in the case and the store (`protected_ids`).
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hashing.errors import TriageError
from hashing.i18n import N_, Text, tr
from triage.outputs import DIR_MODE, write_text_atomic

MARKER = ".osec-triage-case.json"
TOOL = "osec-triage"
# The case and the store are small trees (a handful of outputs, a database, index files);
# past this many entries the rest is not listed for the walk's exclusion set.
_MAX_PROTECTED = 100_000

FileId = tuple[int, int]


class CaseRefused(TriageError):
    """The scan will not use this case directory or these evidence paths (exit status 2)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(Text("{path}: {reason}", {"path": path, "reason": reason}))
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CaseDir:
    path: Path
    case_id: str
    created: bool  # this scan made it a case


def _id(st: os.stat_result) -> FileId:
    return (st.st_dev, st.st_ino)


def read_marker(case: Path) -> str | None:
    """The case id in `case`'s marker, None when there is no marker; refuses a bad one."""
    marker = case / MARKER
    try:
        with open(marker, "rb") as fh:
            raw = fh.read(4096)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CaseRefused(str(marker), tr("cannot read the case marker: {reason}",
                                                  reason=exc.strerror)) from exc
    try:
        doc = json.loads(raw.decode("utf-8"))
        case_id = doc["case_id"]
        ok = doc.get("tool") == TOOL and isinstance(case_id, str) and case_id != ""
    except (UnicodeDecodeError, ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise CaseRefused(str(marker), tr("not an osec-triage case marker; refusing to use it"))
    return str(case_id)


def check_case_dir(case: Path) -> str | None:
    """Refuse a `--case` the tool may not use; return its case id (None: new or empty)."""
    if not os.path.lexists(case):
        parent = case.parent
        while not os.path.lexists(parent) and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():  # a case "under" a file could never be created
            raise CaseRefused(str(case), tr("{parent} is not a directory", parent=str(parent)))
        return None
    if not case.is_dir():
        raise CaseRefused(str(case), tr("the case path exists and is not a directory"))
    case_id = read_marker(case)
    if case_id is None and any(case.iterdir()):
        raise CaseRefused(
            str(case),
            tr("directory is not empty and holds no osec-triage case (no {marker}); give a new "
               "or empty directory, or an existing case", marker=MARKER),
        )
    return case_id


def open_case_dir(case: Path) -> CaseDir:
    """Use or create the case directory (after `check_case_dir` and the overlap check)."""
    case_id = check_case_dir(case)
    if case_id is not None:
        return CaseDir(case, case_id, created=False)
    try:
        case.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:  # under a file, read-only, no room: one line, not a traceback
        raise CaseRefused(str(case), tr("cannot create the case directory: {reason}",
                                        reason=exc.strerror or str(exc))) from None
    os.chmod(case, DIR_MODE)  # a new or empty directory: it is ours now
    case_id = uuid.uuid4().hex
    created = datetime.now(UTC).isoformat(timespec="seconds")
    write_text_atomic(case / MARKER, json.dumps({"tool": TOOL, "case_id": case_id,
                                                 "created": created}) + "\n")
    return CaseDir(case, case_id, created=True)


def _ancestry(path: Path) -> list[FileId]:
    """Device and inode of `path` (a directory) and of every directory above it, via `..`.

    Walking up by `..` from the open directory follows the real tree, not the spelling of
    the path, so a symlinked component or a bind mount cannot hide an ancestor.
    """
    ids: list[FileId] = []
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        while True:
            here = _id(os.fstat(fd))
            if ids and ids[-1] == here:
                return ids
            ids.append(here)
            up = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = up
    finally:
        os.close(fd)


def _existing(path: Path) -> Path:
    """`path` or its nearest existing ancestor (a case directory not created yet)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _tree_ids(top: Path) -> set[FileId]:
    """Device and inode of `top` and of every entry below it (no symlinks followed)."""
    ids: set[FileId] = set()
    if not top.is_dir():
        return ids
    stack = [top]
    ids.add(_id(os.stat(top)))
    while stack and len(ids) < _MAX_PROTECTED:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            ids.add(_id(st))
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(e.path))
    return ids


def protected_ids(case: Path, store: Path) -> dict[FileId, str]:
    """What the walk must never read as evidence: the case and the store, and all in them."""
    out = {i: N_("bank store") for i in _tree_ids(store)}
    out.update({i: N_("case directory") for i in _tree_ids(case)})
    return out


def check_overlap(evidence: Iterable[Path], places: Iterable[tuple[str, Path]]) -> None:
    """Refuse evidence that contains, or lies inside, a place the tool writes to.

    `places` are `(what, path)` pairs such as `("case directory", case)`; a place that does
    not exist yet is checked from its nearest existing ancestor.
    """
    checked = [(what, os.path.isdir(p), _ancestry(_existing(p)), _tree_ids(p))
               for what, p in places]
    for root in evidence:
        if not os.path.lexists(root):
            raise CaseRefused(str(root), tr("evidence path does not exist"))
        st = os.lstat(root)
        own = _id(st)
        parent = _existing(Path(os.path.abspath(root)).parent)
        above = _ancestry(root) if stat.S_ISDIR(st.st_mode) else [own, *_ancestry(parent)]
        for what, exists, place_above, inside in checked:
            if own in place_above:
                raise CaseRefused(str(root), tr("the {what} may not be inside the evidence",
                                                        what=Text(what, {})))
            if exists and (place_above[0] in above or own in inside):
                raise CaseRefused(str(root), tr("evidence may not be inside the {what}",
                                                        what=Text(what, {})))
