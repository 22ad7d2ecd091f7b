"""Media-bank scale: real `triage scan`s of generated 10^4- and 10^5-image cases against a
media bank, timing local-feature description, media-bank matching and in-case linking.

Each row generates a case of N small photos (JPEG q85, 320-400 px on the long side, 1,000 a
folder) and a holding of `BANK` originals of the same kind, imports the holding with
`triage bank import-media` (timed: images/s, bytes per bank image in the store), and scans
the case with the default `triage scan` as a subprocess (`benchmarks.scan_scale.scan`: the
process tree polled for peak RSS and CPU). The case holds:

- 1 % byte copies of bank originals: known-bad by digest, the anchors of in-case linking;
- 1 % edited copies of bank originals (crop 20 %, text overlay, screenshot, rotation 3°, each
  re-encoded), which only the media bank's sub-windows and local features find;
- the rest distinct photos, none of which may match or link (the false-positive count).

The scan's own stage timings split the cost: `walk_and_hash` (decode, digests, PDQ, pHash,
sub-windows and ORB description in the hashing workers), `match` (hash lists and the media
bank: sub-window PDQs, then local features against the bank's descriptors), `cluster`
(in-case linking of every image against the known-bad images' descriptors, then PDQ
clustering). Description alone is timed on one core on a sample of the same photos.

Run: `python -m benchmarks.media_scale --images 10000 --out DIR` (one row per size;
`--merge OUT PART...` publishes separately run rows as one result).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks import harness, plots
from benchmarks.scan_scale import REPO, scan
from hashing.algorithms.local_features import describe_query_rgb
from synthetic_fixtures.edits import EDITS, edit_rng
from synthetic_fixtures.photos import make_photo

BANK = 1000
PER_FOLDER = 1000
LONG_SIDE = (320, 400)
JPEG_QUALITY = 85
EDIT_NAMES = ("crop_20", "text_overlay", "screenshot", "rotate_3")
SEED = 20261202
DESCRIBE_SAMPLE = 300


def _photo(key: tuple[int, ...]) -> Image.Image:
    rng = np.random.default_rng((SEED, *key))
    long = int(rng.integers(LONG_SIDE[0], LONG_SIDE[1] + 1))
    w, h = (long, long * 3 // 4) if rng.random() < 0.75 else (long * 3 // 4, long)
    return Image.fromarray(make_photo(rng, w, h))


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _original(i: int) -> bytes:
    return _jpeg(_photo((0, i)))


def role(k: int, bank: int = BANK) -> tuple[str, int]:
    """What case image k of n is: ("copy", bank original), ("edit", original) or
    ("distinct", k). Copies and edits are spread through the case (every 100th, 50th)."""
    if k % 100 == 0:
        return "copy", (k // 100) % bank
    if k % 100 == 50:
        return "edit", (k // 100 + bank // 2) % bank
    return "distinct", k


def _case_bytes(k: int, bank: int) -> bytes:
    kind, i = role(k, bank)
    if kind == "copy":
        return _original(i)
    if kind == "edit":
        name = EDIT_NAMES[(k // 100) % len(EDIT_NAMES)]
        return _jpeg(EDITS[name](_photo((0, i)), edit_rng(SEED, i, name)))
    return _jpeg(_photo((1, k)))


def _path(root: Path, k: int) -> Path:
    return root / f"d{k // PER_FOLDER:04d}" / f"img{k:07d}.jpg"


def _write(args: tuple[str, str, int, int, int]) -> None:
    what, root, n, lo, hi = args
    for k in range(lo, hi):
        p = _path(Path(root), k)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_original(k) if what == "bank" else _case_bytes(k, n))


def generate(root: Path, what: str, n: int, bank: int, workers: int = 2) -> float:
    t0 = time.perf_counter()
    spans = [(what, str(root), bank, lo, min(n, lo + 500)) for lo in range(0, n, 500)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write, spans))
    return time.perf_counter() - t0


def describe_rate(root: Path, n: int) -> dict[str, float]:
    """One core: ORB description (downscale + detect + spread + compute) of a sample of the
    case's images, decoded beforehand (a scan decodes once for all its hashes)."""
    step = max(1, n // DESCRIBE_SAMPLE)
    rgbs = []
    for k in range(0, n, step):
        with Image.open(_path(root, k)) as im:
            rgbs.append(np.asarray(im.convert("RGB")))
    describe_query_rgb(rgbs[0])
    t0, c0 = time.perf_counter(), time.process_time()
    counts = [len(describe_query_rgb(rgb)) for rgb in rgbs]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"images": len(rgbs), "images_per_s": len(rgbs) / wall,
            "cpu_ms_per_image": 1000 * cpu / len(rgbs),
            "descriptors_mean": float(np.mean(counts)), "descriptors_max": int(np.max(counts))}


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)


def import_bank(holdings: Path, store: Path, bank: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    _cli("bank", "import-media", str(holdings), "--bank", "holdings", "--category", "bench",
         "--store", str(store))
    seconds = time.perf_counter() - t0
    (report,) = store.glob("reports/import-media-*.json")
    rejected = json.loads(report.read_text())["rejected_count"]
    if rejected:  # a bank missing originals would publish edits "not found" for no reason
        raise RuntimeError(f"import-media rejected {rejected} of {bank} originals: {report}")
    total = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    return {"images": bank, "seconds": seconds, "images_per_s": bank / seconds,
            "store_bytes_per_image": total / bank}


def outcome(case: Path, bank: int) -> dict[str, Any]:
    """From the case queue: copies and edits found (with which reason kinds), and distinct
    photos that matched or linked anything (false positives), with their queue rows' reasons
    so a false positive can be examined after the case is gone."""
    found: dict[str, Any] = {"copy": 0, "edit": 0, "edit_local": 0, "edit_grid": 0,
                             "edit_linked": 0, "distinct_flagged": 0, "flagged_rows": []}
    with open(case / "queue.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            name = Path(row["path"]).name
            if not name.startswith("img"):
                continue
            kind, _ = role(int(name[3:10]), bank)
            reasons = row.get("reasons", [])
            if not reasons:
                continue
            if kind == "distinct":
                found["distinct_flagged"] += 1
                found["flagged_rows"].append({"path": row["path"], "reasons": reasons})
            elif kind == "copy":
                found["copy"] += 1
            else:
                algos = {(r.get("kind"), r.get("algo")) for r in reasons}
                found["edit"] += 1
                found["edit_local"] += ("local", "orb") in algos
                found["edit_grid"] += any(a == "pdq_grid" for _, a in algos)
                found["edit_linked"] += ("cluster", "orb") in algos
    return found


def measure(n: int, work: Path, bank_size: int = BANK) -> dict[str, Any]:
    holdings, evidence = work / "holdings", work / f"case_{n}"
    store, case = work / "store", work / f"out_{n}"
    try:
        gen_bank = generate(holdings, "bank", bank_size, bank_size)
        gen_case = generate(evidence, "case", n, bank_size)
        data_bytes = sum(p.stat().st_size for p in evidence.rglob("*.jpg"))
        bank = import_bank(holdings, store, bank_size)
        desc = describe_rate(evidence, n)
        # every byte copy is of a distinct original; an edit's original is in the case only
        # past 50,000 images (edit and copy then cluster), so no cluster count is required
        s = scan(evidence, case, store, n, gen_case, min_clusters=0)
        result = {"images": n, "bank": bank, "describe": desc, "scan": s.to_dict(),
                  "outcome": outcome(case, bank_size), "case_bytes": data_bytes,
                  "generate_seconds": {"bank": gen_bank, "case": gen_case},
                  "copies": sum(role(k)[0] == "copy" for k in range(n)),
                  "edits": sum(role(k)[0] == "edit" for k in range(n))}
        result["case_dir_bytes"] = sum(p.stat().st_size for p in case.rglob("*") if p.is_file())
        return result
    finally:
        for p in (holdings, evidence, store, case):
            shutil.rmtree(p, ignore_errors=True)


def _row(r: dict[str, Any]) -> tuple[Any, ...]:
    s, st, o = r["scan"], r["scan"]["stages"], r["outcome"]
    n = r["images"]
    return (f"{n:,}", f"{s['seconds']:,.0f}", f"{s['cpu_seconds'] / n * 1000:.1f}",
            f"{r['describe']['images_per_s']:.0f}",
            f"{n / st.get('walk_and_hash', float('nan')):.0f}",
            f"{n / st.get('match', float('nan')):.0f}", f"{n / st.get('cluster', float('nan')):.0f}",
            f"{s['peak_rss_mb']:,.0f}", f"{r['describe']['descriptors_mean']:.0f}",
            f"{r['bank']['store_bytes_per_image']:,.0f}",
            f"{o['copy']}/{r['copies']}", f"{o['edit']}/{r['edits']}", o["distinct_flagged"],
            s.get("counts", {}).get("refuted_weak_matches", "-"),
            f"{s['load_before'][0]:.1f}-{s['load_after'][0]:.1f}", s["nice"])


HEADERS = ("images", "scan wall s", "scan CPU ms/image", "describe images/s (1 core)",
           "walk+hash images/s", "match images/s", "link+cluster images/s", "peak RSS MB (tree)",
           "descriptors/image", "store bytes/bank image", "copies found", "edits found",
           "distinct flagged", "weak matches refuted", "load (1-min, before-after)", "nice")


def plot(out: Path, rows: list[dict[str, Any]]) -> Path:
    """Per row: each stage's images/s, and the scan's CPU per image and peak RSS."""
    fig, (rates, costs) = plots.grid(2, ncols=2)
    labels = [f"{r['images']:,} (row {k + 1})" for k, r in enumerate(rows)]
    stages = {"walk+hash": "walk_and_hash", "match": "match", "link+cluster": "cluster"}
    plots.bars(rates, labels, {
        name: [r["images"] / r["scan"]["stages"].get(stage, float("nan")) for r in rows]
        for name, stage in stages.items()}, "images/s (stage wall time)")
    rates.set_title("stage throughput")
    rates.legend(fontsize="small", loc="upper left", bbox_to_anchor=(0, -0.35), ncols=3)
    plots.bars(costs, labels, {
        "scan CPU ms/image": [r["scan"]["cpu_seconds"] / r["images"] * 1000 for r in rows],
        "peak RSS (100 MB)": [r["scan"]["peak_rss_mb"] / 100 for r in rows]}, "")
    costs.set_title("cost per image, memory")
    return plots.save(fig, out / "media_scale.png")


def publish(out: Path, rows: list[dict[str, Any]], note: str = "") -> dict[str, Any]:
    imports = ", ".join(f"{r['bank']['images_per_s']:.1f}" for r in rows)
    describe_ms = ", ".join(f"{r['describe']['cpu_ms_per_image']:.1f}" for r in rows)
    lines = [
        f"Bank: {rows[0]['bank']['images']:,} originals imported with `bank import-media` "
        f"({imports} images/s). "
        f"Photos {LONG_SIDE[0]}-{LONG_SIDE[1]} px on the long side, JPEG q{JPEG_QUALITY}; "
        f"each case is 1 % byte copies of bank originals (known-bad), 1 % edited copies "
        f"({', '.join(EDIT_NAMES)}), the rest distinct photos.",
        "",
        "Rates per stage are images / the scan's stage wall time (summary.json `timings`); "
        "walk+hash includes decoding, digests, PDQ, pHash, sub-window PDQs and ORB in the "
        "hashing workers. 'describe' is ORB description alone on one core over "
        f"{rows[0]['describe']['images']} of the case's images "
        f"({describe_ms} ms CPU each).",
        "",
        "Edits found by: " + "; ".join(
            f"{r['images']:,}: local features {r['outcome']['edit_local']}, sub-window PDQ "
            f"{r['outcome']['edit_grid']}, in-case link {r['outcome']['edit_linked']}"
            for r in rows),
    ]
    lines += ["", "Weak matches refuted: the scan's pHash matches past the confirm radius (7-8 "
              "bits) to bank items whose local features did not verify them, dropped "
              "(summary `counts.refuted_weak_matches`; '-': a row run before 60126c4)."]
    if note:
        lines += ["", note]
    lines += ["", "Plot: `media_scale.png`."]
    result = {"rows": rows, "note": note}
    harness.write_results(out, "media_scale", result, HEADERS, [_row(r) for r in rows],
                          notes="\n".join(lines))
    plot(out, rows)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--merge", nargs="*", type=Path, default=None)
    ap.add_argument("--note", default="")
    ap.add_argument("--bank", type=int, default=BANK, help="bank originals (smoke runs)")
    args = ap.parse_args()
    if args.merge is not None:
        rows = [json.loads(p.read_text())["rows"][0] for p in args.merge]
        publish(args.out, sorted(rows, key=lambda r: r["images"]), args.note)
        return
    work = Path(tempfile.mkdtemp(prefix="media-scale-", dir=args.work))
    try:
        publish(args.out, [measure(args.images, work, args.bank)], args.note)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
