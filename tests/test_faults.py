"""Faults with real processes: SIGKILL at chosen points of an index rebuild, of a bank import
and of a scan's output phase; a full disk (RLIMIT_FSIZE in the child) during an import, a scan
and an index write; a damaged index file. Afterwards the store and the case open, hold exactly
what was committed, match correctly, and a rerun finishes with nothing lost or doubled.

Already covered elsewhere and not repeated here: SIGKILL inside an import's write transaction
(test_banks), SIGKILL while a scan is hashing (test_resume), a flipped byte or a missing index
file (test_banks, test_faiss_store).

How the kill points are hit: the child installs a `sys.addaudithook` (or an SQLite trace
callback) that sends itself SIGKILL when the named operation is about to happen, e.g. the
`os.rename` of the index's temporary file over `pdq.faissbin`. The kill is a real SIGKILL (no
cleanup, no `finally`), only its timing is exact instead of a race against a sleeping parent.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hashing import codec
from index.bank_index import bump
from index.banks import BankStore, ImportOptions
from index.store_schema import connect, transaction
from synthetic_fixtures.evidence import make_evidence
from triage.pipeline import ScanConfig, run_scan

REPO = Path(__file__).resolve().parents[1]
N_PDQ = 5_000
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

# KILL = "event|suffix": SIGKILL ourselves when audit event `event` names a path ending in
# `suffix`. KILL = "sql|prefix": when SQLite is about to run a statement starting with `prefix`.
KILLER = """
import os, signal, sys
event, _, needle = os.environ["KILL"].partition("|")
def _die():
    os.kill(os.getpid(), signal.SIGKILL)
if event == "sql":
    import index.store_schema as schema
    _connect = schema.connect
    def connect(path):
        con = _connect(path)
        con.set_trace_callback(lambda sql: sql.lstrip().startswith(needle) and _die())
        return con
    schema.connect = connect
    import index.banks, index.bank_index
    index.banks.connect = index.bank_index.connect = connect
else:
    def hook(name, args):
        if name == event and any(isinstance(a, (str, bytes, os.PathLike))
                                 and os.fsdecode(a).endswith(needle) for a in args):
            _die()
    sys.addaudithook(hook)
"""


def run_killed(code: str, kill: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([sys.executable, "-c", KILLER + code, *args], cwd=REPO,
                          env={**ENV, "KILL": kill}, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, (kill, proc.stderr.decode()[-2000:])
    return proc


def run_limited(args: list[str], fsize: int) -> subprocess.CompletedProcess[str]:
    """`python -m cli.main ARGS` with every file it writes capped at `fsize` bytes."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300, preexec_fn=limit)


def pdq_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(256):064x}" for _ in range(n)]


def entry_counts(store: BankStore) -> tuple[int, int, int]:
    return tuple(store.con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                 for t in ("banks", "entries", "imports"))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def pdq_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A store with one bank of N_PDQ distinct PDQ hashes, its index built (a template)."""
    root = tmp_path_factory.mktemp("pdq_store")
    hashes = pdq_lines(N_PDQ, 11)
    lst = root / "big.pdq.txt"
    lst.write_text("".join(f"{h},90\n" for h in hashes))
    with BankStore(root / "store") as store:
        store.import_file(str(lst), ImportOptions(bank="big", format="pdq"))
        checksum = store.open_matcher().index_checksums()["pdq"]
    return {"dir": root / "store", "hashes": hashes, "checksum": checksum}


def copy_store(template: dict[str, object], dest: Path) -> Path:
    shutil.copytree(template["dir"], dest)  # type: ignore[arg-type]
    return dest


def assert_store_matches(store_dir: Path, hashes: list[str], checksum: str | None) -> None:
    """Opens, is intact, and its index answers exactly: every sampled bank hash is found at
    distance 0 under its own entry, and the index holds every hash once."""
    with BankStore(store_dir) as store:
        assert store.con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        matcher = store.open_matcher()
        index, rows = matcher.perceptual("pdq")
        assert index.ntotal == len(set(hashes))
        sample = random.Random(3).sample(hashes, 25)
        lims, dist, ids = index.range_search(codec.pack("pdq", sample), 0)
        for q, hex_ in enumerate(sample):
            found = ids[lims[q]:lims[q + 1]]
            assert len(found) == 1 and dist[lims[q]] == 0, hex_
            assert [e.hash for e in rows[int(found[0])]] == [hex_]
        if checksum is not None:
            assert matcher.index_checksums()["pdq"] == checksum
        matcher.close()


REBUILD = "import sys\nfrom index.banks import BankStore\nBankStore(sys.argv[1]).rebuild()\n"
# Points inside `bank_index.build` -> `faiss_store.CodesWriter`, in order.
REBUILD_KILLS = {
    "temp_written": "open|.tmp",  # the temp file opened, codes about to stream into it
    "before_rename": "os.rename|pdq.faissbin",  # fsynced, not yet renamed over the index
    "after_rename": "open|/index",  # renamed; fsyncing the directory, DB not yet updated
    "mapping_txn": "sql|INSERT INTO index_maps",  # inside the DB transaction of the row map
}


@pytest.mark.parametrize("point", sorted(REBUILD_KILLS))
def test_sigkill_during_index_rebuild(pdq_store: dict[str, object], tmp_path: Path,
                                      point: str) -> None:
    store_dir = copy_store(pdq_store, tmp_path / "s")
    run_killed(REBUILD, REBUILD_KILLS[point], str(store_dir))
    assert_store_matches(store_dir, pdq_store["hashes"], pdq_store["checksum"])  # type: ignore[arg-type]
    with BankStore(store_dir) as store:  # and a rebuild now runs to the end
        store.rebuild()
    assert_store_matches(store_dir, pdq_store["hashes"], pdq_store["checksum"])  # type: ignore[arg-type]


@pytest.mark.parametrize("point", ["temp_written", "before_rename"])
def test_no_temp_file_outlives_a_killed_rebuild(pdq_store: dict[str, object], tmp_path: Path,
                                                point: str) -> None:
    store_dir = copy_store(pdq_store, tmp_path / "s")
    run_killed(REBUILD, REBUILD_KILLS[point], str(store_dir))
    with BankStore(store_dir) as store:
        store.open_matcher().close()
        store.rebuild()
    assert sorted(p.name for p in (store_dir / "index").iterdir()) == ["pdq.faissbin"]


IMPORT = ("import sys\nfrom index.banks import BankStore, ImportOptions\n"
          "BankStore(sys.argv[1]).import_file(sys.argv[2], ImportOptions(bank='late'))\n")


def test_sigkill_between_import_commit_and_index_rebuild(tmp_path: Path) -> None:
    """The import is committed whole, the index is stale: the next open rebuilds it, and
    importing the same list again adds nothing (nothing lost, nothing doubled)."""
    hashes, lst, store_dir = _late_list_and_store(tmp_path, 500, 12)
    run_killed(IMPORT, "open|.tmp", str(store_dir), str(lst))
    with BankStore(store_dir) as store:
        assert [b.name for b in store.list_banks()] == ["first", "late"]
        assert entry_counts(store) == (2, 1 + len(hashes), 2)
    assert_store_matches(store_dir, [*_FIRST, *hashes], None)
    with BankStore(store_dir) as store:
        again = store.import_file(str(lst), ImportOptions(bank="late"))
        assert again.added == 0
        assert entry_counts(store)[1] == 1 + len(hashes)


_FIRST = pdq_lines(1, 13)


def _first(tmp_path: Path) -> Path:
    path = tmp_path / "first.pdq.txt"
    path.write_text(f"{_FIRST[0]},90\n")
    return path


def _late_list_and_store(tmp_path: Path, n: int, seed: int) -> tuple[list[str], Path, Path]:
    """`n` PDQ hashes, their list (for bank "late") and a store holding only bank "first"."""
    hashes = pdq_lines(n, seed)
    lst = tmp_path / "late.pdq.txt"
    lst.write_text("".join(f"{h},80\n" for h in hashes))
    store_dir = tmp_path / "s"
    with BankStore(store_dir) as store:
        store.import_file(str(_first(tmp_path)), ImportOptions(bank="first"))
    return hashes, lst, store_dir


# a bulk import (every list counts as large against the store), alone with the store: under
# a rollback journal instead of the WAL (`store_schema.rollback_journal`)
BULK_IMPORT = ("import sys\nfrom index import bank_import\n"
               "bank_import.BULK_ROWS = bank_import.DIRECT_BYTES = 1\n" + IMPORT)
BULK_KILLS = {
    "rows_written": "sql|CREATE UNIQUE INDEX entries_key",  # rows in, uncommitted
    "committing": "sql|COMMIT",  # every write done, the commit about to run
    "committed": "sql|PRAGMA main.journal_mode=WAL",  # committed, not yet back under WAL
}


@pytest.mark.parametrize("point", sorted(BULK_KILLS))
def test_sigkill_in_a_bulk_import_under_the_rollback_journal(tmp_path: Path, point: str) -> None:
    """Killed before its commit, the import is rolled back by the next open (its hot
    journal); killed after, it is whole. Either way the store is back under WAL, intact,
    and importing the list again finishes with nothing lost or doubled."""
    hashes, lst, store_dir = _late_list_and_store(tmp_path, 300, 14)
    run_killed(BULK_IMPORT, BULK_KILLS[point], str(store_dir), str(lst))
    assert not (store_dir / "banks.sqlite-wal").exists()
    hot = (store_dir / "banks.sqlite-journal")
    assert hot.exists() == (point != "committed")  # a hot journal only before the commit
    committed = point == "committed"
    with BankStore(store_dir) as store:
        assert store.con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert [b.name for b in store.list_banks()] == (["first", "late"] if committed
                                                        else ["first"])
        assert entry_counts(store) == ((2, 301, 2) if committed else (1, 1, 1))
        assert store.con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert not hot.exists()
    with BankStore(store_dir) as store:
        again = store.import_file(str(lst), ImportOptions(bank="late"))
        assert again.added == (0 if committed else len(hashes))
        assert entry_counts(store)[1] == 1 + len(hashes)
    assert_store_matches(store_dir, [*_FIRST, *hashes], None)


SCAN = ("import sys\nfrom pathlib import Path\nfrom triage.pipeline import ScanConfig, run_scan\n"
        "run_scan(ScanConfig(evidence=(Path(sys.argv[1]),), case_dir=Path(sys.argv[2]),"
        " store_dir=Path(sys.argv[3]), workers=0, inventory=True))\n")
OUTPUT_FILES = ("manifest.jsonl", "queue.jsonl", "queue.csv", "export.vics.json")


@pytest.fixture(scope="module")
def small_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small evidence, an empty store and an uninterrupted reference scan of it."""
    root = tmp_path_factory.mktemp("small_case")
    evidence = root / "evidence"
    make_evidence(evidence, seed=21, n_images=5, n_videos=0)
    BankStore(root / "store").close()
    run_scan(ScanConfig(evidence=(evidence,), case_dir=root / "reference",
                        store_dir=root / "store", workers=0, inventory=True))
    return {"root": root, "evidence": evidence, "store": root / "store",
            "reference": root / "reference"}


def _lines(case: Path, name: str) -> list[str]:
    text = (case / name).read_text()
    if name == "export.vics.json":  # its provenance names the case directory
        text = text.replace(f'"CaseNumber": "{case.name}"', '"CaseNumber": ""')
    return sorted(text.splitlines())


def assert_same_outputs(case: Path, reference: Path) -> None:
    for name in OUTPUT_FILES:
        assert _lines(case, name) == _lines(reference, name), name
    assert not list(case.glob(".*.tmp"))


@pytest.mark.parametrize("kill", ["os.rename|queue.csv", "os.rename|report.html"])
def test_sigkill_while_writing_outputs_then_rerun(small_case: dict[str, Path], tmp_path: Path,
                                                  kill: str) -> None:
    """Killed after every file was hashed, while the outputs are renamed into place: the rerun
    hashes nothing again and writes the same outputs as an uninterrupted scan."""
    case = tmp_path / "case"
    run_killed(SCAN, kill, str(small_case["evidence"]), str(case), str(small_case["store"]))
    assert not (case / "report.html").exists()
    again = run_scan(ScanConfig(evidence=(small_case["evidence"],), case_dir=case,
                                store_dir=small_case["store"], workers=0,
                                inventory=True))
    assert again.hash_calls == 0 and not again.noop
    assert_same_outputs(case, small_case["reference"])


# -- full disk ------------------------------------------------------------------------------

def _md5_list(tmp_path: Path, n: int) -> Path:
    rng = random.Random(14)
    path = tmp_path / "md5s.txt"
    path.write_text("".join(f"{rng.getrandbits(128):032x}\n" for _ in range(n)))
    return path


def _clear_error(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert any(w in proc.stderr.lower() for w in ("disk", "space", "too large", "full")), \
        proc.stderr


@pytest.fixture(scope="module")
def full_import(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("full_import")
    lst = _md5_list(root, 8000)
    BankStore(root / "s").close()
    proc = run_limited(["bank", "import", str(lst), "--bank", "b", "--store", str(root / "s")],
                       256 * 1024)
    return {"root": root, "list": lst, "proc": proc}


def test_full_disk_during_import_leaves_the_store_consistent(
        full_import: dict[str, object]) -> None:
    root: Path = full_import["root"]  # type: ignore[assignment]
    assert full_import["proc"].returncode != 0  # type: ignore[attr-defined]
    with BankStore(root / "s") as store:
        assert store.con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert entry_counts(store) == (0, 0, 0)  # nothing half-imported
        assert store.import_file(str(full_import["list"]), ImportOptions(bank="b")).added == 8000


def test_full_disk_during_import_gives_a_clear_error(full_import: dict[str, object]) -> None:
    _clear_error(full_import["proc"])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def full_scan(small_case: dict[str, Path]) -> dict[str, object]:
    case = small_case["root"] / "full_case"
    proc = run_limited(["scan", str(small_case["evidence"]), "--case", str(case), "--store",
                        str(small_case["store"]), "--workers", "0", "--inventory"], 64 * 1024)
    return {"case": case, "proc": proc}


def test_full_disk_during_scan_then_rerun_with_room(small_case: dict[str, Path],
                                                    full_scan: dict[str, object]) -> None:
    case: Path = full_scan["case"]  # type: ignore[assignment]
    assert full_scan["proc"].returncode != 0  # type: ignore[attr-defined]
    assert not (case / "queue.jsonl").exists()
    result = run_scan(ScanConfig(evidence=(small_case["evidence"],), case_dir=case,
                                 store_dir=small_case["store"], workers=0,
                                inventory=True))
    assert result.summary["files"] == json.loads(
        (small_case["reference"] / "summary.json").read_text())["files"]
    assert_same_outputs(case, small_case["reference"])


def test_full_disk_during_scan_gives_a_clear_error(full_scan: dict[str, object]) -> None:
    _clear_error(full_scan["proc"])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def full_rebuild(pdq_store: dict[str, object],
                 tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """`bank rebuild` where the 160 KB index file cannot be written (96 KiB limit)."""
    store_dir = copy_store(pdq_store, tmp_path_factory.mktemp("full_rebuild") / "s")
    proc = run_limited(["bank", "rebuild", "--store", str(store_dir)], 96 * 1024)
    return {"dir": store_dir, "proc": proc}


def test_full_disk_during_index_write_keeps_the_old_index(
        pdq_store: dict[str, object], full_rebuild: dict[str, object]) -> None:
    store_dir: Path = full_rebuild["dir"]  # type: ignore[assignment]
    assert full_rebuild["proc"].returncode != 0  # type: ignore[attr-defined]
    assert sorted(p.name for p in (store_dir / "index").iterdir()) == ["pdq.faissbin"]
    assert_store_matches(store_dir, pdq_store["hashes"], pdq_store["checksum"])  # type: ignore[arg-type]


def test_full_disk_during_index_write_gives_a_clear_error(
        full_rebuild: dict[str, object]) -> None:
    _clear_error(full_rebuild["proc"])  # type: ignore[arg-type]


# -- damaged index files (flipped byte and missing file: test_banks) -------------------------

@pytest.mark.parametrize("damage", ["truncate", "foreign", "zero_rows"])
def test_damaged_index_is_detected_and_rebuilt(pdq_store: dict[str, object], tmp_path: Path,
                                               damage: str) -> None:
    store_dir = copy_store(pdq_store, tmp_path / "s")
    path = store_dir / "index" / "pdq.faissbin"
    if damage == "truncate":
        os.truncate(path, path.stat().st_size // 2)
    elif damage == "foreign":  # a valid index file of another store, same size and header
        from index.faiss_store import write_index_atomic
        codes = np.random.default_rng(5).integers(0, 256, (N_PDQ, 32), dtype=np.uint8)
        write_index_atomic(path, codes)
    else:
        from index.faiss_store import write_index_atomic
        write_index_atomic(path, np.zeros((0, 32), dtype=np.uint8))
    assert_store_matches(store_dir, pdq_store["hashes"], pdq_store["checksum"])  # type: ignore[arg-type]



# -- the pieces behind the fixes above -------------------------------------------------------

def test_a_failed_commit_is_rolled_back(tmp_path: Path) -> None:
    """COMMIT can fail and leave SQLite inside the transaction (here a deferred foreign key,
    standing in for a full disk): `transaction` rolls back, so the connection stays usable."""
    con = connect(str(tmp_path / "t.sqlite"))
    con.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    con.execute("CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY"
                " DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError), transaction(con):
        con.execute("INSERT INTO child (p) VALUES (7)")
    assert not con.in_transaction
    assert con.execute("SELECT COUNT(*) FROM child").fetchone() == (0,)
    with transaction(con):
        con.execute("INSERT INTO parent (id) VALUES (1)")
    assert con.execute("SELECT COUNT(*) FROM parent").fetchone() == (1,)


def test_stale_temps_of_dead_writers_only_are_removed(tmp_path: Path) -> None:
    from index.faiss_store import remove_stale_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    names = {
        "dead": f".pdq.faissbin.{dead_pid}.0badc0de.tmp",
        "live": f".pdq.faissbin.{os.getppid()}.0badc0de.tmp",
        "ours": f".pdq.faissbin.{os.getpid()}.0badc0de.tmp",
        "other": ".notes.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    removed = remove_stale_temps(tmp_path)
    assert [p.name for p in removed] == [names["dead"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        names[k] for k in ("live", "ours", "other"))


def test_full_disk_while_a_scan_rebuilds_a_stale_index(pdq_store: dict[str, object],
                                                       small_case: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """The scan must rebuild the store's stale index first and cannot write it: one line
    naming the index file, and the store still matches afterwards."""
    store_dir = copy_store(pdq_store, tmp_path / "s")
    with BankStore(store_dir) as store:  # make the index stale without rebuilding it
        with transaction(store.con):
            bump(store.con, {"pdq"})
    proc = run_limited(["scan", str(small_case["evidence"]), "--case", str(tmp_path / "c"),
                        "--store", str(store_dir), "--workers", "0"], 96 * 1024)
    _clear_error(proc)
    assert "pdq.faissbin" in proc.stderr
    assert sorted(p.name for p in (store_dir / "index").iterdir()) == ["pdq.faissbin"]
    assert_store_matches(store_dir, pdq_store["hashes"], pdq_store["checksum"])  # type: ignore[arg-type]
