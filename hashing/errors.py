"""Typed errors of the project. Every error names the path or line it is about."""

from __future__ import annotations

from hashing.i18n import Text, tr


class TriageError(Exception):
    """Base class of every error this project raises on purpose."""


class HashFormatError(TriageError, ValueError):
    """A hash string that is not valid for its algorithm (bad hex, wrong length)."""

    def __init__(self, algorithm: str, value: str, reason: str) -> None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        super().__init__(tr("invalid {algorithm} hash {shown!r}: {reason}", algorithm=algorithm,
                            shown=shown, reason=reason))
        self.algorithm = algorithm
        self.value = value
        self.reason = reason


class UnknownAlgorithmError(TriageError, KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(tr("unknown hash algorithm {name!r}", name=name))
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


class MediaError(TriageError):
    """A file that could not be turned into pixels; `reason` is what goes into the record."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(Text("{path}: {reason}", {"path": path, "reason": reason}))
        self.path = path
        self.reason = reason


class CorruptMediaError(MediaError):
    """Truncated or malformed media data."""


class UnsupportedMediaError(MediaError):
    """A format we recognise as media but cannot decode, or not media at all."""


class PixelLimitError(MediaError):
    """Declared dimensions exceed the configured pixel limit (decompression bomb guard)."""


class DecodeMemoryError(MediaError):
    """Decoding would need more memory than the configured decode memory limit allows."""


class DecodeTimeoutError(MediaError):
    """Decoding took longer than the per-file time limit."""


class SampleTableError(MediaError):
    """A video container's sample tables declare more than the file can hold."""
