"""Living lists: `--replace` retracts what a new version lacks (kept in the history with the
dropping version, reinstated when listed again), `bank validate` writes nothing and reports
what an import would, and the bulk parsers stage exactly what the reference parsers say."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.main import cli
from index import bank_import
from index.bank_types import ImportRejectedError
from index.banks import BankStore, ImportOptions
from index.errors import BankError, HashListFormatError
from index.ingest import csv as csv_list
from index.ingest import fastlines, hashlist, pdq
from index.ingest.records import Batch, ParseOptions, batched

MD5 = [hashlib.md5(bytes([i])).hexdigest() for i in range(60)]
PDQ = [hashlib.sha256(bytes([i])).hexdigest() for i in range(60)]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def csv_of(ids: list[int], relabel: int | None = None) -> str:
    rows = ["id,md5,pdq,category"]
    for i in ids:
        rows.append(f"m{i},{MD5[i]},{PDQ[i]},{'new' if i == relabel else 'cat'}")
    return "\n".join(rows) + "\n"


def active(store: BankStore, bank: str) -> set[str]:
    return {h["entry_id"] for h in store.history(bank) if not h["retracted"]}


@pytest.mark.parametrize("scan", [True, False], ids=["bank-scanned", "hashes-looked-up"])
def test_replace_retracts_absent_entries_with_the_dropping_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scan: bool
) -> None:
    monkeypatch.setattr(bank_import, "scans_bank", lambda *_: scan)
    with BankStore(tmp_path / "store") as store:
        v1 = store.import_file(write(tmp_path, "v1.csv", csv_of([0, 1, 2, 3, 4])),
                               ImportOptions(bank="p", version="1", replace=True))
        assert (v1.added, v1.retracted) == (10, 0)
        assert sorted(v1.ids["added"]) == ["m0", "m1", "m2", "m3", "m4"]
        v2 = store.import_file(write(tmp_path, "v2.csv", csv_of([0, 1, 2, 5], relabel=1)),
                               ImportOptions(bank="p", version="2", replace=True))
        assert (v2.added, v2.updated, v2.unchanged, v2.retracted) == (2, 2, 4, 4)
        assert (v2.ids["added"], v2.ids["changed"], v2.ids["retracted"]) == (
            ["m5"], ["m1"], ["m3", "m4"])
        assert active(store, "p") == {"m0", "m1", "m2", "m5"}
        dropped = [h for h in store.history("p") if h["retracted"]]
        assert {(h["entry_id"], h["retracted_version"]) for h in dropped} == {
            ("m3", "2"), ("m4", "2")}
        matcher = store.open_matcher()
        assert matcher.lookup_digest("md5", MD5[3]) == []
        index, _ = matcher.perceptual("pdq")
        assert index.ntotal == 4
        report = json.loads(Path(v2.report_path).read_text())  # type: ignore[arg-type]
        assert report["retracted"] == 4 and report["ids"]["retracted"] == ["m3", "m4"]
        # a hand retraction is sticky; an entry the list dropped comes back when listed again
        store.retract("p", [MD5[0], PDQ[0]], reason="false positive")
        v3 = store.import_file(write(tmp_path, "v3.csv", csv_of([0, 1, 2, 3, 5], relabel=1)),
                               ImportOptions(bank="p", version="3", replace=True))
        assert (v3.reinstated, v3.retracted, v3.ids["reinstated"]) == (2, 0, ["m3"])
        assert active(store, "p") == {"m1", "m2", "m3", "m5"}


def test_additive_import_never_retracts(tmp_path: Path) -> None:
    with BankStore(tmp_path / "store") as store:
        store.import_file(write(tmp_path, "a.csv", csv_of([0, 1])), ImportOptions(bank="p"))
        r = store.import_file(write(tmp_path, "b.csv", csv_of([2])), ImportOptions(bank="p"))
        assert (r.added, r.retracted) == (2, 0)
        assert active(store, "p") == {"m0", "m1", "m2"}


def test_replace_is_all_or_nothing_and_refuses_lossy_options(tmp_path: Path) -> None:
    with BankStore(tmp_path / "store") as store:
        store.import_file(write(tmp_path, "a.csv", csv_of([0, 1, 2])),
                          ImportOptions(bank="p", version="1"))
        bad = write(tmp_path, "b.csv", csv_of([0]) + "m9,nothex,,cat\n")
        with pytest.raises(ImportRejectedError):
            store.import_file(bad, ImportOptions(bank="p", version="2", replace=True))
        assert active(store, "p") == {"m0", "m1", "m2"}
        with pytest.raises(BankError, match="--skip-invalid"):
            store.import_file(bad, ImportOptions(bank="p", version="2", replace=True,
                                                 skip_invalid=True))
        with pytest.raises(BankError, match="--version"):
            store.import_file(bad, ImportOptions(bank="p", replace=True))
        assert active(store, "p") == {"m0", "m1", "m2"}


def test_cli_replace_and_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    store = str(tmp_path / "store")
    v1 = write(tmp_path, "v1.csv", csv_of([0, 1, 2]))
    r = runner.invoke(cli, ["bank", "import", v1, "--bank", "p", "--store", store])
    assert r.exit_code == 0, r.output
    v2 = write(tmp_path, "v2.csv", csv_of([0]))
    r = runner.invoke(cli, ["bank", "import", v2, "--bank", "p", "--replace", "--version", "2",
                            "--store", store])
    assert r.exit_code == 0 and "4 retracted" in r.output, r.output
    bad = write(tmp_path, "bad.csv", csv_of([0, 1]) + f"m7,{MD5[0]},{PDQ[7]},cat\nm8,zz,,\n")
    r = runner.invoke(cli, ["bank", "validate", bad])
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["status"] == "invalid" and doc["records"] == 2
    assert [(x["line"], x["reason"]) for x in doc["rejected"]] == [
        (4, "duplicate md5 hash with different data than line 2"),
        (5, "md5: not hexadecimal"),
    ]
    r = runner.invoke(cli, ["bank", "validate", v1, "--format", "csv"])
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "valid"


def generated(out: Path, seed: int) -> list:  # type: ignore[type-arg]
    import numpy as np

    from synthetic_fixtures.hashlists import random_entries, write_hash_lists

    return write_hash_lists(out, random_entries(np.random.default_rng(seed), 40), seed=seed)


def test_validate_reports_what_an_import_reports_and_writes_nothing(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    infos = generated(lists, 3)
    before = sorted(p for p in tmp_path.rglob("*"))
    with BankStore(tmp_path / "store") as store:
        for k, info in enumerate(infos):
            algo = info.algorithm if info.format == "hashlist" else None
            options = ImportOptions(bank=f"b{k}", format=info.format, algo=algo)
            checked = bank_import.validate_file(info.path, options)
            try:
                imported = store.import_file(info.path, options).to_dict()
            except ImportRejectedError as e:
                imported = e.result.to_dict()
            assert checked.status == ("invalid" if imported["status"] == "rejected" else "valid")
            for key in ("rejected", "duplicates", "records", "error"):
                assert checked.to_dict()[key] == imported[key], (info.path, key)
    assert sorted(p for p in (lists).rglob("*")) == [p for p in before if lists in p.parents]


def staged_rows(batches: list[Batch]) -> tuple[Counter[tuple[object, ...]], list[object], int]:
    rows: Counter[tuple[object, ...]] = Counter()
    rejected: list[object] = []
    records = 0
    for b in batches:
        for (algo, labels, shape), group in b.groups.items():
            for r in group:
                if shape == "line":
                    rows[(r[0], r[0], None, algo, r[1], None, labels)] += 1
                elif shape == "keyed":
                    rows[(r[0], r[0], None, algo, r[1], r[2], labels)] += 1
                else:
                    rows[(r[0], r[1], r[0], algo, r[2], r[3], labels)] += 1
        rejected.extend(b.rejected)
        records += b.records
    return rows, sorted(rejected, key=lambda r: (r.line, r.item or 0)), records  # type: ignore[attr-defined]


def both_paths(path: str, fmt: str, options: ParseOptions) -> tuple[object, object]:
    fast = {"hashlist": hashlist, "pdq": pdq, "csv": csv_list}[fmt]
    out = []
    for batches in (lambda: fast.batches(path, options),
                    lambda: batched(fast.parse(path, options))):
        got: list[Batch] = []
        try:
            for b in batches():
                got.append(b)
        except HashListFormatError as e:
            got.append(Batch({}, [], {"error: " + e.reason: e.line or 0}, 0))
        out.append(staged_rows(got))
    return out[0], out[1]


LINES = st.sampled_from([
    MD5[1], MD5[2].upper(), PDQ[3], f"{PDQ[4]},{77}", f"{PDQ[5]},100,file.jpg", f"{PDQ[6]},7",
    f"{PDQ[6]},101", f"{PDQ[7]},007", "", "# comment", "zz", f" {MD5[8]} ", f"0x{MD5[9]}",
    f"m1,{MD5[1]},{PDQ[1]},50,cat", f"m9,{MD5[9]},{PDQ[9]},60,cat", f"m2,{MD5[2]},,,", f'"m3",{MD5[3]},{PDQ[3]},9,"a,b"',
    f"m4,{MD5[4]},{PDQ[4]},x,c", f"{MD5[5]},{PDQ[5]},1,c#1,", '"open', f"m6,{MD5[6]}",
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINES, min_size=1, max_size=25), crlf=st.booleans(),
       fmt=st.sampled_from(["hashlist", "pdq", "csv"]), block=st.sampled_from([64, 300, 1 << 22]))
def test_bulk_path_stages_what_the_reference_parser_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: list[str], crlf: bool, fmt: str,
    block: int,
) -> None:
    monkeypatch.setattr(fastlines, "BLOCK", block)  # the CSV blocks' size too
    if fmt == "csv":
        lines = ["id,md5,pdq,quality,category"] + lines
    end = "\r\n" if crlf else "\n"
    path = tmp_path / f"l.{fmt}"
    path.write_bytes(end.join(lines).encode())
    options = ParseOptions(algo="md5" if fmt == "hashlist" else None, category="c0")
    fast, reference = both_paths(str(path), fmt, options)
    assert fast == reference


@pytest.mark.parametrize("fmt", ["hashlist", "pdq", "csv"])
def test_bulk_path_on_the_generated_lists(tmp_path: Path, fmt: str) -> None:
    for info in generated(tmp_path / "lists", 5):
        if info.format == fmt:
            algo = info.algorithm if fmt == "hashlist" else None
            fast, reference = both_paths(info.path, fmt, ParseOptions(algo=algo))
            assert fast == reference, info.path


M1, M2, M4, M5, M6, M7, P3 = MD5[1], MD5[2], MD5[4], MD5[5], MD5[6], MD5[7], PDQ[3]
VICS_PIECES = st.sampled_from([
    f'{{"MediaID": 1, "Category": 1, "MD5": "{M1}"}}',
    f'{{"MediaID": "2", "MD5": "{M2}", "SHA1": "zz"}}',
    f'{{"MediaID": 3, "AlternativeHashes": [{{"HashName": "PDQ", "HashValue": "{P3}",'
    ' "Quality": 80}, {"HashName": "PhotoDNA", "HashValue": "AA"}]}',
    f'{{"CaseID": 1, "Media": [{{"MD5": "{M4}", "Series": "s\\\\\\"[{{"}}, 5,'
    f' {{"Category": 9, "MD5": "{M5}"}}]}}',
    '{"Media": 7}', "[1, 2]", '"text"', f'{{"MD5": "{M6}", "Category": true}}',
    f'{{"MD5": "{M7}",\n "Series": "x\\ny"}}',
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(VICS_PIECES, max_size=12), indent=st.sampled_from(["", "\n", "\r\n  "]),
       context=st.sampled_from(["", '"odata.metadata": "x/DataModels/2.0.xml/UK/$m#Media", ']),
       cut=st.integers(0, 40))
def test_fast_vics_reader_stages_what_the_reference_reader_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, items: list[str], indent: str, context: str,
    cut: int,
) -> None:
    from index.ingest import vics

    monkeypatch.setattr(vics, "_READ", 16)  # values straddle many buffer refills
    text = "{" + context + '"value": [' + indent + ("," + indent).join(items) + "]}"
    for doc in (text, text[: max(0, len(text) - cut)]):  # whole, and cut off (unreadable tail)
        path = tmp_path / "v.json"
        path.write_text(doc, encoding="utf-8")
        out = []
        name = str(path)
        for make in (lambda: vics.batches(name, ParseOptions()),  # noqa: B023
                     lambda: batched(vics.parse(name, ParseOptions()))):  # noqa: B023
            got: list[Batch] = []
            error = None
            try:
                got.extend(make())
            except HashListFormatError as e:
                error = e.reason.split(":")[0]
            out.append((staged_rows(got), error))
        assert out[0] == out[1], doc


@pytest.mark.parametrize("depth", [61, 62, 65, 10_000])
def test_fast_vics_reader_bounds_nesting_as_the_reference_does(tmp_path: Path, depth: int) -> None:
    from index.ingest import vics
    from synthetic_fixtures.hostile_round2 import deep_vics

    path = tmp_path / "deep.json"
    path.write_bytes(b"\n\n" + deep_vics(depth))
    out = []
    for make in (lambda: vics.batches(str(path), ParseOptions()),
                 lambda: batched(vics.parse(str(path), ParseOptions()))):
        try:
            out.append(staged_rows(list(make())))
        except HashListFormatError as e:
            out.append((e.line, e.reason))
    assert out[0] == out[1]
