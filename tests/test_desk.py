"""The analyst's desk, piece by piece: categories normalised (codes, schemes, severity), ranking
within a tier, decisions applied and propagated, quarantine, and the CLI polish."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from hashing.codec import pack
from hashing.types import HashRecord
from index.bank_import import ImportOptions
from index.banks import BankStore
from index.categories import VIC, SchemeError, canonical, label_for_option, label_for_text
from triage.items import CaseItem
from triage.match import Reason
from triage.policy import Policy, PolicyError, policy_from_mapping
from triage.queue import build_queue
from triage.review.apply import apply_decisions, propagate
from triage.review.casefile import DecisionIndex, StoredDecision
from triage.review.decisions import Decision, parse_decision

MD5 = [f"{i:032x}" for i in range(1, 9)]


def test_codes_are_mapped_or_refused_naming_the_scheme() -> None:
    assert label_for_text("1", VIC).label == "child abuse material"
    assert label_for_text("Child Abuse Material", VIC).vic_category == 1  # a label, written out
    assert label_for_text("5", None).label == "non-pertinent"  # only Project VIC has code 5
    with pytest.raises(SchemeError, match="--scheme vic or --scheme caid"):
        label_for_text("1", None)
    assert label_for_text("CAM", None).label == "CAM"  # words stay labels
    assert label_for_option("A", None).label == "A"  # `--category A` is a label
    assert label_for_option("1", VIC).vic_category == 1


def test_one_canonical_category_per_code() -> None:
    a = canonical("CAM", 1, None)
    b = canonical("child abuse material", None, None)
    c = canonical(None, 1, None)
    assert a == b == c and a is not None and a.severity == 10
    assert canonical("B", None, "B") == canonical(None, None, "b")
    assert canonical("logo", None, None).severity == 5  # free text: serious until graded
    assert canonical(None, None, None) is None


def test_csv_import_refuses_bare_codes_and_labels_scale_columns(tmp_path: Path) -> None:
    bare = tmp_path / "bare.csv"
    bare.write_text(f"md5,category\n{MD5[0]},1\n")
    scale = tmp_path / "scale.csv"
    scale.write_text(f"id,md5,vic_category\nx,{MD5[1]},2\n")
    runner = CliRunner()
    store = str(tmp_path / "s")
    out = runner.invoke(cli, ["bank", "import", str(bare), "--bank", "b", "--store", store])
    assert out.exit_code == 2 and "give --scheme vic or --scheme caid" in out.output
    assert "provenance will be empty" in out.output  # no --source/--version
    out = runner.invoke(cli, ["bank", "import", str(scale), "--bank", "v", "--store", store,
                              "--scheme", "vic", "--source", "org", "--version", "1"])
    assert out.exit_code == 0 and "provenance" not in out.output, out.output
    exported = tmp_path / "v.json"
    out = runner.invoke(cli, ["bank", "export", "v", "--format", "vics", "--out", str(exported),
                              "--store", store])
    assert out.exit_code == 0 and '"Category": 2' in exported.read_text()
    with BankStore(store) as s:
        m = s.open_matcher()
        try:
            (e,) = m.lookup_digest("md5", MD5[1])
        finally:
            m.close()
    assert (e.category, e.vic_category) == ("child exploitive (non-CAM)", 2)


def test_unknown_csv_column_names_the_accepted_ones(tmp_path: Path) -> None:
    f = tmp_path / "l.csv"
    f.write_text(f"md5,colour\n{MD5[0]},red\n")
    out = CliRunner().invoke(cli, ["bank", "import", str(f), "--bank", "b", "--store",
                                   str(tmp_path / "s")])
    assert out.exit_code == 2
    assert "unknown column 'colour': accepted are pdq," in out.output and "md5" in out.output
    assert "--skip-invalid" in out.output


def _item(k: int, reasons: tuple[Reason, ...] = (), cluster: str | None = None,
          pdq: str | None = None) -> CaseItem:
    hashes = {"md5": MD5[k]} | ({"pdq": pdq} if pdq else {})
    rec = HashRecord(path=f"/e/{k}.jpg", status="hashed", media_type="image/jpeg",
                     hashes=hashes)
    return CaseItem(k, rec, reasons=reasons, cluster=cluster)


def _near(entry: str, distance: int, category: str, severity: int) -> Reason:
    return Reason("near", "pdq", "b", entry, distance, category, severity=severity)


def test_severity_ranks_before_match_strength() -> None:
    items = [_item(0, (_near("E0", 2, "comparison", 2),)),
             _item(1, (_near("E1", 20, "child abuse material", 10),)),
             _item(2, (_near("E2", 5, "child abuse material", 10),))]
    q = build_queue(items, Policy())
    assert [r.path for r in q] == ["/e/2.jpg", "/e/1.jpg", "/e/0.jpg"]
    assert q[0].score_basis == "near pdq distance 5 of 256: 98.05"


def _stored(d: Decision) -> StoredDecision:
    return StoredDecision(d, "analyst@host", "2026-01-01T00:00:00+00:00", "/g.csv", "0" * 64)


def test_decisions_override_and_propagate_to_the_cluster() -> None:
    base = "0" * 64
    near_base = "1" + "0" * 63  # one bit away
    items = [_item(0, cluster="C1", pdq=base), _item(1, cluster="C1", pdq=near_base),
             _item(2, (_near("E2", 3, "comparison", 2),)), _item(3, (_near("E3", 3, "CAM", 5),))]
    kind, cat = parse_decision("child abuse material", None)
    decisions = DecisionIndex([
        _stored(Decision(2, "md5", MD5[0], kind, cat)),
        _stored(Decision(3, "path", "/e/2.jpg", "false-positive")),
        _stored(Decision(4, "md5", MD5[3], "not-pertinent")),
    ])
    decided = apply_decisions(items, decisions)
    owners = np.asarray([i.ordinal for i in items if "pdq" in i.record.hashes], dtype=np.int64)
    codes = pack("pdq", [i.record.hashes["pdq"] for i in items if "pdq" in i.record.hashes])
    applied = propagate(decided, owners, codes, [np.asarray([0, 1], dtype=np.int64)])
    assert applied[2].reasons == () and [r.entry for r in applied[2].discarded] == ["E2"]
    suggestion = applied[1].suggestion
    assert suggestion is not None and suggestion.via == "/e/0.jpg" and suggestion.distance == 1
    assert suggestion.category == "child abuse material" and suggestion.bank is None
    rows = {r.path: r for r in build_queue(applied, Policy())}
    graded = rows["/e/0.jpg"]
    assert (graded.category, graded.category_source, graded.severity) == (
        "child abuse material", "analyst", 10)
    lead = rows["/e/1.jpg"]
    assert lead.tier == 1 and lead.category is None
    assert lead.suggested_category == "child abuse material"
    fp = rows["/e/2.jpg"]
    assert fp.tier == 4 and fp.decision == "false-positive" and fp.reasons[0].entry == "E2"
    np_ = rows["/e/3.jpg"]
    assert np_.severity == 0 and np_.category == "non-pertinent" and np_.tier == 2


def test_latest_decision_wins() -> None:
    rec = _item(0).record
    k1, c1 = parse_decision("comparison", None)
    k2, c2 = parse_decision("CGI/animation", None)
    index = DecisionIndex([_stored(Decision(2, "md5", MD5[0], k1, c1)),
                           _stored(Decision(2, "path", "/e/0.jpg", k2, c2))])
    found = index.find(rec)
    assert found is not None and found.decision.category == c2


def test_quarantine_threshold_in_policy() -> None:
    p = policy_from_mapping({"review": {"quarantine_false_positives": 2}})
    assert not p.quarantined(1) and p.quarantined(2)
    assert not policy_from_mapping({"review": {"quarantine_false_positives": 0}}).quarantined(99)
    with pytest.raises(PolicyError, match="'quarantine_false_positive' .did you mean "
                                          "'quarantine_false_positives'"):
        policy_from_mapping({"review": {"quarantine_false_positive": 1}})


def test_quarantined_entry_is_not_matched(tmp_path: Path) -> None:
    from index.bank_types import FalsePositive
    from triage.match import match_records

    f = tmp_path / "l.csv"
    f.write_text(f"id,md5,category\nE,{MD5[0]},logo\n")
    rec = HashRecord(path="/x", status="hashed", hashes={"md5": MD5[0]})
    with BankStore(tmp_path / "s") as s:
        s.import_file(str(f), ImportOptions(bank="b"))
        for case in ("c1", "c2"):
            s.record_false_positives([FalsePositive("b", "E", case, "/x", "me", "now")])
        assert s.show("b").false_positives == (("E", 2),)
        m = s.open_matcher()
        try:
            assert match_records([rec], m, Policy())[0]  # under the default threshold of 3
            assert match_records([rec], m, replace(Policy(), quarantine_false_positives=2)) == [()]
        finally:
            m.close()


def test_retract_whole_item(tmp_path: Path) -> None:
    f = tmp_path / "l.csv"
    f.write_text(f"id,md5,sha1\nE,{MD5[0]},{'ab' * 20}\nF,{MD5[1]},{'cd' * 20}\n")
    store = str(tmp_path / "s")
    runner = CliRunner()
    runner.invoke(cli, ["bank", "import", str(f), "--bank", "b", "--store", store])
    out = runner.invoke(cli, ["bank", "retract", "b", "--hash", MD5[0], "--whole-item",
                              "--store", store])
    assert out.exit_code == 0 and "retracted 2 entries" in out.output
    out = runner.invoke(cli, ["bank", "show", "b", "--store", store])
    assert out.exit_code == 0
    assert "active entries   2" in out.output or "active entries  2" in out.output, out.output
    assert "algorithm  entries" in out.output


def test_case_errors_are_one_line(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    BankStore(tmp_path / "s").close()
    runner = CliRunner()
    for case in (afile, afile / "sub"):
        out = runner.invoke(cli, ["scan", str(ev), "--case", str(case), "--store",
                                  str(tmp_path / "s"), "--inventory"])
        assert out.exit_code in (1, 2) and "Traceback" not in out.output, out.output
        assert out.output.count("\n") == 1 and str(case) in out.output


def test_vics_decisions_from_a_review_tool(tmp_path: Path) -> None:
    from triage.review.decisions import read_decisions

    doc = tmp_path / "graded.json"
    doc.write_text(
        '{"@odata.context": "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/US/'
        '$metadata#Media", "value": [\n'
        f'{{"MediaID": 1, "MD5": "{MD5[0].upper()}", "Category": 1}},\n'
        f'{{"MediaID": 2, "MD5": "{MD5[1]}", "Category": 5}},\n'
        f'{{"MediaID": 3, "MD5": "{MD5[2]}", "Category": 0}},\n'
        f'{{"MediaID": 4, "SHA1": "{"ab" * 20}", "Category": 3}}\n]}}\n')
    got = [(d.line, d.key, d.value, d.kind, d.category.label if d.category else None)
           for d in read_decisions(doc)]
    assert got == [
        (2, "md5", MD5[0], "category", "child abuse material"),
        (3, "md5", MD5[1], "not-pertinent", None),  # Project VIC 5: not pertinent
        (5, "sha1", "ab" * 20, "category", "CGI/animation"),  # VIC 0 is no decision
    ]
    bad = tmp_path / "bad.json"
    bad.write_text('{"value": [\n{"MD5": "xyz", "Category": 1}\n]}\n')
    with pytest.raises(Exception, match="1 invalid decision") as e:
        read_decisions(bad)
    assert e.value.rejected[0].line == 2  # type: ignore[attr-defined]
