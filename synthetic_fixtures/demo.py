"""The demo case: synthetic known-bad and known-good banks, and an evidence folder that exercises
every kind of match, with the outcome expected for each evidence path.

Known-bad "originals" are synthetic photos grouped in series (slow drifts over one scene, as a
photo set is). Their digests and PDQ hashes go into bank lists (VICS 1.3 and CSV); benign
files go into an NSRL-style known-good list. The evidence holds exact copies, edited copies
(near matches), rotated and mirrored copies (dihedral matches), unseen shots of a known series
(near, or only linked through another evidence file: the cluster tier), known-good files,
unrelated photos, a video that shows a known picture for a few seconds, archives with known
files inside, non-media and corrupt files.

PDQ hashes for the lists and for choosing the series shots are computed with the project's
own `hashing.algorithms.pdq.pdq_from_rgb` on Pillow's RGB decode of the stored file (no EXIF
transposition), the reference definition. Every near or cluster expectation keeps a margin
of several bits from the default radius of 31, so a decode that deviates by a bit or two
still gives the expected outcome.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from hashing.registry import PDQ
from synthetic_fixtures.edits import EDITS
from synthetic_fixtures.evidence import (
    EvidenceBuilder,
    EvidenceSpec,
    Member,
    archive_member,
    truncate,
)
from synthetic_fixtures.hashlists import BankListEntry, entry_from_bytes, write_hash_lists
from synthetic_fixtures.photos import make_flat, make_photo
from synthetic_fixtures.videos import make_video

RADIUS = PDQ.default_radius or 31
NEAR_MAX = RADIUS - 5  # an expected near match is at most this far
FAR_MIN = RADIUS + 6  # an expected non-match is at least this far
SIZE = (480, 360)
MARKER = "demo_expected.json"  # its presence means OUT holds a demo made here

# Edits that normally stay well inside the radius; each is checked per image before use.
NEAR_EDITS = ("jpeg_q50", "resize_50", "blur_1", "noise_5", "grayscale", "format_webp",
              "brightness_down", "resize_150", "stretch_h", "logo_overlay")
DIHEDRAL_EDITS = ("rotate90", "mirror", "rotate180", "transpose")


@dataclass(frozen=True, slots=True)
class DemoSpec:
    """`expected["files"]` maps evidence paths (as in EvidenceSpec) to the outcome a scan should give:

    `expect` is one of exact | near | dihedral | video | cluster | known_good | unmatched |
    non_media | error (undecodable media, or non-media content under a media extension), with `entry`/`bank`/`category` of the bank item it should point at.
    """

    evidence_dir: str
    bank_files: list[tuple[str, str, str, bool]]
    expected: dict[str, object]
    evidence: EvidenceSpec | None = None
    entries: dict[str, BankListEntry] = field(default_factory=dict)


def _jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


PdqFn = Callable[[np.ndarray], tuple[str, int]]


def project_pdq(rgb: np.ndarray) -> tuple[str, int]:
    """(hex, quality) from the project's own PDQ; imported late so this module loads without it."""
    from hashing.algorithms.pdq import pdq_from_rgb

    r = pdq_from_rgb(rgb)
    return r.hash, r.quality


def _dist(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _series(rng: np.random.Generator, pdq: PdqFn) -> tuple[bytes, bytes | None, bytes | None]:
    """Shots of one scene: (S0 for the bank, S1 near S0, S2 far from S0 but near S1).

    The shots are crops drifting across a larger photo with a slight exposure change; S1 and
    S2 are picked by their actual PDQ distances, and left out (None) when no drift fits.
    """
    w, h = SIZE
    base = make_photo(rng, int(w * 1.6), int(h * 1.6))
    angle = rng.uniform(0, 2 * np.pi)
    ux, uy = np.cos(angle), np.sin(angle)
    cx, cy = (base.shape[1] - w) // 2, (base.shape[0] - h) // 2
    reach = min(cx, cy)

    def shot(t: float) -> bytes:
        x = int(np.clip(cx + ux * t - ux * reach, 0, base.shape[1] - w))
        y = int(np.clip(cy + uy * t - uy * reach, 0, base.shape[0] - h))
        crop = base[y:y + h, x:x + w].astype(np.float32) * (1 + 0.004 * t)
        return _jpeg(np.clip(crop, 0, 255).astype(np.uint8))

    shots = []
    for t in range(0, 24):
        data = shot(t)
        shots.append((data, pdq(_decoded(data))[0]))
    s0, h0 = shots[0]
    near = [(d, hx) for d, hx in shots[1:] if 6 <= _dist(hx, h0) <= NEAR_MAX]
    far = [(d, hx) for d, hx in shots[1:] if _dist(hx, h0) >= FAR_MIN]
    for d1, h1 in near:
        for d2, h2 in far:
            if _dist(h2, h1) <= NEAR_MAX:
                return s0, d1, d2
    return s0, (near[-1][0] if near else None), None


def _bank_of(entry: BankListEntry) -> str:
    """Known-bad entries alternate between the VICS and the CSV bank; known-good go to NSRL."""
    if entry.id.startswith("NSRL"):
        return "demo_nsrl"
    return "demo_vics" if int(entry.id[-3:]) % 2 == 0 else "demo_csv"


def _prepare_dir(out: Path) -> None:
    """Regenerate into OUT only when it is empty or holds a demo made here (the marker file)."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise FileExistsError(f"{out}: not empty and not a synthetic demo folder; refusing to overwrite")
        for name in ("evidence", "banks"):
            if (out / name).exists():
                shutil.rmtree(out / name)
    out.mkdir(parents=True, exist_ok=True)
    # Written first, so a run that dies half way still leaves a folder we may regenerate.
    (out / MARKER).write_text('{"status": "incomplete"}\n', encoding="utf-8")


def make_demo(out_dir: str | os.PathLike[str], seed: int = 7, n_series: int = 6,
              n_unrelated: int = 8, pdq: PdqFn | None = None) -> DemoSpec:
    """Write OUT/evidence, OUT/banks/* and OUT/demo_expected.json; see the module docstring.

    `pdq` maps RGB pixels to (hex, quality); it defaults to the project's own PDQ.
    """
    pdq_fn = pdq or project_pdq
    out = Path(out_dir)
    _prepare_dir(out)
    b = EvidenceBuilder(out / "evidence", seed)
    rng = np.random.default_rng([seed, 500])
    files: dict[str, dict[str, object]] = {}
    bad: list[BankListEntry] = []

    def expect(key: str | None, outcome: str, entry: BankListEntry | None = None,
               note: str = "", **extra: object) -> None:
        if key is None:
            return
        row: dict[str, object] = {"expect": outcome, "note": note, **extra}
        if entry is not None:
            row.update(entry=entry.id, category=entry.category, series=entry.series,
                       bank=_bank_of(entry))
        files[key] = row

    originals: list[tuple[BankListEntry, bytes]] = []
    for s in range(n_series):
        s0, s1, s2 = _series(np.random.default_rng([seed, 501, s]), pdq_fn)
        h0, q0 = pdq_fn(_decoded(s0))
        entry = entry_from_bytes(s0, f"DEMO-K{s:03d}", f"series{s}_0.jpg", category=1 + s % 3,
                                 series=f"SERIES-{s:02d}", pdq=h0, pdq_quality=q0)
        bad.append(entry)
        originals.append((entry, s0))
        base = f"Users/suspect/Pictures/set{s}"
        expect(b.add_file(f"{base}/IMG_{s}00.jpg", s0, media="image"), "exact", entry, "exact copy")
        if s1 is not None:
            d = _dist(pdq_fn(_decoded(s1))[0], h0)
            expect(b.add_file(f"{base}/IMG_{s}01.jpg", s1, media="image"), "near", entry,
                   "unseen shot of a known series", distance=d)
        if s2 is not None:
            d = _dist(pdq_fn(_decoded(s2))[0], h0)
            expect(b.add_file(f"{base}/IMG_{s}02.jpg", s2, media="image"), "cluster", entry,
                   "unseen shot linked to the series only through another evidence file", distance=d)

    # Edited copies (near) and rotated or mirrored copies (dihedral).
    for k, (entry, data) in enumerate(originals):
        img = Image.fromarray(_decoded(data))
        assert entry.pdq is not None
        erng = np.random.default_rng([seed, 502, k])
        for name in NEAR_EDITS[k % len(NEAR_EDITS):] + NEAR_EDITS[: k % len(NEAR_EDITS)]:
            variant = _png(EDITS[name](img, erng))
            d = _dist(pdq_fn(_decoded(variant))[0], entry.pdq)
            if d <= NEAR_MAX:
                expect(b.add_file(f"Downloads/shared/{k}_{name}.png", variant, media="image"),
                       "near", entry, f"edited copy ({name})", distance=d)
                break
        name = DIHEDRAL_EDITS[k % len(DIHEDRAL_EDITS)]
        variant = _jpeg(np.asarray(EDITS[name](img, erng)), 92)
        expect(b.add_file(f"Downloads/shared/{k}_{name}.jpg", variant, media="image"), "dihedral",
               entry, f"{name} copy")
    # The same bytes under another name, and inside archives.
    e0, d0 = originals[0]
    expect(b.add_file("Documents/receipt_scan.dat", d0, media="image"), "exact", e0,
           "exact copy with a non-image extension")
    e1, d1 = originals[1 % len(originals)]
    zip_key = b.add_archive("Downloads/holiday.zip", "zip", [
        Member("beach/DSC_0042.jpg", d1, media="image", note="known file in a zip"),
        Member("notes.txt", b"remember sunscreen\n"),
    ])
    expect(f"{zip_key}!/beach/DSC_0042.jpg", "exact", e1, "known file inside a zip")
    expect(f"{zip_key}!/notes.txt", "non_media")
    expect(zip_key, "non_media", note="the archive itself")
    e2, d2 = originals[2 % len(originals)]
    inner = archive_member("inner.zip", "zip", [Member("x.jpg", d2, media="image")])
    tar_key = b.add_archive("backup/old.tar.gz", "tar.gz", [inner])
    expect(f"{tar_key}!/inner.zip!/x.jpg", "exact", e2, "known file in a zip in a tar.gz")
    expect(f"{tar_key}!/inner.zip", "non_media", note="nested archive")
    expect(tar_key, "non_media", note="the archive itself")

    # A video that shows a known picture from 1 s to 3 s.
    e3, d3 = originals[3 % len(originals)]
    vpath = b.path_for("Videos/clip.avi").decode()
    make_video(np.random.default_rng([seed, 503]), vpath, seconds=5, fps=4, size=(240, 180),
               insert=_decoded(d3), insert_at=(1.0, 3.0))
    expect(b.add_existing("Videos/clip.avi", "hashed", "video"), "video", e3,
           "known picture shown from 1 s to 3 s")

    # Known-good: benign photos and program files listed in an NSRL-style list.
    good: list[BankListEntry] = []
    for g in range(3):
        data = _jpeg(make_photo(np.random.default_rng([seed, 504, g]), *SIZE), 85)
        good.append(entry_from_bytes(data, f"NSRL-{g:03d}", f"wallpaper_{g}.jpg", category=0))
        expect(b.add_file(f"Windows/Web/Wallpaper/img{g}.jpg", data, media="image"), "known_good",
               good[-1], "stock wallpaper in the known-good list")
    for g in range(2):
        data = rng.bytes(3000 + 500 * g)
        good.append(entry_from_bytes(data, f"NSRL-1{g:02d}", f"lib{g}.dll", category=0))
        expect(b.add_file(f"Windows/System32/lib{g}.dll", data), "known_good", good[-1],
               "program file in the known-good list")

    # Unrelated photos, one flat image, non-media and corrupt files.
    for u in range(n_unrelated):
        urng = np.random.default_rng([seed, 505, u])
        flat = u == n_unrelated - 1
        rgb = make_flat(urng, *SIZE) if flat else make_photo(urng, *SIZE)
        expect(b.add_file(f"DCIM/Camera/PXL_{u:04d}.jpg", _jpeg(rgb), media="image"), "unmatched",
               note="flat, low PDQ quality" if flat else "unrelated photo")
    expect(b.add_file("Documents/todo.txt", b"call mum\nbuy bread\n"), "non_media")
    expect(b.add_file("Documents/blob.bin", rng.bytes(2048)), "non_media")
    expect(b.add_file("Pictures/broken.jpg", truncate(d0, 0.35), "error", "image"), "error",
           note="truncated JPEG")
    expect(b.add_file("Pictures/empty.png", b""), "error", note="empty file named .png")
    b.add_symlink("Pictures/latest.jpg", "../Users/suspect/Pictures/set0/IMG_000.jpg", "symlink")
    evidence = b.finish()

    bank_files: list[tuple[str, str, str, bool]] = []
    for bank, fmt in (("demo_vics", "vics"), ("demo_csv", "csv")):
        chosen = [e for e in bad if _bank_of(e) == bank]
        infos = write_hash_lists(out / "banks" / bank, chosen, seed, name=bank, malformed=False)
        info = next(i for i in infos if i.format == fmt and (fmt != "vics" or i.note == "VICS 1.3"))
        bank_files.append((info.path, fmt, bank, False))
    infos = write_hash_lists(out / "banks" / "demo_nsrl", good, seed, name="demo_nsrl", malformed=False)
    bank_files.append((next(i.path for i in infos if i.format == "nsrl"), "nsrl", "demo_nsrl", True))

    counts: dict[str, int] = {}
    for row in files.values():
        counts[str(row["expect"])] = counts.get(str(row["expect"]), 0) + 1
    expected: dict[str, object] = {"files": files, "counts": counts, "radius": RADIUS,
                                   "near_max": NEAR_MAX, "far_min": FAR_MIN}
    spec = DemoSpec(str(out / "evidence"), bank_files, expected, evidence,
                    {e.id: e for e in bad + good})
    marker = {"evidence_dir": "evidence", "bank_files": [[os.path.relpath(p, out), f, n, g] for p, f, n, g in bank_files],
              "expected": expected}
    (out / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True), encoding="utf-8")
    return spec
