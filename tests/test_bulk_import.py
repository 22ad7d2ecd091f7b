"""The bulk import path (indexes dropped, rows appended, indexes rebuilt) gives exactly what
the row-by-row path gives, falls back to the full checks on any repeat, leaves the store's
indexes whole after a refusal, and version 2 stores (inline UNIQUE) keep working."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from index import bank_import
from index.bank_types import ImportRejectedError
from index.banks import BankStore, ImportOptions
from index.ingest.records import Batch
from index.ingest.vics_columns import media_batch
from index.multirow import FlatRows
from index.staging import Staging, drop
from index.store_schema import (
    CACHE_KIB,
    PAGE_BYTES,
    SCHEMA_VERSION,
    connect,
    entry_indexes,
    schema_version,
)

MD5 = [hashlib.md5(i.to_bytes(4, "little")).hexdigest() for i in range(400)]
SHA1 = [hashlib.sha1(i.to_bytes(4, "little")).hexdigest() for i in range(400)]

# the entries table of a version 2 store, as those stores hold it
V2_ENTRIES = """
CREATE TABLE entries (
    id INTEGER PRIMARY KEY, bank_id INTEGER NOT NULL REFERENCES banks(id),
    entry_id TEXT NOT NULL, algorithm TEXT NOT NULL, hash TEXT NOT NULL, quality INTEGER,
    category TEXT, vic_category INTEGER, caid_category TEXT, series TEXT,
    known_good INTEGER NOT NULL DEFAULT 0, retracted INTEGER NOT NULL DEFAULT 0,
    retracted_at TEXT, retract_reason TEXT, retracted_import INTEGER REFERENCES imports(id),
    import_id INTEGER NOT NULL REFERENCES imports(id), line INTEGER NOT NULL,
    UNIQUE (bank_id, algorithm, hash)
);
CREATE INDEX entries_by_hash ON entries (algorithm, hash, retracted, bank_id);
CREATE INDEX entries_by_id ON entries (bank_id, entry_id)
"""


def csv_list(tmp_path: Path, name: str, rows: list[tuple[str, int, str]]) -> str:
    """rows: (id, hash number, category)."""
    path = tmp_path / name
    path.write_text("id,md5,sha1,category\n" + "".join(
        f"{i},{MD5[n]},{SHA1[n]},{c}\n" for i, n, c in rows), encoding="utf-8")
    return str(path)


def entries(store_dir: Path) -> list[tuple[Any, ...]]:
    con = connect(str(store_dir / "banks.sqlite"))
    try:
        return con.execute(
            "SELECT b.name, e.entry_id, e.algorithm, e.hash, e.category, e.retracted, e.line"
            " FROM entries e JOIN banks b ON b.id = e.bank_id ORDER BY 1, 3, 4"
        ).fetchall()
    finally:
        con.close()


def outcome(result: Any) -> tuple[Any, ...]:
    return (result.status, result.records, result.added, result.updated, result.unchanged,
            result.duplicates, result.retracted,
            [(r.line, r.reason) for r in result.rejected],
            {k: sorted(v) for k, v in result.ids.items()})


def run(tmp_path: Path, tag: str, steps: list[tuple[str, ImportOptions]]) -> list[Any]:
    out: list[Any] = []
    with BankStore(tmp_path / tag) as store:
        for path, options in steps:
            try:
                out.append(outcome(store.import_file(path, options)))
            except ImportRejectedError as e:
                out.append(outcome(e.result))
    out.append(entries(tmp_path / tag))
    return out


REPEAT_SAME = [(f"m{i}", i, "cat") for i in range(50)] + [("m7", 7, "cat")]
REPEAT_CONFLICT = [(f"m{i}", i, "cat") for i in range(50)] + [("m7", 7, "cgi")]
ID_CONFLICT = [(f"m{i}", i, "cat") for i in range(50)] + [("m3", 60, "cat")]
PLAIN = [(f"m{i}", i, "cat") for i in range(50)]


@pytest.mark.parametrize("rows", [PLAIN, REPEAT_SAME, REPEAT_CONFLICT, ID_CONFLICT],
                         ids=["plain", "repeat-same", "repeat-conflict", "id-conflict"])
def test_bulk_path_reports_and_stores_what_the_row_path_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[tuple[str, int, str]]
) -> None:
    other = csv_list(tmp_path, "other.csv", [(f"o{i}", i + 100, "x") for i in range(20)])
    path = csv_list(tmp_path, "list.csv", rows)
    nxt = csv_list(tmp_path, "next.csv", [(f"m{i}", i, "new" if i == 4 else "cat")
                                          for i in range(0, 55, 2)])
    steps = [(other, ImportOptions(bank="o")), (path, ImportOptions(bank="b", version="1")),
             (nxt, ImportOptions(bank="b", version="2", replace=True))]
    monkeypatch.setattr(bank_import, "BULK_ROWS", 10**9)
    by_row = run(tmp_path, "row", steps)
    monkeypatch.setattr(bank_import, "BULK_ROWS", 1)
    assert run(tmp_path, "bulk", steps) == by_row
    for scan in (True, False):  # the list compared by scanning the bank or by its hashes
        monkeypatch.setattr(bank_import, "scans_bank", lambda *_, scan=scan: scan)
        assert run(tmp_path, f"scan-{scan}", steps) == by_row


def test_refused_bulk_import_leaves_every_index(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bank_import, "BULK_ROWS", 1)
    with BankStore(tmp_path / "s") as store:
        before = entry_indexes(store.con)
        with pytest.raises(ImportRejectedError):
            store.import_file(csv_list(tmp_path, "bad.csv", REPEAT_CONFLICT),
                              ImportOptions(bank="b"))
        assert entry_indexes(store.con) == before
        assert [n for n, _, _ in before] == ["entries_key", "entries_by_id"]
        store.import_file(csv_list(tmp_path, "ok.csv", PLAIN), ImportOptions(bank="b"))
        assert entry_indexes(store.con) == before
        hit = store.open_matcher().lookup_digest("md5", MD5[9])
        assert [(e.bank, e.entry_id) for e in hit] == [("b", "m9")]
    assert schema_version(connect(str(tmp_path / "s" / "banks.sqlite"))) == SCHEMA_VERSION == 3


def test_unchecked_imports_write_valid_references(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An import writes with foreign keys off and sorts with a small cache: whatever it wrote
    (first imports, a replacing one, a refused one) holds only valid references, and the
    connection has its checks and page cache back afterwards."""
    monkeypatch.setattr(bank_import, "BULK_ROWS", 1)
    with BankStore(tmp_path / "s") as store:
        store.import_file(csv_list(tmp_path, "o.csv", [(f"o{i}", i + 100, "x") for i in range(20)]),
                          ImportOptions(bank="o"))
        store.import_file(csv_list(tmp_path, "a.csv", PLAIN), ImportOptions(bank="b", version="1"))
        with pytest.raises(ImportRejectedError):
            store.import_file(csv_list(tmp_path, "bad.csv", REPEAT_CONFLICT),
                              ImportOptions(bank="b"))
        store.import_file(csv_list(tmp_path, "n.csv", PLAIN[::2]),
                          ImportOptions(bank="b", version="2", replace=True))
        con = store.con
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert con.execute("PRAGMA cache_size").fetchone() == (-CACHE_KIB,)
        (retracted,) = con.execute(
            "SELECT COUNT(*) FROM entries WHERE retracted_import IS NOT NULL").fetchone()
        assert retracted == 2 * 25  # md5 and sha1 of the 25 records version 2 dropped


def _databases(con: sqlite3.Connection) -> list[str]:
    return [name for _, name, _ in con.execute("PRAGMA database_list")]


def test_staging_database_goes_with_each_list(tmp_path: Path) -> None:
    with BankStore(tmp_path / "s") as store:
        store.import_file(csv_list(tmp_path, "ok.csv", PLAIN), ImportOptions(bank="b"))
        assert _databases(store.con) == ["main"]
        with pytest.raises(ImportRejectedError):
            store.import_file(csv_list(tmp_path, "bad.csv", REPEAT_CONFLICT),
                              ImportOptions(bank="c"))
        assert _databases(store.con) == ["main"]
    con = sqlite3.connect("", isolation_level=None)
    labels = (0, None, None, None, None, None, 0)
    for n in (2, 1):  # a second list on one connection gets a fresh database
        staging = Staging(con)
        rows = FlatRows(2)
        rows.add_columns(range(n), MD5[:n])
        staging.add(Batch({("md5", labels, "line"): rows}, [], {}, n))
        assert staging.finish().hashes == n
    drop(con)
    assert _databases(con) == ["main"]


def test_a_version_2_store_opens_imports_and_matches(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store_dir = tmp_path / "old"
    BankStore(store_dir).close()
    con = sqlite3.connect(store_dir / "banks.sqlite", isolation_level=None)
    con.execute("DROP TABLE entries")
    for statement in V2_ENTRIES.split(";"):
        con.execute(statement)
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    for bulk in (10**9, 1):
        monkeypatch.setattr(bank_import, "BULK_ROWS", bulk)
        bank = f"b{bulk}"
        with BankStore(store_dir) as store:
            store.import_file(csv_list(tmp_path, "v1.csv", PLAIN),
                              ImportOptions(bank=bank, version="1"))
            with pytest.raises(ImportRejectedError):  # the inline UNIQUE still finds repeats
                store.import_file(csv_list(tmp_path, "bad.csv", REPEAT_CONFLICT),
                                  ImportOptions(bank=bank + "x"))
            result = store.import_file(
                csv_list(tmp_path, "v2.csv", PLAIN[:40] + [("m99", 99, "cat")]),
                ImportOptions(bank=bank, version="2", replace=True))
            assert (result.added, result.retracted) == (2, 20)
            matcher = store.open_matcher()
            for algo, h, ids in (("md5", MD5[99], ["m99"]), ("sha1", SHA1[45], []),
                                 ("sha1", SHA1[5], ["m5"])):
                assert [e.entry_id for e in matcher.lookup_digest(algo, h)
                        if e.bank == bank] == ids
            assert [n for n, _, _ in entry_indexes(store.con)] == [
                "entries_by_hash", "entries_by_id"]
            assert schema_version(store.con) == 2


def test_a_new_store_takes_large_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    with BankStore(tmp_path / "new") as store:
        assert store.con.execute("PRAGMA page_size").fetchone() == (PAGE_BYTES,)
        assert PAGE_BYTES != 4096  # SQLite's default: the pragma above must have acted
    old = tmp_path / "old"
    old.mkdir()
    con = sqlite3.connect(old / "banks.sqlite")  # a store begun with SQLite's default pages
    con.execute("PRAGMA page_size=4096")
    con.execute("CREATE TABLE pad (a)")
    con.commit()
    con.close()
    with BankStore(old) as store:
        store.import_file(csv_list(tmp_path, "v1.csv", PLAIN), ImportOptions(bank="b"))
        assert store.con.execute("PRAGMA page_size").fetchone() == (4096,)
        assert store.con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert [e.entry_id for e in store.open_matcher().lookup_digest("md5", MD5[5])] == ["m5"]


def _media(i: int, **over: Any) -> dict[str, Any]:
    media: dict[str, Any] = {
        "MediaID": i, "Category": i % 6, "MD5": MD5[i].upper(), "SHA1": SHA1[i],
        "IsPrecategorized": True, "MediaSize": 10 + i, "Series": f"s{i % 2}",
        "AlternativeHashes": [{"HashName": "PDQ", "HashValue": hashlib.sha256(
            bytes([i % 256])).hexdigest(), "Quality": 40 + i % 50}]}
    media.update(over)
    return {k: v for k, v in media.items() if v is not _DROP}


_DROP = object()
# one odd member in an otherwise uniform run: the column check must hand it to the reference
ODD = [{}, {"MediaID": "m-1"}, {"MediaID": ""}, {"MediaID": None}, {"Category": 9},
       {"Category": True}, {"Category": "2"}, {"MD5": ""}, {"MD5": "zz"}, {"md5": MD5[1]},
       {"IsPrecategorized": "maybe"}, {"IsPrecategorized": 1.0}, {"Series": 3},
       {"AlternativeHashes": []}, {"AlternativeHashes": [{"HashName": "MD5",
                                                          "HashValue": MD5[2]}]},
       {"AlternativeHashes": [{"HashName": "PhotoDNA", "HashValue": "AA"}]},
       {"AlternativeHashes": [{"HashName": "PDQ", "HashValue": "ab" * 32, "Quality": 101}]},
       {"AlternativeHashes": [{"HashName": "PDQ", "HashValue": "ab" * 32, "Quality": True}]},
       {"SHA1": _DROP}, {"MediaID": _DROP, "Category": _DROP, "Series": _DROP}]


@pytest.mark.parametrize("odd", ODD, ids=[str(i) for i in range(len(ODD))])
def test_vics_column_check_stages_what_the_reference_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, odd: dict[str, Any]
) -> None:
    import json

    from index.ingest import vics
    from index.ingest.records import ParseOptions, batched
    from tests.test_living_lists import staged_rows

    monkeypatch.setattr(vics, "_COLUMN_RUN", 7)  # several runs, uniform and not
    by_column: list[int] = []

    def counted(*args: Any) -> Any:
        batch = media_batch(*args)
        by_column.append(batch is not None)
        return batch

    monkeypatch.setattr(vics, "media_batch", counted)
    media = [_media(i) for i in range(30)] + [_media(30, **odd)] + [
        _media(i, **odd) for i in range(31, 40)]
    path = tmp_path / "v.json"
    path.write_text('{"value": [{"CaseID": 1, "Media": [\n' + ",\n".join(
        json.dumps(m) for m in media) + "\n]}]}\n", encoding="utf-8")
    fast = staged_rows(list(vics.batches(str(path), ParseOptions())))
    assert fast == staged_rows(list(batched(vics.parse(str(path), ParseOptions()))))
    assert fast[2] + len(fast[1]) == 40
    assert by_column[:4] == [True] * 4  # the uniform runs were checked by column


def _every_entry(store_dir: Path) -> list[tuple[Any, ...]]:
    con = connect(str(store_dir / "banks.sqlite"))
    try:
        return con.execute(
            "SELECT b.name, e.entry_id, e.algorithm, e.hash, e.quality, e.category,"
            " e.vic_category, e.caid_category, e.series, e.known_good, e.retracted, e.line,"
            " i.version FROM entries e JOIN banks b ON b.id = e.bank_id"
            " JOIN imports i ON i.id = e.import_id ORDER BY 1, 3, 4"
        ).fetchall()
    finally:
        con.close()


def _vics(tmp_path: Path, media: list[dict[str, Any]]) -> str:
    import json

    path = tmp_path / "v.json"
    path.write_text('{"value": [{"CaseID": 1, "Media": [\n' + ",\n".join(
        json.dumps(m) for m in media) + "\n]}]}\n", encoding="utf-8")
    return str(path)


def _lists(tmp_path: Path) -> dict[str, tuple[str, ImportOptions]]:
    quoted = tmp_path / "quoted.csv"  # labels with quotes, a blank line
    rows = "".join(f"m{i},{MD5[i]},{SHA1[i]},\"it's \"\"{i % 3}\"\"\",{'a' if i % 2 else 'b'}\n"
                   for i in range(40))
    quoted.write_text("id,md5,sha1,category,series\n" + rows + f"\nx,{MD5[41]},{SHA1[41]},c,s\n",
                      encoding="utf-8")
    nul = tmp_path / "nul.csv"  # a label SQL text cannot carry
    nul.write_text("id,md5,sha1,category\n" + f"x,{MD5[41]},{SHA1[41]},nul\0here\n",
                   encoding="utf-8")
    plain_md5 = tmp_path / "plain.txt"
    plain_md5.write_text("".join(h + "\n" for h in MD5[:60]), encoding="utf-8")
    bad = csv_list(tmp_path, "bad.csv", PLAIN[:10] + [("m10", 10, "cat")])
    Path(bad).write_text(Path(bad).read_text() + "m11,zz,zz,cat\n", encoding="utf-8")
    return {
        "csv": (csv_list(tmp_path, "a.csv", PLAIN), ImportOptions(bank="b", version="1")),
        "quoted": (str(quoted), ImportOptions(bank="b", version="1")),
        "nul": (str(nul), ImportOptions(bank="b")),
        "hashlist": (str(plain_md5), ImportOptions(bank="b", format="hashlist",
                                                   category="cam", known_good=True)),
        "vics": (_vics(tmp_path, [_media(i) for i in range(30)]), ImportOptions(bank="b")),
        "rejected": (bad, ImportOptions(bank="b")),
        "skipped": (bad, ImportOptions(bank="b", skip_invalid=True)),
        "repeat": (csv_list(tmp_path, "r.csv", REPEAT_SAME), ImportOptions(bank="b")),
        "unreadable": (str(tmp_path / "missing.csv"), ImportOptions(bank="b", format="csv")),
    }


@pytest.mark.parametrize("kind", ["csv", "quoted", "nul", "hashlist", "vics", "rejected", "skipped",
                                  "repeat", "unreadable"])
def test_a_first_import_without_staging_equals_the_staged_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A large first import goes into `entries` without staging (import_direct) and gives the
    staged path's entries, report and lookups; a list only the staged checks can judge
    (a repeat, a rejected record) or hold in SQL text (NUL) is staged after all, and a
    missing file is refused alike."""
    path, options = _lists(tmp_path)[kind]
    staged_calls: list[str] = []
    real_stage = bank_import.stage_file

    def staging(*args: Any) -> Any:
        staged_calls.append(args[1])
        return real_stage(*args)

    import index.banks

    monkeypatch.setattr(index.banks, "stage_file", staging)
    out = {}
    for tag, bulk, least in (("staged", 10**9, 10**9), ("direct", 1, 1)):
        monkeypatch.setattr(bank_import, "BULK_ROWS", bulk)
        monkeypatch.setattr(bank_import, "DIRECT_BYTES", least)
        staged_calls.clear()
        with BankStore(tmp_path / tag) as store:
            try:
                result = store.import_file(path, options)
            except ImportRejectedError as e:
                result = e.result
            except FileNotFoundError:
                result = None
            hits = [sorted((e.bank, e.entry_id) for e in store.open_matcher().lookup_digest(
                "md5", MD5[n])) for n in (3, 10, 41, 59)]
            con = store.con
            assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert con.execute("PRAGMA foreign_key_check").fetchall() == []
            assert [n for n, _, _ in entry_indexes(con)] == ["entries_key", "entries_by_id"]
            imports = con.execute("SELECT format, added, rejected FROM imports").fetchall()
        out[tag] = (outcome(result) if result else None, hits, imports,
                    _every_entry(tmp_path / tag), bool(staged_calls))
    fallback = kind in ("nul", "rejected", "repeat")
    assert out["staged"][:4] == out["direct"][:4]
    assert out["direct"][4] == fallback
    if kind == "unreadable":
        assert out["direct"][0][0] == "rejected" and not out["direct"][3]
    elif not fallback:
        assert out["staged"][4] and out["direct"][3]  # staged before, now imported directly


def _bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every import counts as large against the store (rebuilds its indexes)."""
    monkeypatch.setattr(bank_import, "BULK_ROWS", 1)
    monkeypatch.setattr(bank_import, "DIRECT_BYTES", 1)


def _at_key_build(con: sqlite3.Connection, action: Any) -> None:
    """Run `action` when `con` is about to build the entries' key (mid-import, uncommitted)."""
    con.set_trace_callback(
        lambda sql: sql.startswith("CREATE UNIQUE INDEX entries_key") and action())


def test_a_bulk_import_alone_with_the_store_skips_the_wal_and_leaves_it_in_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bulk(monkeypatch)
    path = csv_list(tmp_path, "l.csv", [(f"m{i}", i, "cam") for i in range(300)])
    seen: list[tuple[bool, bool]] = []
    with BankStore(tmp_path / "s") as store:
        db = store.db_path
        _at_key_build(store.con, lambda: seen.append(
            (os.path.exists(db + "-journal"), os.path.exists(db + "-wal"))))
        assert store.import_file(path, ImportOptions(bank="b")).added == 600
        assert store.con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert store.con.execute("PRAGMA busy_timeout").fetchone() == (600_000,)
    assert seen == [(True, False)]  # a rollback journal, no WAL, while it ran
    assert not os.path.exists(db + "-journal")
    assert len(entries(tmp_path / "s")) == 600


def test_a_bulk_import_keeps_the_wal_while_another_connection_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A running service or scan holds the store open: the import stays under WAL and their
    reads are answered, from the last commit, while it runs."""
    _bulk(monkeypatch)
    path = csv_list(tmp_path, "l.csv", [(f"m{i}", i, "cam") for i in range(300)])
    with BankStore(tmp_path / "s") as store:
        store.import_file(csv_list(tmp_path, "old.csv", [("o", 399, "cam")]),
                          ImportOptions(bank="old"))
        reader = connect(store.db_path)
        reader.execute("PRAGMA busy_timeout=200")  # a wait would be a failure, not a hang
        db = store.db_path
        reads: list[tuple[bool, int]] = []
        _at_key_build(store.con, lambda: reads.append((
            os.path.exists(db + "-journal"),
            reader.execute("SELECT COUNT(*) FROM entries").fetchone()[0])))
        assert store.import_file(path, ImportOptions(bank="b")).added == 600
        assert reads == [(False, 2)]
        assert reader.execute("SELECT COUNT(*) FROM entries").fetchone() == (602,)
        reader.close()


def test_a_connection_opened_during_a_bulk_import_reads_and_follows_the_store_back_to_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bulk(monkeypatch)
    path = csv_list(tmp_path, "l.csv", [(f"m{i}", i, "cam") for i in range(300)])
    opened: list[tuple[sqlite3.Connection, str, int]] = []

    def open_one() -> None:
        con = connect(db)  # cannot switch the store to WAL now: must not fail
        con.execute("PRAGMA busy_timeout=200")
        opened.append((con, con.execute("PRAGMA journal_mode").fetchone()[0],
                       con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]))

    with BankStore(tmp_path / "s") as store:
        db = store.db_path
        _at_key_build(store.con, open_one)
        assert store.import_file(path, ImportOptions(bank="b")).added == 600
    ((con, mode, during),) = opened
    assert (mode, during) == ("delete", 0)  # the import's rows not committed yet
    assert con.execute("SELECT COUNT(*) FROM entries").fetchone() == (600,)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    con.close()


def test_a_store_left_under_a_rollback_journal_is_switched_back_by_the_next_open(
    tmp_path: Path,
) -> None:
    """As when a reader held on past the import's return to WAL (`rollback_journal` warns)."""
    BankStore(tmp_path / "s").close()
    db = str(tmp_path / "s" / "banks.sqlite")
    con = sqlite3.connect(db, isolation_level=None)
    assert con.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
    con.close()
    with BankStore(tmp_path / "s") as store:
        assert store.con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
