"""report.html in a real headless Chromium, driven by Selenium: the script runs under the
strict CSP, loads nothing, and the analyst's controls (filters, search, sort, paging, cluster
links) do what they say. Also a real scan's report shows the scan's counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _browser import CHROMEDRIVER, CHROMIUM, chromium

from index.banks import BankStore
from synthetic_fixtures.evidence import make_evidence
from triage.match import Reason
from triage.pipeline import ScanConfig, run_scan
from triage.policy import Policy
from triage.queue import QueueRow
from triage.reports.html import render_report

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="chromium/chromedriver missing: run scripts/ensure_chromium.sh"),
]

TIER_NAMES = {"1": "possible_new", "2": "near", "3": "exact", "4": "unmatched"}


def _rows(n: int = 700) -> list[QueueRow]:
    """Synthetic queue rows: every 7th in tier 1 (a suggestion), then near, exact, unmatched."""
    rows = []
    for i in range(n):
        tier = (1, 2, 3, 4)[i % 4] if i % 7 else 1
        md5 = f"{i:032x}"
        if tier == 1:
            reasons = (Reason("cluster", "pdq", "bank-b", f"E{i}", 20, "comparison",
                              via=f"/ev/{i - 1}.jpg", severity=2),)
        elif tier in (2, 3):
            kind = "near" if tier == 2 else "exact"
            reasons = (Reason(kind, "pdq" if tier == 2 else "md5", f"bank-{'ab'[i % 2]}",
                              f"E{i}", i % 30 if tier == 2 else 0,
                              "child abuse material" if i % 3 else "comparison",
                              severity=10 if i % 3 else 2),)
        else:
            reasons = ()
        confirmed = tier in (2, 3)
        rows.append(QueueRow(
            rank=0, tier=tier, score=100.0 if tier == 3 else (90.0 - i % 30 if tier == 2 else 0),
            path=f"/ev/dir{i % 5}/file_{i:04d}.jpg", md5=md5, sha1=None, sha256=None,
            media_type="image/jpeg", category=reasons[0].category if confirmed else None,
            cluster=f"C{i % 9:05d}" if i % 2 == 0 else None, reasons=reasons,
            severity=reasons[0].severity if reasons else None,
            category_source="bank" if confirmed else None,
            suggested_category=reasons[0].category if tier == 1 else None))
    rows.sort(key=lambda r: (r.tier, -(r.severity if r.severity is not None else -1), -r.score,
                             r.path))
    from dataclasses import replace
    return [replace(r, rank=k) for k, r in enumerate(rows, 1)]


def _summary(rows: list[QueueRow]) -> dict[str, Any]:
    tiers = {t: sum(1 for r in rows if str(r.tier) == t) for t in TIER_NAMES}
    return {"files": len(rows), "tier_names": TIER_NAMES, "attention": [],
            "counts": {"tier": tiers, "category": {}, "status": {"hashed": len(rows)},
                       "media_type": {}, "bank": {}, "queue": len(rows), "known_good": 0,
                       "attention": 0, "clusters": 9,
                       "accounting": {"queued": len(rows), "known_good": 0, "not_examined": 0,
                                      "other": 0}}}


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("browser")
    rows = _rows()
    report = tmp / "report.html"
    report.write_text(render_report(_summary(rows), rows, {"name": "b", "policy":
                                                           Policy().to_dict()}, bound=150),
                      encoding="utf-8")
    with chromium(tmp / "profile") as driver:
        driver.get(report.as_uri())
        yield driver, rows


def _visible(driver: Any, tier: int) -> list[list[str]]:
    """The cell texts of a tier's rendered rows, in one round trip."""
    return list(driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map("
        "tr => Array.from(tr.cells).map(td => td.textContent))",
        f"section#tier-{tier} tbody tr"))


def _reset(driver: Any) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "f-reset").click()


def test_script_runs_under_csp_and_loads_nothing(page) -> None:  # type: ignore[no-untyped-def]
    driver, rows = page
    assert driver.find_element("css selector", "body").get_attribute("data-ready") == "1"
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    assert driver.execute_script(
        "return performance.getEntriesByType('resource').length") == 0
    assert driver.execute_script("return document.images.length") == 0
    # tier 4 bounded: 150 of its 175 rows in the page
    shown = driver.find_element("css selector", "section#tier-4 .shown").text
    assert shown == "150"


def test_filter_by_tier_and_bank(page) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import Select

    driver, rows = page
    _reset(driver)
    Select(driver.find_element("id", "f-tier")).select_by_value("2")
    n2 = sum(1 for r in rows if r.tier == 2)
    assert driver.find_element("id", "filtered-total").text == str(n2)
    assert _visible(driver, 3) == [] and len(_visible(driver, 2)) == min(n2, 200)
    Select(driver.find_element("id", "f-bank")).select_by_value("bank-a")
    want = sum(1 for r in rows if r.tier == 2 and r.reasons[0].bank == "bank-a")
    assert driver.find_element("id", "filtered-total").text == str(want)


def test_search_and_path_filter(page) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import WebDriverWait

    driver, rows = page
    _reset(driver)
    target = next(r for r in rows if r.tier == 3)
    driver.find_element("id", "f-search").send_keys(target.md5)
    WebDriverWait(driver, 10).until(
        lambda d: d.find_element("id", "filtered-total").text == "1")
    (row,) = _visible(driver, 3)
    assert row[0] == str(target.rank) and target.md5 in row[-1]
    _reset(driver)
    driver.find_element("id", "f-path").send_keys("dir3/")
    want = sum(1 for r in rows if "/dir3/" in r.path and (r.tier != 4 or r.rank <= sum(
        1 for x in rows if x.tier < 4) + 150))
    WebDriverWait(driver, 10).until(
        lambda d: d.find_element("id", "filtered-total").text == str(want))


def test_sort_by_path_and_severity(page) -> None:  # type: ignore[no-untyped-def]
    driver, rows = page
    _reset(driver)
    driver.find_element("css selector", "section#tier-2 button.sort[data-sort=path]").click()
    paths = [r[3] for r in _visible(driver, 2)]
    assert paths == sorted(paths) and len(paths) > 10
    driver.find_element("css selector", "section#tier-2 button.sort[data-sort=path]").click()
    assert [r[3] for r in _visible(driver, 2)] == sorted(paths, reverse=True)
    driver.find_element("css selector", "section#tier-3 button.sort[data-sort=severity]").click()
    sev = [int(r[1]) for r in _visible(driver, 3)]
    assert sev == sorted(sev, reverse=True) and sev[0] == 10


def test_paging_and_cluster_link(page) -> None:  # type: ignore[no-untyped-def]
    driver, rows = page
    _reset(driver)
    tier4 = [r for r in rows if r.tier == 4][:150]
    tier1 = [r for r in rows if r.tier == 1]
    assert len(tier1) > 200  # two pages of 200
    assert driver.find_element("css selector", "section#tier-1 .range").text == "1-200"
    driver.find_element("css selector", "section#tier-1 button.next").click()
    assert driver.find_element("css selector", "section#tier-1 .range").text == f"201-{len(tier1)}"
    assert _visible(driver, 1)[0][0] == str(tier1[200].rank)
    assert driver.find_element("css selector", "section#tier-1 button.next").get_attribute(
        "disabled") is not None
    driver.find_element("css selector", "button[data-cluster='C00000']").click()
    members = [r for r in rows if r.cluster == "C00000" and (r.tier != 4 or r in tier4)]
    assert driver.find_element("id", "filtered-total").text == str(len(members))


def test_scan_report_shows_the_scan_counts(tmp_path: Path) -> None:
    make_evidence(tmp_path / "ev", seed=3, n_images=4, n_videos=0)
    BankStore(tmp_path / "store").close()
    result = run_scan(ScanConfig(evidence=(tmp_path / "ev",), case_dir=tmp_path / "case",
                                 store_dir=tmp_path / "store", workers=0, inventory=True))
    summary = json.loads((tmp_path / "case" / "summary.json").read_text())
    with chromium(tmp_path / "profile") as driver:
        driver.get(result.outputs["report.html"].as_uri())
        assert driver.find_element("css selector", "body").get_attribute("data-ready") == "1"

        def cell(cell_id: str) -> str:
            return str(driver.find_element("id", cell_id).text)

        assert cell("total-files") == str(summary["files"])
        assert cell("total-queue") == str(summary["counts"]["queue"])
        for k, n in summary["counts"]["accounting"].items():
            assert cell(f"acc-{k}") == str(n)
        for tier, n in summary["counts"]["tier"].items():
            assert cell(f"count-tier-{tier}") == str(n)
        assert cell("filtered-total") == str(summary["counts"]["queue"])
        assert driver.execute_script(
            "return performance.getEntriesByType('resource').length") == 0
