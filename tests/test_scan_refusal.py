"""Nothing unexamined passes as clean: a scan with nothing to match against is refused, and
every scan says first how many items it could not examine and which banks it used."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from hashing.hasher import HashOptions, hash_bytes
from index.banks import BankStore, ImportOptions
from synthetic_fixtures.photos import make_photo
from synthetic_fixtures.sevenzip import make_7z
from triage.pipeline import NoBanksError, ScanConfig, run_scan

_LINE_NONE = "All recognised items were examined (0 could not be examined)."


def _jpeg(seed: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(make_photo(np.random.default_rng(seed), 96, 72)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture()
def evidence(tmp_path: Path) -> Path:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.jpg").write_bytes(_jpeg(1))
    (ev / "locked.7z").write_bytes(make_7z({"x.jpg": _jpeg(2)}, password="synthetic"))
    return ev


def _scan(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["scan", *args, "--workers", "0"])
    return res.exit_code, res.output


def test_a_missing_store_is_refused_and_nothing_is_created(evidence: Path, tmp_path: Path) -> None:
    store, case = tmp_path / "typo-store", tmp_path / "case"
    code, out = _scan(str(evidence), "--case", str(case), "--store", str(store))
    assert code == 2
    assert str(store) in out and "triage bank import" in out and "no bank store" in out
    assert not store.exists() and not case.exists()


def test_a_store_without_enabled_banks_is_refused_unless_an_inventory_is_asked_for(
        evidence: Path, tmp_path: Path) -> None:
    store, case = tmp_path / "store", tmp_path / "case"
    BankStore(store).close()
    code, out = _scan(str(evidence), "--case", str(case), "--store", str(store))
    assert code == 2 and "no enabled bank" in out and "--inventory" in out
    assert not case.exists()
    code, out = _scan(str(evidence), "--case", str(case), "--store", str(store), "--inventory")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == ("1 item could not be examined (encrypted, unsupported, over a limit "
                        "or unreadable): see the attention list.")
    assert lines[1].startswith("banks used: none (hashing-only inventory")


def test_a_disabled_bank_does_not_count(evidence: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    bank = tmp_path / "b.csv"
    bank.write_text("id,md5\nE1,00112233445566778899aabbccddeeff\n")
    with BankStore(store) as s:
        s.import_file(str(bank), ImportOptions(bank="only", format="csv"))
        s.set_enabled("only", False)
    with pytest.raises(NoBanksError, match="no enabled bank"):
        run_scan(ScanConfig(evidence=(evidence,), case_dir=tmp_path / "case", store_dir=store,
                            workers=0))


def test_summary_report_and_audit_list_the_banks_and_the_unexamined(
        evidence: Path, tmp_path: Path) -> None:
    store, case = tmp_path / "store", tmp_path / "case"
    known = hash_bytes((evidence / "a.jpg").read_bytes(), "a.jpg", HashOptions()).hashes["md5"]
    bank = tmp_path / "b.csv"
    with open(bank, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "md5"])
        w.writerow(["K-1", known])
    with BankStore(store) as s:
        s.import_file(str(bank), ImportOptions(bank="known", format="csv", version="2026-11",
                                               source="synthetic unit"))
    code, out = _scan(str(evidence), "--case", str(case), "--store", str(store))
    assert code == 0, out
    summary = json.loads((case / "summary.json").read_text())
    assert list(summary)[0] == "not_examined" and summary["not_examined"] == 1
    assert summary["banks"] == [{"name": "known", "source": "synthetic unit",
                                 "version": "2026-11", "entries": 1}]
    assert [a["reason"] for a in summary["attention"]] == ["encrypted: not examined"]
    assert out.splitlines()[1] == ("banks used: known (source synthetic unit, version 2026-11, "
                                   "1 entries)")
    page = (case / "report.html").read_text()
    body = page[page.index("<body>"):]
    assert body.index('id="not-examined"') < body.index("<h2")
    assert "1 item could not be examined" in body and "known (source synthetic unit" in body
    audit = [json.loads(x) for x in (case / "audit.jsonl").read_text().splitlines()]
    banks = audit[-1]["banks"]["banks"]
    assert [(b["name"], b["source"], b["version"], b["entries"]) for b in banks] == [
        ("known", "synthetic unit", "2026-11", 1)]


def test_a_clean_inventory_says_everything_was_examined(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.jpg").write_bytes(_jpeg(3))
    BankStore(tmp_path / "store").close()
    code, out = _scan(str(ev), "--case", str(tmp_path / "case"), "--store",
                      str(tmp_path / "store"), "--inventory")
    assert code == 0 and out.splitlines()[0] == _LINE_NONE
