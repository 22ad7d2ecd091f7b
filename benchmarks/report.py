"""report.html at case scale: page size, render time, and how fast headless Chromium opens it
and applies a search, a tier filter and a sort, for cases of 10^4 to 10^6 queued items.

The queue is synthetic (paths, digests, reasons; no media): 1% possible new, 2% near, 2% exact,
95% unmatched, 1,000 files per directory. The peer is the same page without the unmatched-tier
bound (every row in the page), measured where it stays openable: it shows what the bound buys.
Chromium is Debian's, driven by Selenium through Debian's chromedriver, as in the tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.harness import main, write_results
from benchmarks.plots import bars, grid, save
from triage.match import Reason
from triage.policy import Policy
from triage.queue import QueueRow
from triage.reports.html import write_report

TIERS = {"1": "possible_new", "2": "near", "3": "exact", "4": "unmatched"}
BOUND = Policy().report_unmatched_rows


def _tier(i: int) -> int:
    k = i % 100
    return 1 if k == 0 else 2 if k <= 2 else 3 if k <= 4 else 4


def queue_rows(n: int) -> Iterator[QueueRow]:
    """`n` ranked rows (tier order), generated on the fly like the pipeline's stream."""
    rank = 0
    for tier in (1, 2, 3, 4):
        for i in range(n):
            if _tier(i) != tier:
                continue
            rank += 1
            md5 = f"{i:032x}"
            if tier == 1:
                reasons: tuple[Reason, ...] = (Reason(
                    "cluster", "pdq", "partner", f"P-{i % 5000}", 20 + i % 10,
                    "child abuse material", via=f"/evidence/dir{(i - 1) // 1000:04d}/x.jpg",
                    severity=10),)
            elif tier == 2:
                reasons = (Reason("near", "pdq", "partner", f"P-{i % 5000}", i % 31,
                                  "child abuse material", severity=10, vic_category=1),)
            elif tier == 3:
                reasons = (Reason("exact", "md5", "national", f"N-{i}", 0,
                                  "CGI/animation" if i % 3 else "child abuse material",
                                  severity=4 if i % 3 else 10),)
            else:
                reasons = ()
            cat = reasons[0].category if tier in (2, 3) else None
            yield QueueRow(
                rank=rank, tier=tier, score=100.0 if tier == 3 else 90.0 if reasons else 0.0,
                path=f"/evidence/phone/DCIM/dir{i // 1000:04d}/IMG_{i:07d}.jpg", md5=md5,
                sha1=f"{i:040x}", sha256=None, media_type="image/jpeg", category=cat,
                cluster=f"C{i // 50:06d}" if tier in (1, 2) else None, reasons=reasons,
                severity=reasons[0].severity if reasons else None,
                category_source="bank" if cat else None,
                suggested_category=reasons[0].category if tier == 1 else None)


def summary(n: int) -> dict[str, Any]:
    tiers = {t: 0 for t in TIERS}
    for i in range(n):
        tiers[str(_tier(i))] += 1
    return {"files": n, "tier_names": TIERS, "attention": [],
            "counts": {"tier": tiers, "category": {}, "suggested_category": {}, "decision": {},
                       "status": {"hashed": n}, "media_type": {"image/jpeg": n}, "bank": {},
                       "queue": n, "known_good": 0, "attention": 0, "clusters": n // 50,
                       "accounting": {"queued": n, "known_good": 0, "not_examined": 0,
                                      "other": 0}}}


def _browser_times(page: Path, profile: Path) -> dict[str, float]:
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from benchmarks.browser import chromium

    out: dict[str, float] = {}
    with chromium(profile) as driver:
        t0 = time.perf_counter()
        driver.get(page.as_uri())
        WebDriverWait(driver, 600).until(
            lambda d: d.find_element("css selector", "body").get_attribute("data-ready") == "1")
        out["open_s"] = time.perf_counter() - t0
        total = driver.find_element("id", "filtered-total").text

        def until_total_changes(before: str) -> None:
            WebDriverWait(driver, 600, poll_frequency=0.02).until(
                lambda d: d.find_element("id", "filtered-total").text != before)

        t0 = time.perf_counter()
        driver.find_element("id", "f-search").send_keys("img_00012")
        until_total_changes(total)
        out["search_s"] = time.perf_counter() - t0  # includes the script's 120 ms debounce
        driver.find_element("id", "f-reset").click()
        t0 = time.perf_counter()
        Select(driver.find_element("id", "f-tier")).select_by_value("3")
        until_total_changes(total)
        out["tier_filter_s"] = time.perf_counter() - t0
        driver.find_element("id", "f-reset").click()
        t0 = time.perf_counter()
        driver.find_element("css selector", "section#tier-4 button.sort[data-sort=path]").click()
        WebDriverWait(driver, 600, poll_frequency=0.02).until(
            lambda d: d.find_element("css selector", "button.sort[data-sort=path]")
            .get_attribute("aria-sort") == "ascending")
        out["sort_s"] = time.perf_counter() - t0
    return out


def run(out_dir: str, quick: bool = False) -> dict[str, Any]:
    sizes = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    work = Path(tempfile.mkdtemp(prefix="bench-report-"))
    results: dict[str, Any] = {}
    rows = []
    try:
        for n in sizes:
            for bounded in (True, False):
                if not bounded and n > 100_000:
                    continue  # the unbounded page at 10^6 is the problem the bound solves
                bound = BOUND if bounded else n
                page = work / f"report-{n}-{bounded}.html"
                case = {"name": f"bench-{n}", "policy": Policy().to_dict()}
                t0 = time.perf_counter()
                write_report(page, summary(n), queue_rows(n), case, bound)
                render = time.perf_counter() - t0
                size_mb = page.stat().st_size / 1e6
                times = _browser_times(page, work / f"profile-{n}-{bounded}")
                key = f"{n}-{'bounded' if bounded else 'all rows'}"
                results[key] = {"items": n, "bounded": bounded, "bound": bound,
                                "size_mb": size_mb, "render_s": render, **times}
                rows.append([n, "bounded" if bounded else "all rows", size_mb, render,
                             times["open_s"], times["search_s"], times["tier_filter_s"],
                             times["sort_s"]])
                page.unlink()
        notes = (f"Unmatched-tier bound {BOUND:,} rows (policy `[report] unmatched_rows`); "
                 "tiers 1-3 always complete. Times are wall seconds on a shared 2-core machine "
                 f"(load average {os.getloadavg()[0]:.1f} at the end of the run); "
                 "open = page load until the script has rendered "
                 "the first page of every tier; search includes the 120 ms input debounce.")
        write_results(out_dir, "report", {"quick": quick, "by_case": results},
                      ["items", "page", "size MB", "render s", "open s", "search s",
                       "tier filter s", "sort s"], rows, notes)
        labels = [k for k in results]
        fig, (a1, a2) = grid(2, ncols=2, panel_size=(5.5, 3.6))
        bars(a1, labels, {"page size": [results[k]["size_mb"] for k in labels]}, "MB")
        bars(a2, labels, {m: [results[k][f"{m}_s"] for k in labels]
                          for m in ("open", "search", "tier_filter", "sort")}, "seconds")
        save(fig, Path(out_dir) / "report.png", title="report.html at case scale")
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(run, "report", __doc__)
