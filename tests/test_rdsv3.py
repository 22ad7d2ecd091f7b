"""NSRL RDSv3 (SQLite) as a known-good bank: read in place without writing, repeats across
packages counted, every digest matchable, bad rows rejected with their row number."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from index.bank_types import ImportRejectedError
from index.banks import BankStore, ImportOptions
from index.ingest.detect import detect_format
from synthetic_fixtures.rdsv3 import file_hashes, write_rdsv3


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rdsv3_import_in_place_known_good(tmp_path: Path) -> None:
    db = tmp_path / "RDS_synthetic_modern_minimal.db"
    rows = write_rdsv3(db, 2_000, repeat_every=10)
    assert rows == 2_200
    before = digest(db)
    assert detect_format(str(db)) == "rdsv3"
    with BankStore(tmp_path / "store") as store:
        result = store.import_file(str(db), ImportOptions(bank="nsrl", version="synthetic"))
        assert (result.status, result.format, result.records) == ("imported", "rdsv3", 2_200)
        assert (result.added, result.duplicates) == (6_000, 200)
        info = store.list_banks()[0]
        assert info.known_good and info.entries == 6_000
        matcher = store.open_matcher()
        sha256, sha1, md5 = file_hashes(1234)
        for algo, value in (("sha256", sha256), ("sha1", sha1), ("md5", md5.lower())):
            (entry,) = matcher.lookup_digest(algo, value)
            assert entry.known_good and entry.bank == "nsrl" and entry.entry_id == value.lower()
        assert matcher.lookup_digest("md5", "0" * 32) == []
        again = store.import_file(str(db), ImportOptions(bank="nsrl", version="synthetic"))
        assert (again.added, again.unchanged) == (0, 6_000)
    assert digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [db.name, "store"]


def test_rdsv3_bad_rows_and_wrong_databases(tmp_path: Path) -> None:
    db = tmp_path / "rds.db"
    write_rdsv3(db, 50, repeat_every=0)
    con = sqlite3.connect(db)
    con.execute("UPDATE METADATA SET md5 = 'XYZ' WHERE rowid = 7")
    con.commit()
    con.close()
    with BankStore(tmp_path / "store") as store:
        with pytest.raises(ImportRejectedError) as e:
            store.import_file(str(db), ImportOptions(bank="nsrl"))
        assert [(r.line, r.reason) for r in e.value.result.rejected] == [
            (7, "md5: not hexadecimal")]
        other = tmp_path / "other.db"
        sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
        with pytest.raises(ImportRejectedError, match="not an RDSv3 database"):
            store.import_file(str(other), ImportOptions(bank="nsrl2"))
        assert store.list_banks() == []
