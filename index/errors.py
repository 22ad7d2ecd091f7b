"""Typed errors of the `index` layer: corrupt index files, bad hash lists, bank-store misuse."""

from __future__ import annotations

from hashing.errors import TriageError
from hashing.i18n import Text


class IndexCorruptError(TriageError):
    """An index file that is missing, unreadable or does not match its recorded checksum."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(Text("{path}: {reason}", {"path": path, "reason": reason}))
        self.path = path
        self.reason = reason


class HashListFormatError(TriageError, ValueError):
    """A hash list that cannot be parsed at all (as opposed to one bad record in it).

    `line` is 1-based in the source file, or None when the problem is not tied to a line.
    """

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(Text("{where}: {reason}", {"where": where, "reason": reason}))
        self.path = path
        self.line = line
        self.reason = reason


class BankError(TriageError):
    """A bank-store operation that cannot be done (unknown bank, rejected import, bad option)."""
