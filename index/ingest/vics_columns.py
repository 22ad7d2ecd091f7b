"""VICS Media objects checked column by column: the import's fast path over decoded objects.

Why: the reference check (`vics._Reader._media`) looks at one decoded Media object at a time
in Python, about 8 µs each, and the import target is 20 µs a record all in. Exports are
uniform (every Media object has the same members, each hash one exact-length hex string, one
alternative hash), so a run of objects can be checked per member with C-level operations
(joins, `translate`, sets of types) and staged in groups. A run that is not uniform in
exactly the ways handled here gives None and goes through the reference check, which alone
decides rejections, notes and their reasons; tests check both give the same staged rows.
"""

from __future__ import annotations

from itertools import repeat
from operator import eq, itemgetter
from typing import Any

from hashing.registry import PERCEPTUAL, SPECS
from index.categories import BUILTIN, CategoryLabel, CategoryScheme
from index.ingest.fastlines import lower_hex_cells
from index.ingest.records import (
    Batch,
    GroupKey,
    Labels,
    ParseOptions,
    RecordError,
    check_bool,
    group_rows,
    rows_by_key,
)
from index.multirow import FlatRows

_FIELDS = ("md5", "sha1", "sha256")  # the reference's order: a record's first hash is its id
_MEMBERS = frozenset({*_FIELDS, "alternativehashes", "category", "isprecategorized",
                      "mediaid", "series"})
_ALT_MEMBERS = frozenset({"hashname", "hashvalue", "quality"})
_PERCEPTUAL = frozenset(PERCEPTUAL)


def media_batch(objs: list[dict[str, Any]], lines: list[int], items: list[int],
                scheme: CategoryScheme | None, options: ParseOptions,
                alternatives: dict[str, str]) -> Batch | None:
    """The staged batch of these Media objects (at `lines`, ordinals `items`), or None when
    they are not uniform enough to be checked by column."""
    names = _names(objs, _MEMBERS)
    if names is None:
        return None
    hash_cols: list[tuple[str, list[str]]] = []
    for field in _FIELDS:
        if field in names:
            col = _hex(field, _column(objs, names[field]))
            if col is None:
                return None
            hash_cols.append((field, col))
    qualities: list[Any] = [None] * len(objs)
    if "alternativehashes" in names:
        alt = _alternative(_column(objs, names["alternativehashes"]), alternatives,
                           {a for a, _ in hash_cols})
        if alt is None:
            return None
        algo, col, quality = alt
        hash_cols.append((algo, col))
        if quality is not None:
            qualities = quality
    if not hash_cols:
        return None
    categories: list[Any] = [None] * len(objs)
    labels: dict[Any, CategoryLabel | None] = {None: None}
    if "category" in names:
        categories = _column(objs, names["category"])
        found = _categories(categories, scheme or BUILTIN["vic"])
        if found is None:
            return None
        labels = found
    if "isprecategorized" in names and not _booleans(_column(objs, names["isprecategorized"])):
        return None
    ids: list[Any] | None = None
    if "mediaid" in names:
        ids = _texts(_column(objs, names["mediaid"]), ints=True)
        if ids is None:
            return None
        if ids and ids[0] is None:  # no ids at all: each record's first hash is its id
            ids = None
    series: list[Any] = [None] * len(objs)
    if "series" in names:
        found_series = _texts(_column(objs, names["series"]), ints=False)
        if found_series is None:
            return None
        series = found_series
    return _stage(hash_cols, ids, categories, labels, series, qualities, lines, items, options)


def _stage(hash_cols: list[tuple[str, list[str]]], ids: list[str] | None,
           categories: list[Any], labels: dict[Any, CategoryLabel | None], series: list[Any],
           qualities: list[Any], lines: list[int], items: list[int],
           options: ParseOptions) -> Batch:
    """Group the checked columns as `Batch.add_record` stages one record at a time."""
    explicit = int(ids is not None)
    entry_ids = ids if ids is not None else hash_cols[0][1]
    combos: list[tuple[Any, Any, Any]] = list(zip(categories, series, qualities, strict=True))
    groups: dict[GroupKey, FlatRows] = {}
    for (category, series_value, quality), idx in rows_by_key(combos).items():
        label = labels[category]
        shared = (label.label if label else options.category,
                  label.vic_category if label else None,
                  label.caid_category if label else None, series_value,
                  int(options.known_good))
        every = len(idx) == len(lines)
        get = (lambda col: col) if every else _getter(idx)
        own_items, own_lines, own_ids = get(items), get(lines), get(entry_ids)
        for algo, values in hash_cols:
            group_labels: Labels = (explicit, quality if algo in _PERCEPTUAL else None, *shared)
            hashes = get(values)
            entries = [None if e == h else e for e, h in zip(own_ids, hashes, strict=True)] \
                if any(map(eq, own_ids, hashes)) else own_ids
            group_rows(groups, (algo, group_labels, "item")).add_columns(
                own_items, own_lines, hashes, entries)
    return Batch(groups, [], {}, len(lines))


def _getter(idx: list[int]) -> Any:
    get = itemgetter(*idx)
    if len(idx) == 1:
        return lambda col: [get(col)]
    return lambda col: list(get(col))


def _column(objs: list[dict[str, Any]], name: str) -> list[Any]:
    return list(map(itemgetter(name), objs))


def _names(objs: list[Any], wanted: frozenset[str]) -> dict[str, str] | None:
    """{lower-case member: its spelling} when every object is a dict naming the same wanted
    members the same way (others are ignored, as the reference ignores them), else None."""
    if set(map(type, objs)) != {dict}:
        return None
    shapes = set(map(tuple, objs))
    if len(shapes) > 8:
        return None
    names: dict[str, str] | None = None
    for shape in shapes:
        lowered = [k.lower() for k in shape]
        if len(set(lowered)) != len(lowered):
            return None  # two spellings of one member: the reference decides which counts
        mine = {low: key for low, key in zip(lowered, shape, strict=True) if low in wanted}
        if names is None:
            names = mine
        elif mine != names:
            return None
    return names


def _hex(algo: str, col: list[Any]) -> list[str] | None:
    """The column lower-cased when every cell is a hex string of the algorithm's length."""
    if set(map(type, col)) != {str}:
        return None
    return lower_hex_cells(col, SPECS[algo].hex_length)


def _alternative(col: list[Any], alternatives: dict[str, str], fields: set[str]
                 ) -> tuple[str, list[str], list[Any] | None] | None:
    """(algorithm, hashes, qualities or None) when each object has one alternative hash, all
    of one algorithm the fields do not give, with integer qualities in range."""
    if set(map(type, col)) != {list} or set(map(len, col)) != {1}:
        return None
    inner = list(map(itemgetter(0), col))
    names = _names(inner, _ALT_MEMBERS)
    if names is None or "hashname" not in names or "hashvalue" not in names:
        return None
    spelled = _column(inner, names["hashname"])
    if set(map(type, spelled)) != {str} or len(set(spelled)) != 1:
        return None
    algo = alternatives.get(spelled[0].lower().replace("-", "").replace(" ", ""))
    if algo is None or algo in fields:
        return None
    values = _hex(algo, _column(inner, names["hashvalue"]))
    if values is None:
        return None
    if "quality" not in names:
        return algo, values, None
    qualities = _column(inner, names["quality"])
    if set(map(type, qualities)) != {int} or not 0 <= min(qualities) <= max(qualities) <= 100:
        return None
    return algo, values, qualities


def _categories(col: list[Any], scheme: CategoryScheme
                ) -> dict[Any, CategoryLabel | None] | None:
    """Each distinct code's label (None for no code), or None when one is unknown or odd."""
    if not set(map(type, col)) <= {int, str, type(None)}:
        return None
    labels: dict[Any, CategoryLabel | None] = {}
    for code in set(col):
        if code is None or code == "":
            labels[code] = None
            continue
        label = scheme.lookup(code)
        if label is None:
            return None
        labels[code] = label
    return labels


def _booleans(col: list[Any]) -> bool:
    """Whether every cell reads as a boolean (each distinct (type, value) checked once)."""
    try:
        for _, value in set(zip(map(type, col), col, strict=True)):
            check_bool("IsPrecategorized", value)
    except (RecordError, TypeError):  # TypeError: an unhashable cell (a list or object)
        return False
    return True


def _texts(col: list[Any], ints: bool) -> list[Any] | None:
    """Non-empty strings as they are (integers as text when `ints`), all None as None."""
    kinds = set(map(type, col))
    if kinds == {str}:
        return None if "" in col else col
    if kinds == {int} and ints:
        return list(map(str, col))
    if kinds == {type(None)}:
        return list(repeat(None, len(col)))
    return None
