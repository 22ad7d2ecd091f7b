"""NSRL RDSv3 attached in place as a known-good bank: exact lookups through the publication's
own indexes (or a sidecar when it has none), never written, refused once it changed, and a
scan setting aside what it lists."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from index.banks import BankStore, ImportOptions
from index.errors import BankError
from synthetic_fixtures.rdsv3 import file_hashes, write_rdsv3
from triage.pipeline import ScanConfig, run_scan


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("indexed", [True, False])
def test_attached_lookups_in_place(tmp_path: Path, indexed: bool) -> None:
    db = tmp_path / "RDS_synthetic.db"
    write_rdsv3(db, 3_000, indexed=indexed)
    before = _digest(db)
    with BankStore(tmp_path / "store") as store:
        info = store.attach(str(db), "nsrl", source="NIST", version="2026.03.1")
        assert info.known_good and info.enabled and info.entries == 3 * 3_300
        assert info.algorithms == ("md5", "sha1", "sha256")
        (row,) = store.con.execute("SELECT columns FROM attachments").fetchall()
        how = json.loads(row[0])
        assert set(how.values()) == ({"in place: upper"} if indexed else {"sidecar"})
        assert os.path.exists(tmp_path / "store" / "attached" / "nsrl.sqlite") is not indexed
        # nothing copied into the store's entries
        assert store.con.execute("SELECT COUNT(*) FROM entries").fetchone() == (0,)
        matcher = store.open_matcher()
        for i in (0, 1234, 2_999):
            sha256, sha1, md5 = file_hashes(i)
            for algo, value in (("sha256", sha256), ("sha1", sha1), ("md5", md5)):
                (entry,) = matcher.lookup_digest(algo, value.lower())
                assert (entry.bank, entry.algorithm, entry.hash) == ("nsrl", algo, value.lower())
                assert entry.known_good and entry.entry_id == value.lower()
        absent = file_hashes(3_000)
        assert matcher.lookup_digest("md5", absent[2]) == []
        assert matcher.lookup_digest("sha256", absent[0]) == []
        matcher.close()
        store.set_enabled("nsrl", False)
        matcher = store.open_matcher()
        assert matcher.lookup_digest("md5", file_hashes(5)[2]) == []
        matcher.close()
    assert _digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [db.name, "store"]


def test_changed_publication_refused_until_attached_again(tmp_path: Path) -> None:
    db = tmp_path / "rds.db"
    write_rdsv3(db, 100, indexed=True)
    with BankStore(tmp_path / "store") as store:
        store.attach(str(db), "nsrl", version="1")
        write_rdsv3(db, 200, indexed=True)  # a new publication in the same place
        os.utime(db, ns=(1, 1))
        with pytest.raises(BankError, match="changed since it was attached"):
            store.open_matcher()
        info = store.attach(str(db), "nsrl", version="2")
        assert (info.version, info.entries) == ("2", 3 * 220)
        matcher = store.open_matcher()
        assert matcher.lookup_digest("md5", file_hashes(150)[2])
        matcher.close()
        db.unlink()
        with pytest.raises(BankError, match="attach it again or disable"):
            store.open_matcher()


def test_attach_refusals(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    listed = tmp_path / "list.txt"
    listed.write_text("d41d8cd98f00b204e9800998ecf8427e\n")
    db = tmp_path / "rds.db"
    write_rdsv3(db, 10)
    with BankStore(tmp_path / "store") as store:
        with pytest.raises(BankError, match="not an RDSv3 database"):
            store.attach(str(other), "nsrl")
        store.import_file(str(listed), ImportOptions(bank="bad", format="hashlist"))
        with pytest.raises(BankError, match="holds imported entries"):
            store.attach(str(db), "bad")
        with pytest.raises(BankError, match="bank name"):
            store.attach(str(db), "../x")
        assert [b.name for b in store.list_banks()] == ["bad"]


def test_scan_sets_aside_what_an_attached_rds_lists(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "system.dll").write_bytes(b"MZ known software " * 100)
    (evidence / "notes.txt").write_bytes(b"something else entirely")
    data = (evidence / "system.dll").read_bytes()
    db = tmp_path / "rds.db"
    write_rdsv3(db, 50, indexed=True)
    con = sqlite3.connect(db)
    con.execute("INSERT INTO METADATA VALUES (1, 'system.dll', ?, ?, ?, ?, 'ABCD0123')",
                (len(data), hashlib.sha256(data).hexdigest().upper(),
                 hashlib.sha1(data).hexdigest().upper(), hashlib.md5(data).hexdigest().upper()))
    con.commit()
    con.close()
    result = CliRunner().invoke(cli, ["bank", "attach", str(db), "--bank", "nsrl",
                                      "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert "attached in place (read-only)" in result.output
    run_scan(ScanConfig(evidence=(evidence,), case_dir=tmp_path / "case",
                        store_dir=tmp_path / "store", workers=0, argv=("triage", "scan")))
    summary = json.loads((tmp_path / "case" / "summary.json").read_text())
    assert summary["counts"]["known_good"] == 1
    queued = [json.loads(x)["path"] for x in
              (tmp_path / "case" / "queue.jsonl").read_text().splitlines()]
    assert not any(p.endswith("system.dll") for p in queued)
