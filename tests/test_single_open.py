"""One read-only open per plain file: the walk no longer opens files to sniff them; the read
that hashes a file also says whether it is a container (issue 14).

Opens are counted with an audit hook on `open` (`os.open` and `open` both raise it) in a
subprocess, since an audit hook cannot be removed from the process that adds it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from index.banks import BankStore
from synthetic_fixtures.photos import make_photo

REPO = Path(__file__).resolve().parent.parent

COUNT_OPENS = """
import collections, json, os, sys
from pathlib import Path
from triage.pipeline import ScanConfig, run_scan

evidence, case, store = (Path(a) for a in sys.argv[1:4])
root = str(evidence.resolve())
opens = collections.Counter()

def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        path = os.fsdecode(args[0])
        if path.startswith(root):
            opens[os.path.relpath(path, root)] += 1

sys.addaudithook(hook)
result = run_scan(ScanConfig(evidence=(evidence,), case_dir=case, store_dir=store, workers=0,
                             inventory=True))
print(json.dumps({"opens": opens, "files": result.summary["files"]}))
"""


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(make_photo(np.random.default_rng(seed), 96, 72)).save(buf, "JPEG")
    return buf.getvalue()


def _evidence(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(_jpeg(1))
    (root / "sub" / "notes.txt").write_bytes(b"meeting notes\n" * 50)
    (root / "sub" / "blob.bin").write_bytes(bytes(range(256)) * 40)
    with zipfile.ZipFile(root / "backup.zip", "w") as zf:
        zf.writestr("DCIM/b.jpg", _jpeg(2))
        zf.writestr("readme.txt", b"inside")


def _scan(evidence: Path, case: Path, store: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", COUNT_OPENS, str(evidence), str(case),
                           str(store)], cwd=REPO, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_plain_files_are_opened_once_and_containers_still_walked(tmp_path: Path) -> None:
    evidence, store = tmp_path / "ev", tmp_path / "store"
    _evidence(evidence)
    BankStore(store).close()
    first = _scan(evidence, tmp_path / "case", store)
    opens = first["opens"]
    assert isinstance(opens, dict)
    plain = ("a.jpg", "sub/notes.txt", "sub/blob.bin")
    assert {p: opens.get(p) for p in plain} == dict.fromkeys(plain, 1)
    # the zip: read by the worker, reopened to list its members (and to read them)
    assert opens["backup.zip"] >= 2
    assert first["files"] == 6  # four files and the zip's two members
    # a rescan reuses every row; each file is opened once, to see whether it is a container
    again = _scan(evidence, tmp_path / "case", store)
    reopened = again["opens"]
    assert isinstance(reopened, dict)
    assert {p: reopened.get(p) for p in plain} == dict.fromkeys(plain, 1)
    assert again["files"] == 6
