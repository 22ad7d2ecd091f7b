"""No output of a scan holds image bytes, base64 images or data URIs: every file the demo scan
writes (case directory and bank store reports) is searched for media signatures."""

from __future__ import annotations

import re
from pathlib import Path

from triage.demo import run_demo

SIGNATURES = [
    re.compile(rb"\xff\xd8\xff"),  # JPEG
    re.compile(rb"\x89PNG"),
    re.compile(rb"GIF8[79]a"),
    re.compile(rb"RIFF....WEBP", re.S),
    re.compile(rb"ftyp"),  # MP4 / MOV / HEIC boxes
    re.compile(rb"BM.{4}\x00\x00\x00\x00", re.S),  # BMP header
    re.compile(rb"/9j/"),  # base64 of a JPEG start
    re.compile(rb"iVBORw0KGgo"),  # base64 of a PNG start
    re.compile(rb"R0lGOD"),  # base64 of a GIF start
    re.compile(rb"UklGR"),  # base64 of RIFF
    re.compile(rb"data:image", re.I),
    re.compile(rb"<img", re.I),
]


def test_no_output_holds_content(tmp_path: Path) -> None:
    demo = run_demo(tmp_path / "out", workers=0)
    outputs = [p for p in demo.scan.case_dir.rglob("*") if p.is_file()]
    outputs += [p for p in (demo.store_dir / "reports").rglob("*") if p.is_file()]
    assert len(outputs) >= 8
    for path in outputs:
        data = path.read_bytes()
        for sig in SIGNATURES:
            assert not sig.search(data), f"{path.name} contains {sig.pattern!r}"
    # and the evidence itself did hold such content, so the search is not vacuous
    evidence = b"".join(p.read_bytes() for p in demo.evidence_dir.rglob("*.jpg") if p.is_file()
                        and not p.is_symlink())
    assert SIGNATURES[0].search(evidence)
