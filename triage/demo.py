"""`triage demo`: synthetic evidence and banks, imported into a store under OUT, then a scan.

Everything is generated (synthetic_fixtures), nothing is downloaded; rerunning on the same
OUT regenerates identical fixtures, re-imports idempotently and rescans (a no-op).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from index.bank_import import ImportOptions
from index.banks import BankStore
from synthetic_fixtures.demo import DemoSpec, make_demo
from triage.outputs import ensure_private_dir
from triage.pipeline import ScanConfig, ScanResult, run_scan


@dataclass(frozen=True, slots=True)
class DemoResult:
    spec: DemoSpec
    evidence_dir: Path
    store_dir: Path
    scan: ScanResult


def run_demo(out_dir: Path, workers: int | None = None, seed: int = 7) -> DemoResult:
    out = ensure_private_dir(out_dir)
    spec = make_demo(out / "fixtures", seed=seed)
    store_dir = out / "store"
    with BankStore(store_dir) as store:
        for path, fmt, bank, known_good in spec.bank_files:
            # The demo's CSV list carries Project VIC codes, like its VICS list: reading both
            # through the same scheme gives the analyst one set of category labels.
            scheme = "vic" if fmt == "csv" else None
            store.import_file(str(path), ImportOptions(bank=bank, format=fmt,
                                                       known_good=known_good, scheme=scheme))
    result = run_scan(ScanConfig(
        evidence=(Path(spec.evidence_dir),), case_dir=out / "case", store_dir=store_dir,
        workers=workers, argv=tuple(sys.argv),
    ))
    return DemoResult(spec, Path(spec.evidence_dir), store_dir, result)
