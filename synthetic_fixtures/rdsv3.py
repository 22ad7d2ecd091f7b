"""A synthetic database shaped like NIST's NSRL RDSv3 publication (SQLite), for tests and the
ingest benchmark; no real NSRL data.

RDSv3 ships as one SQLite file whose `FILE` view has the RDSv2 file columns (`sha256`,
`sha1`, `md5`, `crc32`, `file_name`, `file_size`, `package_id`), with `PKG`, `OS`, `MFG` and
`VERSION` beside it; hashes are upper-case hex and one file's hashes repeat once per package it
ships in. Here `FILE` is a view over a `METADATA` table holding those columns, which is all the
importer reads (`index.ingest.rdsv3`).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

_SCHEMA = """
CREATE TABLE VERSION (version TEXT, build_set TEXT, build_date TEXT, release_date TEXT,
                      description TEXT);
CREATE TABLE MFG (manufacturer_id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE OS (operating_system_id INTEGER PRIMARY KEY, name TEXT, version TEXT,
                 manufacturer_id INTEGER);
CREATE TABLE PKG (package_id INTEGER PRIMARY KEY, name TEXT, version TEXT,
                  operating_system_id INTEGER, manufacturer_id INTEGER, language TEXT,
                  application_type TEXT);
CREATE TABLE METADATA (package_id INTEGER, file_name TEXT, file_size INTEGER, sha256 TEXT,
                       sha1 TEXT, md5 TEXT, crc32 TEXT);
CREATE VIEW FILE AS SELECT sha256, sha1, md5, crc32, file_name, file_size, package_id
                    FROM METADATA;
"""


def file_hashes(i: int) -> tuple[str, str, str]:
    """(sha256, sha1, md5) of synthetic file number `i`, upper-case as in the RDS."""
    data = b"nsrl-synthetic-%d" % i
    return (hashlib.sha256(data).hexdigest().upper(), hashlib.sha1(data).hexdigest().upper(),
            hashlib.md5(data).hexdigest().upper())


def write_rdsv3(path: str | os.PathLike[str], files: int, packages: int = 3,
                repeat_every: int = 10, indexed: bool = False) -> int:
    """Write a database of `files` distinct files; every `repeat_every`-th file also ships in
    a second package (a repeated row, as in the real RDS). With `indexed`, each digest column
    gets an index (a publication that can be looked up in place); without, it has none (the
    store then builds a sidecar). Returns the FILE row count."""
    out = Path(path)
    if out.exists():
        out.unlink()
    con = sqlite3.connect(out)
    con.executescript(_SCHEMA)
    con.execute("INSERT INTO VERSION VALUES ('synthetic', 'modern', '2026-01-01', '2026-01-01',"
                " 'generated, not NSRL data')")
    con.execute("INSERT INTO MFG VALUES (1, 'Example Corp')")
    con.execute("INSERT INTO OS VALUES (1, 'ExampleOS', '1', 1)")
    con.executemany("INSERT INTO PKG VALUES (?, ?, '1.0', 1, 1, 'English', 'Utility')",
                    [(p, f"package {p}") for p in range(1, packages + 1)])
    rows = 0

    def gen() -> object:
        nonlocal rows
        for i in range(files):
            sha256, sha1, md5 = file_hashes(i)
            crc = f"{hashlib.md5(str(i).encode()).hexdigest()[:8].upper()}"
            yield (1 + i % packages, f"file{i}.dll", 1000 + i, sha256, sha1, md5, crc)
            rows += 1
            if repeat_every and i % repeat_every == 0:
                yield (1 + (i + 1) % packages, f"file{i}.dll", 1000 + i, sha256, sha1, md5, crc)
                rows += 1

    con.executemany("INSERT INTO METADATA VALUES (?, ?, ?, ?, ?, ?, ?)", gen())  # type: ignore[arg-type]
    if indexed:
        for column in ("sha256", "sha1", "md5"):
            con.execute(f"CREATE INDEX METADATA_{column} ON METADATA ({column})")
    con.commit()
    con.close()
    return rows
