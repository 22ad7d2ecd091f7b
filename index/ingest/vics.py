"""Project VIC VICS JSON (1.x and 2.0), streamed with ijson so a 500 MB export never sits in memory.

Shapes seen in the wild: a top-level object with `odata.metadata` (1.x, `.../1.3.xml#Cases`) or
`@odata.context` (2.0, `.../2.0.xml/<US|UK|Default|...>/$metadata#Cases` or `#Media`), and a
`value` array holding either Media objects (hash sets) or Cases each with a `Media` array (case
exports). Which shape it is, is decided per item: an item with a `Media` key is a Case.

Line numbers: ijson reports no positions, so the file is pushed into ijson's coroutine one
physical line at a time and each Media record gets the line on which its `{` was read, which is
exact. A minified file is one line long; `item` (the 1-based Media ordinal) is always recorded.

`Category` codes are labelled through a `CategoryScheme`: `--scheme` if given, else the
scheme named by the 2.0 context path (UK -> caid, anything else -> vic), else vic.

Nesting is bounded (`MAX_DEPTH`) before ijson sees a byte: ijson builds a prefix string per
event that grows with depth, so a small file nested 100k levels deep would otherwise cost
tens of GB; `_DepthGuard` counts brackets outside strings, without recursion.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import ijson

from hashing.i18n import tr
from hashing.registry import PERCEPTUAL
from index.categories import BUILTIN, CategoryScheme
from index.errors import HashListFormatError
from index.ingest.records import (
    BOM,
    Batch,
    ParsedRecord,
    ParseOptions,
    Record,
    RecordError,
    RejectedRecord,
    check_bool,
    check_hash,
    check_quality,
)
from index.ingest.vics_columns import media_batch

_CONTEXT_KEYS = ("odata.metadata", "@odata.context")
_CONTEXT = re.compile(r"DataModels/(?P<version>[\d.]+?)\.xml(?:/(?P<region>[^/$#]+))?", re.I)
_FIELD_HASHES = {"md5": "md5", "sha1": "sha1", "sha256": "sha256"}
# AlternativeHashes names we can use; matching ignores case, '-' and spaces.
_ALT_HASHES = {
    "pdq": "pdq",
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "phash": "phash",
    "dhash": "dhash",
    "ahash": "ahash",
    "whash": "whash",
}
_CHUNK = 1 << 16
# Real VICS documents nest 5-6 levels (root, value, Case, Media, AlternativeHashes, item).
MAX_DEPTH = 64
_STRUCTURE = re.compile(rb'["\\\[\]{}]')
_DEPTH = {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}


def parse(path: str, options: ParseOptions) -> Iterator[Record]:
    with open(path, "rb") as f:
        yield from _Reader(path, options).run(f)


def context_scheme(context: str) -> tuple[str | None, str]:
    """(VICS data-model version, scheme name) named by an odata context/metadata URL."""
    m = _CONTEXT.search(context)
    if m is None:
        return None, "vic"
    region = (m.group("region") or "").upper()
    return m.group("version"), "caid" if region == "UK" else "vic"


def _pieces(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, bytes) pieces, each within one physical line, BOM removed."""
    line = 1
    first = True
    while block := f.read(_CHUNK):
        if first:
            first = False
            if block.startswith(BOM):
                block = block[len(BOM) :]
        for piece in block.splitlines(keepends=True):
            yield line, piece
            if piece.endswith(b"\n"):
                line += 1


class _DepthGuard:
    """Tracks JSON nesting depth over pieces of a document, outside strings, with no recursion.

    Only the structural bytes are looked at (quotes, backslashes, brackets); a backslash in a
    string escapes the byte after it, even across a piece boundary.
    """

    def __init__(self, path: str, limit: int = MAX_DEPTH) -> None:
        self.path = path
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.escaped_at = -1  # offset in the current piece of a byte escaped by a backslash

    def feed(self, piece: bytes, line: int) -> None:
        for m in _STRUCTURE.finditer(piece):
            c = piece[m.start()]
            if self.in_string:
                if m.start() == self.escaped_at:
                    continue
                if c == 0x5C:  # backslash
                    self.escaped_at = m.start() + 1
                elif c == 0x22:  # quote
                    self.in_string = False
            elif c == 0x22:
                self.in_string = True
            elif c in (0x5B, 0x7B):  # [ {
                self.depth += 1
                if self.depth > self.limit:
                    raise HashListFormatError(
                        self.path, line, tr("JSON nested deeper than {n} levels", n=self.limit)
                    )
            elif c in (0x5D, 0x7D):
                self.depth -= 1
        # an escape pending at the very end applies to the first byte of the next piece
        self.escaped_at = 0 if self.escaped_at == len(piece) else -1


def _json_error(e: Exception) -> str:
    text = e.args[0] if e.args else str(e)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return tr("invalid JSON: {reason}", reason=str(text).splitlines()[0].strip())


class _Reader:
    """Turns ijson events into records; keeps only the Media object being built in memory."""

    def __init__(self, path: str, options: ParseOptions) -> None:
        self.path = path
        self.options = options
        self.scheme: CategoryScheme | None = options.scheme
        self.seen_value = False
        self.items = 0
        self.media: ijson.ObjectBuilder | None = None
        self.media_depth = 0
        self.media_line = 0
        self.top: ijson.ObjectBuilder | None = None
        self.top_depth = 0
        self.top_line = 0
        self.top_is_case = False

    def run(self, f: BinaryIO) -> Iterator[Record]:
        events = ijson.sendable_list()
        coro = ijson.parse_coro(events, use_float=True)
        line = 1
        guard = _DepthGuard(self.path)
        for line, piece in _pieces(f):
            guard.feed(piece, line)
            try:
                coro.send(piece)
            except ijson.JSONError as e:
                raise HashListFormatError(self.path, line, _json_error(e)) from None
            for prefix, event, value in events:
                if (rec := self._event(prefix, event, value, line)) is not None:
                    yield rec
            del events[:]
        try:
            coro.close()
        except ijson.JSONError as e:
            raise HashListFormatError(self.path, line, _json_error(e)) from None
        for prefix, event, value in events:
            if (rec := self._event(prefix, event, value, line)) is not None:
                yield rec
        if not self.seen_value:
            raise HashListFormatError(self.path, None,
                                      tr("not a VICS document: no 'value' array"))

    def _event(self, prefix: str, event: str, value: Any, line: int) -> Record | None:
        """Advance the state by one ijson event; return a record when a Media object ends."""
        if self.media is not None:
            self.media.event(event, value)
            self.media_depth += _DEPTH.get(event, 0)
            if self.media_depth == 0:
                obj, self.media = self.media.value, None
                return self._record(obj, self.media_line)
            return None
        if self.top is not None:
            if prefix == "value.item.Media" or prefix.startswith("value.item.Media."):
                if prefix == "value.item.Media.item" and event == "start_map":
                    self.media = ijson.ObjectBuilder()
                    self.media.event(event, value)
                    self.media_depth, self.media_line = 1, line
                return None
            if prefix == "value.item" and event == "map_key" and value == "Media":
                self.top_is_case = True
                return None
            self.top.event(event, value)
            self.top_depth += _DEPTH.get(event, 0)
            if self.top_depth == 0:
                obj, self.top = self.top.value, None
                if not self.top_is_case:
                    return self._record(obj, self.top_line)
            return None
        if prefix == "" and event == "map_key" and value == "value":
            self.seen_value = True
        elif prefix in _CONTEXT_KEYS and event == "string" and self.options.scheme is None:
            self.scheme = BUILTIN[context_scheme(value)[1]]
        elif prefix == "value.item":
            if event == "start_map":
                self.top = ijson.ObjectBuilder()
                self.top.event(event, value)
                self.top_depth, self.top_line, self.top_is_case = 1, line, False
            elif event != "end_array":
                self.items += 1
                return RejectedRecord(line, "value item is not an object", self.items)
        elif prefix == "" and event in ("start_array", "string", "number", "boolean", "null"):
            raise HashListFormatError(
                self.path, line, tr("not a VICS document: top level is not an object")
            )
        return None

    def _record(self, obj: dict[str, Any], line: int) -> Record:
        self.items += 1
        return self.checked(obj, line, self.items)

    def checked(self, obj: dict[str, Any], line: int, item: int) -> Record:
        """The record of Media object number `item` (at `line`), or its rejection."""
        try:
            return self._media(obj, line, item)
        except RecordError as e:
            return RejectedRecord(line, str(e), item)

    def _media(self, obj: dict[str, Any], line: int, item: int) -> ParsedRecord:
        fields = {str(k).lower(): v for k, v in obj.items()}
        hashes: dict[str, str] = {}
        notes: list[str] = []
        for key, algo in _FIELD_HASHES.items():
            value = fields.get(key)
            if value not in (None, ""):
                hashes[algo] = check_hash(algo, _text(key, value))[1]
        quality = None
        alternatives = fields.get("alternativehashes")
        if alternatives is None:
            alternatives = []
        if not isinstance(alternatives, list):
            raise RecordError("AlternativeHashes is not a list")
        for alt in alternatives:
            if not isinstance(alt, dict):
                raise RecordError("AlternativeHashes item is not an object")
            alt = {str(k).lower(): v for k, v in alt.items()}
            name = str(alt.get("hashname", ""))
            alt_algo = _ALT_HASHES.get(name.lower().replace("-", "").replace(" ", ""))
            if alt_algo is None:
                notes.append(f"ignored alternative hash {name!r}")
                continue
            value = alt.get("hashvalue")
            if value in (None, ""):
                continue
            normal = check_hash(alt_algo, _text(name, value))[1]
            if hashes.setdefault(alt_algo, normal) != normal:
                raise RecordError(f"two different {alt_algo} hashes")
            if alt.get("quality") is not None:
                quality = check_quality(alt["quality"])
        if not hashes:
            raise RecordError("Media record has no usable hash")
        label = None
        category = fields.get("category")
        if category is not None and category != "":
            scheme = self.scheme or BUILTIN["vic"]
            label = scheme.lookup(category)
            if label is None or isinstance(category, bool):
                raise RecordError(f"unknown category {category!r} in scheme {scheme.name}")
        if "isprecategorized" in fields:
            check_bool("IsPrecategorized", fields["isprecategorized"])
        media_id = fields.get("mediaid")
        series = fields.get("series")
        return ParsedRecord(
            line,
            tuple(hashes.items()),
            entry_id=None if media_id in (None, "") else _text("MediaID", media_id),
            quality=quality,
            category=label.label if label else self.options.category,
            vic_category=label.vic_category if label else None,
            caid_category=label.caid_category if label else None,
            series=None if series in (None, "") else _text("Series", series),
            known_good=self.options.known_good,
            item=item,
            notes=tuple(notes),
        )


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool) or isinstance(value, dict | list):
        raise RecordError(f"{name}: expected text, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


# -- the import's fast path -----------------------------------------------------------------

_COLUMN_RUN = 2_000  # Media objects checked by column together
_MAX_ITEM = 1 << 26  # one value item (a Case with its Media is walked, not held) beyond this
_READ = 1 << 20
_WS = " \t\n\r"
_COMMA = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")
_TEXT_STRUCTURE = re.compile(r'["\\\[\]{}]')  # `_STRUCTURE` over decoded text


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # json accepts NaN/Infinity; VICS readers don't


_DECODER = json.JSONDecoder(parse_constant=_no_constants)
# what `_DECODER.raw_decode` calls, without its Python frame (an attribute JSONDecoder sets,
# absent from the stubs); raises StopIteration where raw_decode raises JSONDecodeError
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def batches(path: str, options: ParseOptions) -> Iterator[Batch]:
    """The import's path: the same records as `parse`, several times faster.

    ijson hands every scalar to Python as an event (~80 µs per Media record). Here only the
    top levels (root object, `value` array, a Case's members, its `Media` array) are walked
    by hand over a text buffer; each Media object, and every other value, is decoded whole
    by the C JSON decoder, and its start line counted with `str.count`. Nesting is bounded
    as in a strict reader: a value nested past MAX_DEPTH is a line-numbered format error.
    """
    with open(path, "rb") as f:
        yield from _FastReader(path, options, f).run()


class _FastReader:
    def __init__(self, path: str, options: ParseOptions, f: BinaryIO) -> None:
        self.path = path
        self.records = _Reader(path, options)  # builds and checks the Media records
        self.options = options
        self.f = f
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.line = 1  # line number at self.pos
        self.counted = 0  # self.line is the line at buffer offset self.counted
        self.eof = False
        self.first = True
        self.batch = Batch.empty()
        self.perceptual = frozenset(PERCEPTUAL)
        self.pending: list[tuple[dict[str, Any], int, int]] = []

    # buffer --------------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Read more of the file into the buffer; False at the end of the file."""
        if self.eof:
            return False
        block = self.f.read(_READ)
        if self.first and block:
            self.first = False
            if block.startswith(BOM):
                block = block[len(BOM) :]
        try:
            text = self.decoder.decode(block, final=not block)
        except UnicodeDecodeError as e:
            raise self._error(tr("invalid JSON: not UTF-8 ({reason})", reason=e.reason)) from None
        if not block:
            self.eof = True
        if self.pos > _READ:  # drop what was consumed
            self._line_at(self.pos)
            self.buf = self.buf[self.pos :]
            self.counted -= self.pos
            self.pos = 0
        self.buf += text
        return bool(block) or bool(text)

    def _line_at(self, offset: int) -> int:
        if offset < self.counted:
            return self.line - self.buf.count("\n", offset, self.counted)
        self.line += self.buf.count("\n", self.counted, offset)
        self.counted = offset
        return self.line

    def _error(self, reason: str) -> HashListFormatError:
        return HashListFormatError(self.path, self._line_at(min(self.pos, len(self.buf))), reason)

    def _peek(self) -> str:
        """The next non-blank character ('' at the end of the file), consuming the blanks."""
        while True:
            buf, pos = self.buf, self.pos
            n = len(buf)
            while pos < n and buf[pos] in _WS:
                pos += 1
            self.pos = pos
            if pos < n:
                return buf[pos]
            if not self._fill():
                return ""

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise self._error(tr("invalid JSON: expected {char!r}", char=char))
        self.pos += 1

    def _value(self, depth: int) -> Any:
        """Decode one whole JSON value at the position; `depth` containers enclose it."""
        self._peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except RecursionError:
                raise self._error(tr("JSON nested deeper than {n} levels", n=MAX_DEPTH)) from None
            except ValueError as e:
                at_end = isinstance(e, json.JSONDecodeError) and e.pos >= len(self.buf) - 1
                grow = len(self.buf) - self.pos < _MAX_ITEM
                if not self.eof and grow and (at_end or not isinstance(e, json.JSONDecodeError)
                                              or self._incomplete(e)):
                    self._fill()
                    continue
                raise self._error(_decode_error(e)) from None
            if end == len(self.buf) and not self.eof and not isinstance(value, dict | list | str):
                self._fill()  # a number may continue in the next block
                continue
            break
        openers = self.buf.count("{", self.pos, end) + self.buf.count("[", self.pos, end)
        if depth + openers > MAX_DEPTH:
            self._check_depth(self.pos, end, depth)
        self.pos = end
        return value

    def _incomplete(self, e: json.JSONDecodeError) -> bool:
        """A decode error that more of the file could resolve (the value runs to the end)."""
        tail = self.buf[e.pos :]
        return not tail.strip() or "Unterminated" in e.msg or e.pos >= len(self.buf) - 64

    def _check_depth(self, start: int, end: int, depth: int) -> None:
        """Exact nesting of buf[start:end] (brackets in strings and escapes do not count)."""
        in_string = False
        skip_at = -1  # the offset of a character escaped by a backslash
        for m in _TEXT_STRUCTURE.finditer(self.buf, start, end):
            c = m.group()
            if in_string:
                if m.start() == skip_at:
                    continue
                if c == "\\":
                    skip_at = m.end()
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    self.pos = start
                    raise self._error(tr("JSON nested deeper than {n} levels", n=MAX_DEPTH))
            elif c in "]}":
                depth -= 1

    def _key(self) -> str:
        if self._peek() != '"':
            raise self._error(tr("invalid JSON: expected a member name"))
        key = self._value(0)
        self._expect(":")
        return str(key)

    def _members(self) -> Iterator[str]:
        """The member names of the object at the position ('{' next), leaving each value to the
        caller, which must consume it before the next name is read."""
        self._expect("{")
        if self._peek() == "}":
            self.pos += 1
            return
        while True:
            yield self._key()
            if self._closed("}"):
                return

    def _elements(self) -> Iterator[None]:
        """Yield once per element of the array at the position ('[' next)."""
        self._expect("[")
        if self._peek() == "]":
            self.pos += 1
            return
        while True:
            if self._peek() == "":
                raise self._error(tr("invalid JSON: the document ends inside an array"))
            yield None
            if self._closed("]"):
                return

    def _closed(self, close: str) -> bool:
        """After a member or element: consume `close` (True) or ',' (False), else an error."""
        c = self._peek()
        if c == close:
            self.pos += 1
            return True
        if c != ",":
            raise self._error(tr("invalid JSON: expected ',' or {close!r}", close=close))
        self.pos += 1
        return False

    # document ------------------------------------------------------------------------------

    def _objects(self) -> Iterator[Batch]:
        """Media objects each followed by a comma, read while they lie whole in the buffer:
        the array walk without a generator step per element, and per object no Python call
        but the C scanner's (`raw_decode`, `_line_at` and `_pend` inlined: 0.4 s of CPU per
        10^6 entries). Stops at an element start (the last one, anything unusual and a refill
        are the walk's)."""
        buf, pos, n = self.buf, self.pos, len(self.buf)
        line, counted = self.line, self.counted  # the line at offset `counted`
        if pos < counted:
            return
        scan, comma_at, count = _SCAN, _COMMA.match, buf.count
        records, pending = self.records, self.pending
        while pos < n and buf[pos] == "{":
            try:
                value, end = scan(buf, pos)
            except (StopIteration, ValueError, RecursionError):  # raw_decode's failures
                break
            comma = comma_at(buf, end)
            if comma is None or 4 + count("{", pos, end) + count("[", pos, end) > MAX_DEPTH:
                break
            line += count("\n", counted, pos)
            counted = pos
            records.items += 1
            pending.append((value, line, records.items))
            pos = comma.end()
            if len(pending) >= _COLUMN_RUN:
                self.pos, self.line, self.counted = pos, line, counted
                yield from self._flush()
                pending = self.pending
        self.pos, self.line, self.counted = pos, line, counted

    def _pend(self, obj: dict[str, Any], line: int) -> Iterator[Batch]:
        """Hold one Media object for checking by column with the next ones (`vics_columns`)."""
        self.records.items += 1
        self.pending.append((obj, line, self.records.items))
        if len(self.pending) >= _COLUMN_RUN:
            yield from self._flush()

    def _flush(self) -> Iterator[Batch]:
        """Check the held Media objects by column, or else one by one (the reference)."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        objs, lines, items = (list(c) for c in zip(*pending, strict=True))
        fast = media_batch(objs, lines, items, self.records.scheme, self.options, _ALT_HASHES)
        if fast is not None:
            yield fast
            return
        for obj, line, item in pending:
            yield from self._emit(self.records.checked(obj, line, item))

    def _emit(self, rec: Record) -> Iterator[Batch]:
        if isinstance(rec, RejectedRecord):
            self.batch.rejected.append(rec)
        else:
            self.batch.add_record(rec, self.perceptual)
        if self.batch.records + len(self.batch.rejected) >= 5_000:
            yield self.batch
            self.batch = Batch.empty()

    def run(self) -> Iterator[Batch]:
        try:
            yield from self._document()
        except HashListFormatError:
            yield from self._flush()  # the objects read whole before the unreadable part
            yield self.batch
            raise
        yield self.batch

    def _document(self) -> Iterator[Batch]:
        c = self._peek()
        if c == "":
            raise self._error(tr("invalid JSON: the document is empty"))
        if c != "{":
            if c in '["-0123456789tfn':
                raise self._error(tr("not a VICS document: top level is not an object"))
            raise self._error(tr("invalid JSON: not a JSON value"))
        seen_value = False
        for key in self._members():
            if key == "value" and self._peek() == "[":
                seen_value = True
                yield from self._items()
                continue
            seen_value = seen_value or key == "value"
            value = self._value(1)
            if key in _CONTEXT_KEYS and isinstance(value, str) and self.options.scheme is None:
                self.records.scheme = BUILTIN[context_scheme(value)[1]]
        if self._peek() != "":
            raise self._error(tr("invalid JSON: trailing data after the document"))
        if not seen_value:
            raise HashListFormatError(self.path, None,
                                      tr("not a VICS document: no 'value' array"))

    def _items(self) -> Iterator[Batch]:
        for _ in self._elements():
            line = self._line_at(self.pos) if self._peek() else self.line
            c = self._peek()
            if c != "{":
                # rejected when the reference is: at an array's start, a scalar's end
                if c != "[":
                    self._value(2)
                self.records.items += 1
                yield from self._emit(
                    RejectedRecord(line, "value item is not an object", self.records.items)
                )
                if c == "[":
                    self._value(2)
                continue
            fields: dict[str, Any] = {}
            is_case = False
            for key in self._members():
                if key == "Media":
                    is_case = True
                    if self._peek() == "[":
                        yield from self._media()
                        continue
                    self._value(3)
                    continue
                fields[key] = self._value(3)
            if not is_case:
                yield from self._pend(fields, line)
        yield from self._flush()

    def _media(self) -> Iterator[Batch]:
        for _ in self._elements():
            yield from self._objects()
            is_object = self._peek() == "{"
            line = self._line_at(self.pos)
            value = self._value(4)
            if is_object:
                yield from self._pend(value, line)
        yield from self._flush()


def _decode_error(e: ValueError) -> str:
    text = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
    return tr("invalid JSON: {reason}", reason=text)
