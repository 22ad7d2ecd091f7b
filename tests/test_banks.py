"""The bank store: all-or-nothing imports, idempotence, round trips, retraction, enable/disable,
stale and corrupt index detection, crash safety under SIGKILL, private permissions."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashing import codec
from index.bank_types import ImportRejectedError
from index.banks import BankStore, ImportOptions, default_store_dir
from index.categories import is_code

MD5 = [hashlib.md5(bytes([i])).hexdigest() for i in range(50)]
SHA1 = [hashlib.sha1(bytes([i])).hexdigest() for i in range(50)]
PDQ = [hashlib.sha256(bytes([i])).hexdigest() for i in range(50)]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path) -> BankStore:
    s = BankStore(tmp_path / "store")
    yield s
    s.close()


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def csv_list(n: int = 5, bad_line: int | None = None) -> str:
    rows = ["id,md5,pdq,quality,category,series"]
    for i in range(n):
        rows.append(f"m{i},{MD5[i]},{PDQ[i]},{50 + i},cat{i % 2},s{i}")
    if bad_line is not None:
        rows.insert(bad_line - 1, "bad,nothex,,,,")
    return "\n".join(rows) + "\n"


def counts(store: BankStore) -> tuple[int, int, int]:
    return tuple(
        store.con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
        for t in ("banks", "entries", "imports")
    )  # type: ignore[return-value]


def test_all_or_nothing_writes_nothing_and_reports_every_bad_line(
    store: BankStore, tmp_path: Path
) -> None:
    text = csv_list(5, bad_line=3) + "x9,ab,,,,\n"
    path = write(tmp_path, "l.csv", text)
    report = tmp_path / "report.json"
    with pytest.raises(ImportRejectedError) as e:
        store.import_file(path, ImportOptions(bank="b1"), str(report))
    assert counts(store) == (0, 0, 0)
    doc = json.loads(report.read_text())
    assert doc["status"] == "rejected"
    assert [(r["line"], r["reason"]) for r in doc["rejected"]] == [
        (3, "md5: not hexadecimal"),
        (8, "md5: expected 32 hex digits, got 2"),
    ]
    assert e.value.result.report_path == str(report)
    assert not list((Path(store.dir) / "index").iterdir())


def test_skip_invalid_imports_the_valid_records(store: BankStore, tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", csv_list(5, bad_line=3))
    result = store.import_file(path, ImportOptions(bank="b1", skip_invalid=True))
    assert (result.status, result.added, len(result.rejected)) == ("imported", 10, 1)
    doc = json.loads(Path(result.report_path).read_text())  # type: ignore[arg-type]
    assert doc["rejected"] == [{"line": 3, "item": None, "reason": "md5: not hexadecimal"}]
    assert Path(result.report_path).parent == Path(store.dir) / "reports"  # type: ignore[arg-type]
    m = store.open_matcher()
    assert [e.entry_id for e in m.lookup_digest("md5", MD5[4].upper())] == ["m4"]


def test_reimport_is_idempotent(store: BankStore, tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", csv_list(5))
    first = store.import_file(path, ImportOptions(bank="b1", version="1"))
    sums = store.open_matcher().index_checksums()
    again = store.import_file(path, ImportOptions(bank="b1", version="1"))
    assert (first.added, again.added, again.unchanged, again.updated) == (10, 0, 10, 0)
    assert counts(store) == (1, 10, 2)
    assert store.open_matcher().index_checksums() == sums


def test_new_version_updates_labels_in_place(store: BankStore, tmp_path: Path) -> None:
    store.import_file(write(tmp_path, "a.csv", csv_list(3)), ImportOptions(bank="b1", version="1"))
    text = csv_list(3).replace("cat0", "relabelled")
    result = store.import_file(
        write(tmp_path, "b.csv", text), ImportOptions(bank="b1", version="2")
    )
    assert (result.added, result.updated, result.unchanged) == (0, 4, 2)
    (entry,) = store.open_matcher().lookup_digest("md5", MD5[0])
    assert entry.category == "relabelled"
    assert store.list_banks()[0].version == "2"


def test_duplicates_in_one_file(store: BankStore, tmp_path: Path) -> None:
    same = f"id,md5\na,{MD5[0]}\na,{MD5[0]}\n"
    result = store.import_file(write(tmp_path, "a.csv", same), ImportOptions(bank="b1"))
    assert (result.added, result.duplicates) == (1, 1)
    conflicting = f"id,md5,category\na,{MD5[1]},x\nb,{MD5[1]},x\nc,{MD5[2]},x\nc,{MD5[3]},x\n"
    with pytest.raises(ImportRejectedError) as e:
        store.import_file(write(tmp_path, "b.csv", conflicting), ImportOptions(bank="b1"))
    assert [(r.line, r.reason) for r in e.value.result.rejected] == [
        (3, "duplicate md5 hash with different data than line 2"),
        (5, "duplicate id 'c' with different data than line 4"),
    ]
    assert counts(store) == (1, 1, 1)


def test_format_errors_and_bad_names_write_nothing(store: BankStore, tmp_path: Path) -> None:
    with pytest.raises(ImportRejectedError, match="give --algo"):
        store.import_file(write(tmp_path, "h.txt", PDQ[0] + "\n"), ImportOptions(bank="b1"))
    with pytest.raises(ImportRejectedError, match="invalid JSON"):
        store.import_file(write(tmp_path, "v.json", '{"value": [{'), ImportOptions(bank="b1"))
    from index.errors import BankError

    with pytest.raises(BankError, match="bank name"):
        store.import_file(write(tmp_path, "h2.txt", MD5[0]), ImportOptions(bank="../x"))
    assert counts(store) == (0, 0, 0)


def test_unreadable_tail_rejects_even_with_skip_invalid(store: BankStore, tmp_path: Path) -> None:
    text = '{"value": [\n{"MD5": "' + MD5[0] + '"},\n{"MD5": "zz"},\n{"MD5": '
    with pytest.raises(ImportRejectedError) as e:
        store.import_file(
            write(tmp_path, "v.json", text), ImportOptions(bank="b1", skip_invalid=True)
        )
    result = e.value.result
    assert [(r.line, r.item, r.reason) for r in result.rejected] == [(3, 2, "md5: not hexadecimal")]
    assert result.error is not None and result.error.startswith("line 4: invalid JSON")
    assert counts(store) == (0, 0, 0)


def entries_of(store: BankStore, bank: str) -> set[tuple]:
    return set(
        store.con.execute(
            "SELECT entry_id, algorithm, hash, quality, category, vic_category, caid_category,"
            " series FROM entries e JOIN banks b ON b.id = e.bank_id WHERE b.name = ?"
            " AND retracted = 0",
            (bank,),
        ).fetchall()
    )


@pytest.mark.parametrize("fmt", ["csv", "pdq", "vics"])
def test_export_import_round_trip(store: BankStore, tmp_path: Path, fmt: str) -> None:
    media = [
        {
            "MediaID": i,
            "Category": i % 6,
            "MD5": MD5[i].upper(),
            "SHA1": SHA1[i].upper(),
            "Series": f"s{i}" if i % 2 else None,
            "AlternativeHashes": [{"HashName": "PDQ", "HashValue": PDQ[i], "Quality": 40 + i}],
        }
        for i in range(8)
    ]
    src = write(tmp_path, "v.json", json.dumps({"value": media}))
    store.import_file(src, ImportOptions(bank="orig", format="vics"))
    out = tmp_path / f"export.{fmt}"
    with open(out, "w", encoding="utf-8", newline="") as f:
        n = store.export("orig", fmt, f)
    assert n == 8
    store.import_file(str(out), ImportOptions(bank="copy", format=fmt))
    original = entries_of(store, "orig")
    if fmt == "pdq":  # hashes and quality only
        assert {(e[2], e[3]) for e in entries_of(store, "copy")} == {
            (e[2], e[3]) for e in original if e[1] == "pdq"
        }
    else:
        assert entries_of(store, "copy") == original


def test_retract_not_matched_but_kept_in_history(store: BankStore, tmp_path: Path) -> None:
    store.import_file(write(tmp_path, "l.csv", csv_list(3)), ImportOptions(bank="b1"))
    result = store.retract("b1", [MD5[0].upper(), PDQ[1], "f" * 32], reason="wrong list")
    assert (result.retracted, result.not_found) == (2, ("f" * 32,))
    m = store.open_matcher()
    assert m.lookup_digest("md5", MD5[0]) == []
    index, rows = m.perceptual("pdq")
    assert index.ntotal == 2
    assert PDQ[1] not in {e.hash for r in range(len(rows)) for e in rows[r]}
    history = {h["hash"]: h for h in store.history("b1")}
    assert history[MD5[0]]["retracted"] == 1 and history[MD5[0]]["retract_reason"] == "wrong list"
    again = store.import_file(write(tmp_path, "l.csv", csv_list(3)), ImportOptions(bank="b1"))
    assert again.added == 0
    assert store.open_matcher().lookup_digest("md5", MD5[0]) == []  # retraction is sticky
    assert store.show("b1").info.retracted == 2


def test_enable_disable(store: BankStore, tmp_path: Path) -> None:
    store.import_file(write(tmp_path, "l.csv", csv_list(3)), ImportOptions(bank="b1"))
    assert not store.set_enabled("b1", False).enabled
    m = store.open_matcher()
    assert m.lookup_digest("md5", MD5[0]) == [] and m.perceptual("pdq")[0].ntotal == 0
    assert m.bank_versions() == {} and m.index_checksums() == {}
    store.set_enabled("b1", True)
    m = store.open_matcher()
    assert len(m.lookup_digest("md5", MD5[0])) == 1 and m.perceptual("pdq")[0].ntotal == 3


def test_same_hash_in_two_banks_is_one_row_with_two_entries(
    store: BankStore, tmp_path: Path
) -> None:
    store.import_file(write(tmp_path, "a.csv", csv_list(3)), ImportOptions(bank="a", version="7"))
    store.import_file(
        write(tmp_path, "p.txt", f"{PDQ[1]},99\n{PDQ[9]},80\n"),
        ImportOptions(bank="b", known_good=True),
    )
    m = store.open_matcher()
    index, rows = m.perceptual("pdq")
    assert index.ntotal == 4 and len(rows) == 4
    query = np.frombuffer(bytes.fromhex(PDQ[1]), dtype=np.uint8).copy()
    query[0] ^= 0b111  # 3 bits away
    lims, dist, ids = index.range_search(query[None, :], 31)
    assert list(dist) == [3]
    entries = rows[int(ids[0])]
    assert [(e.bank, e.known_good, e.quality) for e in entries] == [
        ("a", False, 51),
        ("b", True, 99),
    ]
    assert m.bank_versions() == {"a": "7", "b": None}


def test_digest_lookup_is_exact_and_a_snapshot(store: BankStore, tmp_path: Path) -> None:
    store.import_file(write(tmp_path, "a.txt", MD5[0] + "\n"), ImportOptions(bank="a"))
    m = store.open_matcher()
    assert m.lookup_digest("md5", MD5[0][:16] + "0" * 16) == []  # same first 8 bytes
    assert m.lookup_digest("sha1", SHA1[0]) == []
    store.import_file(write(tmp_path, "b.txt", MD5[1] + "\n"), ImportOptions(bank="b"))
    assert m.lookup_digest("md5", MD5[1]) == []
    assert [e.bank for e in store.open_matcher().lookup_digest("md5", MD5[1])] == ["b"]
    store.set_enabled("a", False)
    assert m.lookup_digest("md5", MD5[0]) == []  # disabled since open: dropped


def test_stale_index_is_detected_and_rebuilt(
    store: BankStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.import_file(write(tmp_path, "l.csv", csv_list(3)), ImportOptions(bank="b1"))
    # what a crash between the import's commit and its index rebuild leaves behind
    store.con.execute(
        "INSERT INTO entries (bank_id, entry_id, algorithm, hash, known_good, import_id, line)"
        " VALUES (1, 'late', 'pdq', ?, 0, 1, 99)",
        (PDQ[20],),
    )
    store.con.execute("UPDATE generations SET generation = generation + 1 WHERE algorithm='pdq'")
    with caplog.at_level(logging.WARNING, logger="index.bank_index"):
        m = store.open_matcher()
    assert "stale" in caplog.text and "rebuilding" in caplog.text
    assert m.perceptual("pdq")[0].ntotal == 4
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="index.bank_index"):
        store.open_matcher()
    assert caplog.text == ""


def test_corrupt_index_is_detected_by_checksum_and_rebuilt(
    store: BankStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.import_file(write(tmp_path, "l.csv", csv_list(5)), ImportOptions(bank="b1"))
    good = store.open_matcher().index_checksums()["pdq"]
    path = Path(store.dir) / "index" / "pdq.faissbin"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="index.bank_index"):
        m = store.open_matcher()
    assert "corrupt" in caplog.text
    assert m.index_checksums()["pdq"] == good
    path.unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="index.bank_index"):
        assert store.open_matcher().perceptual("pdq")[0].ntotal == 5
    assert "corrupt" in caplog.text


def _pairs(store: BankStore) -> list[list[int]]:
    blobs = store.con.execute(
        "SELECT pairs FROM index_maps WHERE algorithm = 'pdq' ORDER BY part").fetchall()
    return np.frombuffer(b"".join(b for (b,) in blobs), "<i8").reshape(-1, 2).tolist()


def _set_map(store: BankStore, blobs: list[bytes]) -> None:
    store.con.execute("DELETE FROM index_maps WHERE algorithm = 'pdq'")
    for part, blob in enumerate(blobs):
        store.con.execute("INSERT INTO index_maps VALUES ('pdq', ?, ?)", (part, blob))


def _blob(pairs: list[list[int]]) -> bytes:
    return np.array(pairs, dtype="<i8").tobytes()


# each tampered row map (from the good one, 4 rows, 5 entries: the same PDQ in two banks)
# and the reason it is refused for
_TAMPERED: dict[str, tuple[object, str]] = {
    "a pair short": (lambda p: [_blob(p[:-1])], "fewer than the recorded"),
    "a pair more": (lambda p: [_blob(p + [[3, p[-1][1]]])], "more than the recorded"),
    "half a pair": (lambda p: [_blob(p)[:-8]], "not whole pairs"),
    "rows out of order": (lambda p: [_blob([p[1], p[0], *p[2:]])], "in row order"),
    "a row skipped": (lambda p: [_blob([[r + (r > 1), e] for r, e in p])], "in row order"),
    "a row before 0": (lambda p: [_blob([[r - 1, e] for r, e in p])], "in row order"),
    "no map": (lambda p: [], "no row map: built by an earlier version"),
}


@pytest.mark.parametrize("damage", sorted(_TAMPERED))
def test_a_damaged_row_map_is_detected_and_rebuilt(
    store: BankStore, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """The row map (index row -> entries, int64 blobs) is checked on every load like the
    codes: wrong sizes, order or coverage get the index rebuilt, never a wrong entry."""
    store.import_file(write(tmp_path, "l.csv", csv_list(4)), ImportOptions(bank="a"))
    store.import_file(write(tmp_path, "b.txt", f"{PDQ[2]},70\n"), ImportOptions(bank="b"))
    store.open_matcher().close()
    good = _pairs(store)
    assert len(good) == 5 and {r for r, _ in good} == {0, 1, 2, 3}
    tamper, reason = _TAMPERED[damage]
    _set_map(store, tamper(good))  # type: ignore[operator]
    with caplog.at_level(logging.INFO, logger="index.bank_index"):
        m = store.open_matcher()
    assert reason in caplog.text and "rebuilding" in caplog.text
    assert _pairs(store) == good
    index, rows = m.perceptual("pdq")
    lims, _, ids = index.range_search(codec.pack("pdq", [PDQ[2]]), 0)
    assert sorted(e.bank for e in rows[int(ids[lims[0]])]) == ["a", "b"]
    m.close()


def test_an_index_from_before_index_maps_is_rebuilt_and_the_old_table_dropped(
    store: BankStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store whose row maps were one table row per entry (`index_rows`): its indexes are
    rebuilt on load and the old table goes."""
    store.import_file(write(tmp_path, "l.csv", csv_list(3)), ImportOptions(bank="a"))
    store.open_matcher().close()
    good = _pairs(store)
    store.con.execute("CREATE TABLE index_rows (algorithm TEXT NOT NULL, row INTEGER NOT NULL,"
                      " entry INTEGER NOT NULL REFERENCES entries(id))")
    store.con.executemany("INSERT INTO index_rows VALUES ('pdq', ?, ?)", good)
    store.con.execute("DROP TABLE index_maps")
    store.close()
    again = BankStore(store.dir)  # opening adds the missing table
    with caplog.at_level(logging.INFO, logger="index.bank_index"):
        assert again.open_matcher().perceptual("pdq")[0].ntotal == 3
    assert "built by an earlier version" in caplog.text
    assert _pairs(again) == good
    assert again.con.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'index_rows'").fetchone() is None
    again.close()


def test_build_skips_an_invalid_stored_hash(
    store: BankStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.import_file(write(tmp_path, "l.csv", csv_list(2)), ImportOptions(bank="b1"))
    store.con.execute(
        "INSERT INTO entries (bank_id, entry_id, algorithm, hash, known_good, import_id, line)"
        " VALUES (1, 'bad', 'pdq', 'abcd', 0, 1, 9)"
    )
    with caplog.at_level(logging.WARNING, logger="index.bank_index"):
        info = {i.algorithm: i for i in store.rebuild()}
    assert info["pdq"].rows == 2
    assert "skipping stored pdq entry" in caplog.text and "expected 64 hex digits" in caplog.text


def test_chunked_index_build_equals_the_one_shot_build(
    store: BankStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`build` streams entries in chunks; any chunk size gives the one-shot build's file, row
    mapping and record: hashes shared by banks and repeated across a chunk boundary, a
    retracted entry, a disabled bank and an invalid stored hash included."""
    from index.bank_index import build, index_path

    store.import_file(write(tmp_path, "a.csv", csv_list(8)), ImportOptions(bank="a", version="1"))
    shared = "".join(f"{PDQ[i]},{60 + i}\n" for i in (2, 3, 4, 12, 13))
    store.import_file(write(tmp_path, "b.txt", shared), ImportOptions(bank="b", version="2"))
    store.import_file(write(tmp_path, "c.txt", f"{PDQ[20]},70\n"), ImportOptions(bank="c"))
    store.retract("a", [PDQ[5]])
    store.set_enabled("c", False)
    store.con.execute(
        "INSERT INTO entries (bank_id, entry_id, algorithm, hash, known_good, import_id, line)"
        " VALUES (1, 'bad', 'pdq', ?, 0, 1, 9)", (PDQ[3][:-1] + "g",)
    )
    path = Path(index_path(store.dir, "pdq"))

    def built(chunk: int) -> tuple[object, ...]:
        info = build(store.con, store.dir, "pdq", chunk=chunk)
        blobs = store.con.execute(
            "SELECT pairs FROM index_maps WHERE algorithm = 'pdq' ORDER BY part").fetchall()
        rows = [tuple(p) for p in np.frombuffer(b"".join(b for (b,) in blobs), "<i8")
                .reshape(-1, 2).tolist()]
        record = store.con.execute(
            "SELECT algorithm, file, sha256, rows, entries, generation, bank_versions"
            " FROM index_files WHERE algorithm = 'pdq'"
        ).fetchone()
        return info, path.read_bytes(), rows, record

    with caplog.at_level(logging.WARNING, logger="index.bank_index"):
        one_shot = built(10**6)
        assert "skipping stored pdq entry" in caplog.text
        for chunk in (1, 2, 3, 5):
            assert built(chunk) == one_shot, chunk
    info, _, rows, _ = one_shot
    assert info.rows == 9 and info.entries == 12  # 7 of a's 8 + b's 5 (3 shared); c disabled
    assert len({r for r, _ in rows}) == 9 and len(rows) == 12
    assert sorted(p.name for p in path.parent.iterdir()) == ["pdq.faissbin"]  # no spill left
    assert store.con.execute("PRAGMA foreign_keys").fetchone() == (1,)  # enforced again


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = BankStore(tmp_path / "s")
        path = store.import_file(
            write(tmp_path, "l.csv", csv_list(2)), ImportOptions(bank="b1")
        ).report_path
        root = tmp_path / "s"
        assert mode(root) == mode(root / "index") == mode(root / "reports") == 0o700
        files = [root / "banks.sqlite", root / "index" / "pdq.faissbin", Path(path)]  # type: ignore[arg-type]
        files += [p for p in root.glob("banks.sqlite-*")]
        assert len(files) >= 4
        assert {str(f): mode(f) for f in files} == {str(f): 0o600 for f in files}
        store.close()
    finally:
        os.umask(old)


def test_default_store_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRIAGE_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_dir() == str(tmp_path / "xdg" / "osec-triage")
    monkeypatch.setenv("TRIAGE_STORE", str(tmp_path / "env"))
    assert default_store_dir() == str(tmp_path / "env")


VALID_CSV = csv_list(4)


@st.composite
def mutated_csv(draw: st.DrawFn) -> str:
    lines = VALID_CSV.splitlines()
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(0, max(0, len(lines[i]) - 1)))
        ch = draw(st.sampled_from(list(',gG0a"#')))
        lines[i] = lines[i][:j] + ch + lines[i][j + 1 :]
    return "\n".join(lines) + "\n"


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_csv())
def test_mutated_lists_import_whole_or_not_at_all(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    tmp = tmp_path_factory.mktemp("m")
    with BankStore(tmp / "s") as store:
        path = write(tmp, "l.csv", text)
        try:
            result = store.import_file(path, ImportOptions(bank="b"))
        except ImportRejectedError as e:
            assert e.result.rejected or e.result.error
            assert counts(store) == (0, 0, 0)
            return
        assert not result.rejected
        assert counts(store)[1] == result.added


def writer_active(db: Path) -> bool:
    """True while another process holds the store's write transaction (an import under way)."""
    con = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        con.close()


def test_sigkill_during_import_leaves_a_consistent_store(tmp_path: Path) -> None:
    n = 400_000  # imports run at ~150k rows/s: enough rows that 0.2 s is mid-transaction
    rng = random.Random(5)
    lines = [f"{rng.getrandbits(128):032x}" for _ in range(n)]
    path = write(tmp_path, "big.txt", "\n".join(lines) + "\n")
    root = tmp_path / "s"
    with BankStore(root) as store:
        store.import_file(write(tmp_path, "small.txt", MD5[0] + "\n"), ImportOptions(bank="old"))
    code = (
        "import sys; from index.banks import BankStore, ImportOptions\n"
        "BankStore(sys.argv[1]).import_file(sys.argv[2], ImportOptions(bank='big'))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(root), path], cwd=ROOT)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not writer_active(root / "banks.sqlite"):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(0.2)  # into the transaction: tens of thousands of rows written, none committed
    assert proc.poll() is None, "import finished before it could be killed; raise n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with BankStore(root) as store:
        assert store.con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert [b.name for b in store.list_banks()] == ["old"]
        assert counts(store) == (1, 1, 1)
        assert len(store.open_matcher().lookup_digest("md5", MD5[0])) == 1
        again = write(tmp_path, "again.txt", "\n".join(lines[:100]) + "\n")
        assert store.import_file(again, ImportOptions(bank="big")).added == 100


def test_sqlite_file_is_a_plain_sqlite_database(store: BankStore) -> None:
    con = sqlite3.connect(os.path.join(store.dir, "banks.sqlite"))
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    con.close()


def test_matcher_pickles_by_reopening_the_store(store: BankStore, tmp_path: Path) -> None:
    import pickle

    store.import_file(write(tmp_path, "l.csv", csv_list(3)), ImportOptions(bank="b1"))
    m = pickle.loads(pickle.dumps(store.open_matcher()))
    assert [e.entry_id for e in m.lookup_digest("md5", MD5[2])] == ["m2"]
    assert m.perceptual("pdq")[0].ntotal == 3


label_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n\x85\u2028\u2029"),
    max_size=12,
# a number is a category code, not label text: without --scheme it is mapped or refused
).filter(lambda s: s.strip() == s and not s.startswith("#") and not is_code(s))


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.tuples(st.integers(0, 49), label_text, label_text, st.none() | st.integers(0, 100)),
        min_size=1,
        max_size=8,
        unique_by=lambda t: t[0],
    )
)
def test_csv_export_round_trips_any_label_text(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[int, str, str, int | None]]
) -> None:
    tmp = tmp_path_factory.mktemp("rt")
    lines = ["id,md5,pdq,quality,category,series"]
    for i, category, series, quality in rows:
        q = "" if quality is None else str(quality)
        cells = [f"id{i}", MD5[i], PDQ[i], q, category, series]
        lines.append(",".join('"' + c.replace('"', '""') + '"' for c in cells))
    with BankStore(tmp / "s") as store:
        store.import_file(write(tmp, "a.csv", "\n".join(lines) + "\n"), ImportOptions(bank="a"))
        out = tmp / "out.csv"
        with open(out, "w", encoding="utf-8", newline="") as f:
            store.export("a", "csv", f)
        store.import_file(str(out), ImportOptions(bank="b"))
        assert entries_of(store, "b") == entries_of(store, "a")
        assert len(entries_of(store, "a")) == 2 * len(rows)
