"""Writing a bank back out as a hash list for partners: hashes and labels only, never content.

Each shape re-imports to the same entries: `csv` (every label; a text cell a spreadsheet would
run as a formula gets one leading `'`, which the CSV importer takes off again), `pdq` (`hash,quality`, PDQ
entries only) and `vics` (VICS 2.0 `#Media`; categories as the bank's scheme codes, so labels
that are not codes of that scheme are not carried). Retracted entries are never exported, nor
are the store-private signatures of media banks (`pdq_grid`, `orb`): partners get hashes only.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from itertools import groupby
from typing import Any, TextIO

from hashing.output import neutralise_text
from hashing.registry import SPECS, STORE_PRIVATE
from index.categories import BUILTIN, CategoryScheme, SchemeError, load_scheme
from index.errors import BankError

FORMATS = ("csv", "pdq", "vics")
_LABELS = ("quality", "category", "vic_category", "caid_category", "series", "known_good")
_VICS_CONTEXT = "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/{region}/$metadata#Media"


def _rows(con: sqlite3.Connection, bank_id: int) -> Iterator[tuple[Any, ...]]:
    return con.execute(
        "SELECT e.entry_id, e.algorithm, e.hash, e.quality, e.category, e.vic_category,"
        " e.caid_category, e.series, MAX(e.known_good, b.known_good) FROM entries e"
        " JOIN banks b ON b.id = e.bank_id WHERE e.bank_id = ? AND e.retracted = 0"
        f" AND e.algorithm NOT IN ({','.join('?' * len(STORE_PRIVATE))})"
        " ORDER BY e.entry_id, e.algorithm",
        (bank_id, *STORE_PRIVATE),
    )


def export(
    con: sqlite3.Connection, bank_id: int, scheme_name: str | None, fmt: str, out: TextIO
) -> int:
    """Write the bank's active entries to `out`; return the number of records written."""
    if fmt == "csv":
        return _csv(con, bank_id, out)
    if fmt == "pdq":
        return _pdq(con, bank_id, out)
    if fmt == "vics":
        return _vics(con, bank_id, _scheme(scheme_name), out)
    raise BankError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")


def _csv(con: sqlite3.Connection, bank_id: int, out: TextIO) -> int:
    algorithms = [
        a
        for (a,) in con.execute(
            "SELECT DISTINCT algorithm FROM entries WHERE bank_id = ? AND retracted = 0",
            (bank_id,),
        )
        if a not in STORE_PRIVATE
    ]
    algorithms.sort(key=list(SPECS).index)
    writer = csv.writer(out, lineterminator="\n")
    # the csv module quotes a cell holding a line terminator, and ours is "\n" only: a row
    # with a CR anywhere is quoted whole, or a reader would end the row at the CR
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["id", *algorithms, *_LABELS])
    n = 0
    for entry_id, group in groupby(_rows(con, bank_id), key=lambda r: r[0]):
        rows = list(group)
        by_algo = {r[1]: r[2] for r in rows}
        quality = next((r[3] for r in rows if r[3] is not None), None)
        first = rows[0]
        labels = [quality, *first[4:8], "true" if first[8] else "false"]
        # ids and labels come from partners' lists: a cell a spreadsheet would run as a
        # formula gets one leading quote, which the CSV importer removes again
        # (`hashing.output.neutralise_text` / `restore_text`), so the file re-imports as is
        cells = [
            neutralise_text(str(entry_id)),
            *(by_algo.get(a, "") for a in algorithms),
            *("" if v is None else neutralise_text(str(v)) for v in labels),
        ]
        (quoted if any("\r" in c for c in cells) else writer).writerow(cells)
        n += 1
    return n


def _pdq(con: sqlite3.Connection, bank_id: int, out: TextIO) -> int:
    n = 0
    for row in _rows(con, bank_id):
        if row[1] == "pdq":
            out.write(row[2] if row[3] is None else f"{row[2]},{row[3]}")
            out.write("\n")
            n += 1
    return n


def _scheme(name: str | None) -> CategoryScheme:
    if name is None:
        return BUILTIN["vic"]
    try:
        return load_scheme(name)
    except SchemeError as e:
        raise BankError(f"cannot export categories: {e}") from None


def _vics(con: sqlite3.Connection, bank_id: int, scheme: CategoryScheme, out: TextIO) -> int:
    region = "UK" if scheme.name == "caid" else "US"
    out.write('{\n  "@odata.context": ')
    out.write(json.dumps(_VICS_CONTEXT.format(region=region)))
    out.write(',\n  "value": [')
    n = 0
    for entry_id, group in groupby(_rows(con, bank_id), key=lambda r: r[0]):
        rows = list(group)
        media: dict[str, Any] = {"MediaID": entry_id}
        code = scheme.code_for(rows[0][4])
        if code is None:
            # a list imported with only a scale column still carries its code
            code = _scale_code(scheme, rows[0][5], rows[0][6])
        if code is not None:
            media["Category"] = int(code) if code.isdigit() else code
        alternatives = []
        for _, algo, hex_, quality, *_rest in rows:
            if algo in ("md5", "sha1"):
                media[algo.upper()] = hex_.upper()
            else:
                alt: dict[str, Any] = {"HashName": algo.upper(), "HashValue": hex_}
                if quality is not None:
                    alt["Quality"] = quality
                alternatives.append(alt)
        if alternatives:
            media["AlternativeHashes"] = alternatives
        if rows[0][7] is not None:
            media["Series"] = rows[0][7]
        out.write(",\n    " if n else "\n    ")
        out.write(json.dumps(media))
        n += 1
    out.write("\n  ]\n}\n")
    return n


def _scale_code(scheme: CategoryScheme, vic: int | None, caid: str | None) -> str | None:
    if scheme.name == "vic" and vic is not None:
        return str(vic)
    if scheme.name == "caid" and caid is not None:
        return caid
    return None
