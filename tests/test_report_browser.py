"""report.html renders in a real headless Chromium and shows the scan's counts.

Needs Debian's `chromium` (installed by `make test` via scripts/ensure_chromium.sh); skips
with a message saying so where the binary is absent.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from index.banks import BankStore
from synthetic_fixtures.evidence import make_evidence
from triage.pipeline import ScanConfig, run_scan

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: run scripts/ensure_chromium.sh"),
]


def test_report_renders_with_counts(tmp_path: Path) -> None:
    make_evidence(tmp_path / "ev", seed=3, n_images=4, n_videos=0)
    BankStore(tmp_path / "store").close()
    result = run_scan(ScanConfig(evidence=(tmp_path / "ev",), case_dir=tmp_path / "case",
                                 store_dir=tmp_path / "store", workers=0, inventory=True))
    report = result.outputs["report.html"]
    assert CHROMIUM is not None
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", report.as_uri()],
        capture_output=True, timeout=120, check=False,
    )
    dom = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0 and "<body" in dom, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "case" / "summary.json").read_text())

    def cell(cell_id: str) -> str:
        m = re.search(rf'id="{re.escape(html.escape(cell_id))}">([^<]*)<', dom)
        assert m, cell_id
        return m.group(1)

    assert cell("total-files") == str(summary["files"])
    assert cell("total-queue") == str(summary["counts"]["queue"])
    assert cell("total-attention") == str(summary["counts"]["attention"])
    for tier, n in summary["counts"]["tier"].items():
        assert cell(f"count-tier-{tier}") == str(n)
    for status, n in summary["counts"]["status"].items():
        assert cell(f"count-status-{status}") == str(n)
    assert dom.count("<svg") == 2
