"""A scan of evidence as it is seized finds every planted known picture, per container.

`synthetic_fixtures.seized` plants known pictures in HEIC/AVIF/JPEG XL photos, 7z and RAR
archives, a PDF, OOXML/ODF/EPUB, a legacy OLE file, and on later frames and pages of
animations and a TIFF. Byte-identical copies must match by digest, re-encoded ones by PDQ,
frames by PDQ with the frame named; encrypted archives must be on the attention list.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _evidence import tree_digest

from index.banks import BankStore, ImportOptions
from synthetic_fixtures.seized import SeizedSpec, make_seized
from triage.pipeline import ScanConfig, run_scan

CONTAINERS = ("heif", "avif", "jxl", "7z", "rar", "rar5", "zstd", "zip-zstd", "pdf", "pdf-inline",
              "ooxml", "odf", "epub", "ole", "gif", "webp", "png", "tiff")


@pytest.fixture(scope="module")
def seized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("seized")
    spec = make_seized(root / "fixture")
    before = tree_digest(spec.evidence)
    with BankStore(root / "store") as store:
        # the fixture list carries Project VIC codes in `category`
        store.import_file(str(spec.bank_csv), ImportOptions(bank="known", format="csv",
                                                            scheme="vic"))
    result = run_scan(ScanConfig(evidence=(spec.evidence,), case_dir=root / "case",
                                 store_dir=root / "store", workers=0))
    case = root / "case"
    queue = [json.loads(x) for x in (case / "queue.jsonl").read_text().splitlines()]
    return {"spec": spec, "before": before, "result": result,
            "queue": {q["path"]: q for q in queue},
            "summary": json.loads((case / "summary.json").read_text())}


def test_every_container_is_planted(seized: dict[str, Any]) -> None:
    spec: SeizedSpec = seized["spec"]
    assert sorted({p.container for p in spec.planted}) == sorted(CONTAINERS)


@pytest.mark.parametrize("container", CONTAINERS)
def test_every_planted_picture_is_found(seized: dict[str, Any], container: str) -> None:
    spec: SeizedSpec = seized["spec"]
    for p in (p for p in spec.planted if p.container == container):
        row = seized["queue"].get(f"{spec.evidence}/{p.path}")
        assert row is not None, f"{p.path} is not in the queue"
        hits = [r for r in row["reasons"] if r["entry"] == p.entry]
        assert hits, (p.path, row["reasons"])
        kinds = {r["kind"] for r in hits}
        if p.how == "md5":
            assert "exact" in kinds and any(r["algo"] == "md5" for r in hits)
        elif p.how == "pdq":
            assert kinds & {"near", "dihedral"}, hits
        else:
            assert [r["frame"] for r in hits if r["kind"] == "frame"] == [p.frame], hits


def test_encrypted_archives_are_attention_rows_and_counted(seized: dict[str, Any]) -> None:
    spec: SeizedSpec = seized["spec"]
    summary = seized["summary"]
    reasons = {a["path"]: a["reason"] for a in summary["attention"]}
    for rel in spec.encrypted:
        assert reasons[f"{spec.evidence}/{rel}"] == "encrypted: not examined"
    assert summary["not_examined"] == len(summary["attention"]) >= len(spec.encrypted)
    assert summary["banks"] == [{"name": "known", "source": None, "version": None,
                                 "entries": summary["banks"][0]["entries"]}]


def test_hostile_containers_are_attention_rows(seized: dict[str, Any]) -> None:
    spec: SeizedSpec = seized["spec"]
    attention = seized["summary"]["attention"]
    for rel, keywords in spec.hostile:
        target = f"{spec.evidence}/{rel}"
        found = [a for a in attention if a["path"].startswith(target)]
        assert found, rel
        for word in keywords.split("|"):  # a PDF's three broken images: each said
            assert any(word in (a["reason"] or "") for a in found), (rel, word, found)


def test_the_evidence_is_unchanged(seized: dict[str, Any]) -> None:
    assert tree_digest(seized["spec"].evidence) == seized["before"]
