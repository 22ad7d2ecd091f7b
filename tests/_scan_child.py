"""A default scan with 2 workers in a fresh process, with its own and its workers' peak RSS
(the memory-bound tests of the hostile suites)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.peak import OWN_PEAK

REPO = Path(__file__).resolve().parents[1]

SCAN_CHILD = OWN_PEAK + """
import json, sys
from pathlib import Path
from triage.pipeline import ScanConfig, run_scan
tree = TreePeak()
run_scan(ScanConfig(evidence=(Path(sys.argv[1]),), case_dir=Path(sys.argv[2]),
                    store_dir=Path(sys.argv[3]), workers=2, inventory=True))
peaks = tree.stop()
print(json.dumps({"parent": own_peak_kib() * 1024,
                  "workers": max(peaks.values(), default=0) * 1024}))
"""


def scan_with_2_workers(ev: Path, tmp: Path) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Scan `ev` into `tmp/case` (an empty store at `tmp/store`): ({"parent", "workers"}:
    peak RSS in bytes, the scan's own and its largest worker's; the manifest rows)."""
    from index.banks import BankStore

    BankStore(tmp / "store").close()
    proc = subprocess.run([sys.executable, "-c", SCAN_CHILD, str(ev), str(tmp / "case"),
                           str(tmp / "store")], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peaks: dict[str, int] = json.loads(proc.stdout.splitlines()[-1])
    rows = [json.loads(x) for x in (tmp / "case" / "manifest.jsonl").read_text().splitlines()]
    return peaks, rows
