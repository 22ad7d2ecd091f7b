"""Ingest benchmark: hash-list import speed and memory at 10^6 and 10^7 entries.

Each import runs in a fresh child process (so its peak RSS is its own) into a new store:
plain MD5 lists, CSV (id, md5, sha1, category) and VICS JSON (Cases with Media: MD5, SHA-1,
PDQ), then a living-list re-import (`--replace`, 1 % of entries dropped, 1 % relabelled),
then the first import again with another connection holding the store open ("store shared":
as with a service or scan reading, the import stays under SQLite's WAL; alone, a large import
runs under a rollback journal, `index.store_schema.rollback_journal`).
The peer in the same run is the reference per-record parser feeding the same staging (what the
bulk paths replace). Records/s are given per CPU-second of the importing process (the machine
is shared by parallel jobs, so wall time is reported too, with the load average).

Run: `triage bench ingest [--quick]` or `python -m benchmarks.ingest [--part P ...]` (parts:
small = every format at 10^6 entries with --replace and the peer, or one of them: hashlist-6,
csv-6, vics-6; hashlist-7, csv-7, vics-7 = 10^7 entries; rdsv3), each merged into the same result.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import write_results
from benchmarks.plots import bars, grid, save

_CATEGORIES = ("cam", "cgi", "other")


def _md5(i: int) -> str:
    return hashlib.md5(i.to_bytes(8, "little")).hexdigest()


def _sha1(i: int) -> str:
    return hashlib.sha1(i.to_bytes(8, "little")).hexdigest()


def _pdq(i: int) -> str:
    return hashlib.sha256(i.to_bytes(8, "little")).hexdigest()


def write_list(path: Path, fmt: str, n: int, skip: int = 0, relabel: int = 0) -> None:
    """A synthetic list of `n` entries; with `skip`/`relabel`, every skip-th entry is left out
    and every relabel-th gets another category (a list's next version)."""
    def keep(i: int) -> bool:
        return not (skip and i % skip == 0)

    def category(i: int) -> str:
        return "new" if relabel and i % relabel == 1 else _CATEGORIES[i % 3]

    with open(path, "w", encoding="utf-8") as f:
        if fmt == "hashlist":
            for i in range(n):
                if keep(i):
                    f.write(_md5(i) + "\n")
        elif fmt == "csv":
            f.write("id,md5,sha1,category\n")
            for i in range(n):
                if keep(i):
                    f.write(f"m{i},{_md5(i)},{_sha1(i)},{category(i)}\n")
        else:
            f.write('{"odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml'
                    '#Cases",\n "value": [{"CaseID": 1, "Media": [\n')
            first = True
            for i in range(n):
                if not keep(i):
                    continue
                media = {"MediaID": i, "Category": i % 6, "MD5": _md5(i).upper(),
                         "SHA1": _sha1(i).upper(), "IsPrecategorized": True, "MediaSize": 1000 + i,
                         "AlternativeHashes": [{"HashName": "PDQ", "HashValue": _pdq(i),
                                                "Quality": 90}]}
                f.write(("" if first else ",\n") + json.dumps(media))
                first = False
            f.write("\n]}]}\n")


def _child(store: str, path: str, fmt: str, reference: bool, replace: str | None,
           shared: bool, queue: Any) -> None:
    # FAISS, which the index build loads, is loaded before the clock: ~0.2 s of CPU once per
    # process, not per record (the parsers and the store are imported before it too)
    import index.faiss_store  # noqa: F401
    from index import bank_import
    from index.banks import BankStore, ImportOptions
    from index.ingest.records import batched
    from index.store_schema import connect

    if reference:  # the peer: reference parsers, same staging and merge
        parsers = bank_import.PARSERS
        for name in list(bank_import.BATCHES):
            bank_import.BATCHES[name] = (
                lambda p, o, parse=parsers[name]: batched(parse(p, o)))
    with BankStore(store) as s:
        # shared: another connection holds the store open (a service or scan reading), so
        # the import stays under WAL; alone, a large one runs under a rollback journal
        reader = connect(s.db_path) if shared else None
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        result = s.import_file(path, ImportOptions(bank="b", format=fmt, version=replace or "1",
                                                   replace=replace is not None))
    queue.put({
        "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "records": result.records, "added": result.added, "updated": result.updated,
        "retracted": result.retracted,
    })
    if reader is not None:
        reader.close()


def _import(store: Path, path: Path, fmt: str, reference: bool = False,
            replace: str | None = None, shared: bool = False) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(str(store), str(path), fmt, reference, replace,
                                            shared, queue))
    proc.start()
    out: dict[str, Any] = queue.get()
    proc.join()
    out["records_per_cpu_s"] = out["records"] / out["cpu_s"]
    out["records_per_wall_s"] = out["records"] / out["wall_s"]
    out["load_avg"] = os.getloadavg()[0]
    return out


def _du(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


_PER_RECORD = {"hashlist": 1, "csv": 2, "vics": 3}  # hashes (store entries) per record
# Parts, each short enough for one hold of the shared machine's benchmark lock; every run
# merges its rows into result.json (each row records its commit and load) and rewrites the
# table and plot from all of them.
PARTS = ("small", "hashlist-6", "csv-6", "vics-6", "hashlist-7", "csv-7", "vics-7", "rdsv3")


def _lists(work: Path, fmt: str, entries: int, living: bool) -> list[dict[str, Any]]:
    """First import of a generated list of `entries` store entries (and, with `living`, the
    list's next version imported with --replace)."""
    n = entries // _PER_RECORD[fmt]
    path = work / f"list-{n}.{fmt}"
    write_list(path, fmt, n)
    store = work / f"store-{fmt}-{n}"
    rows = []
    try:
        got = _import(store, path, fmt)
        got.update(format=fmt, entries=entries, path="bulk", kind="first import",
                   list_mb=path.stat().st_size / 2**20, store_mb=_du(store))
        rows.append(got)
        print(fmt, n, f"{got['records_per_cpu_s']:,.0f} rec/CPU-s", flush=True)
        if living:
            nxt = work / f"next-{n}.{fmt}"
            write_list(nxt, fmt, n, skip=100, relabel=100)
            again = _import(store, nxt, fmt, replace="2")
            again.update(format=fmt, entries=entries, path="bulk",
                         kind="replace (1% dropped, 1% relabelled)",
                         list_mb=nxt.stat().st_size / 2**20, store_mb=_du(store))
            rows.append(again)
            nxt.unlink()
        shutil.rmtree(store)
        got = _import(store, path, fmt, shared=True)
        got.update(format=fmt, entries=entries, path="bulk", kind="first import, store shared",
                   list_mb=path.stat().st_size / 2**20, store_mb=_du(store))
        rows.append(got)
        print(fmt, n, "shared", f"{got['records_per_cpu_s']:,.0f} rec/CPU-s", flush=True)
    finally:
        shutil.rmtree(store, ignore_errors=True)
        path.unlink()
    return rows


def _peer(work: Path, fmt: str, n: int) -> dict[str, Any]:
    path = work / f"peer.{fmt}"
    write_list(path, fmt, n)
    peer = _import(work / f"store-peer-{fmt}", path, fmt, reference=True)
    peer.update(format=fmt, entries=n * _PER_RECORD[fmt], path="reference parser",
                kind="first import", list_mb=path.stat().st_size / 2**20, store_mb=0.0)
    shutil.rmtree(work / f"store-peer-{fmt}")
    path.unlink()
    return peer


def run(out_dir: str, quick: bool = False, parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    from benchmarks.harness import machine_info

    small = 20_000 if quick else 1_000_000  # store entries
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    rows: list[dict[str, Any]] = []
    nsrl: list[dict[str, Any]] = []
    try:
        for fmt in ("hashlist", "csv", "vics"):
            if "small" in parts or f"{fmt}-6" in parts:
                rows += _lists(work, fmt, small, living=True)
                rows.append(_peer(work, fmt, 5_000 if quick else 100_000))
        for fmt in ("hashlist", "csv", "vics"):
            if f"{fmt}-7" in parts and not quick:
                rows += _lists(work, fmt, 10_000_000, living=False)
        if "rdsv3" in parts:
            from benchmarks.ingest_rdsv3 import SIZES, measure

            nsrl = measure(work / "rdsv3", sizes=(20_000,) if quick else SIZES)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    commit = machine_info()["commit"]
    for r in rows + nsrl:
        r["commit"] = commit
    return _publish(out_dir, rows, nsrl, fresh=quick)


def _publish(out_dir: str, rows: list[dict[str, Any]], nsrl: list[dict[str, Any]],
             fresh: bool) -> dict[str, Any]:
    """Merge this run's rows with the earlier parts' (same key: replaced) and write it all."""
    old_file = Path(out_dir) / "result.json"
    if old_file.exists() and not fresh:
        old = json.loads(old_file.read_text())

        def key(r: dict[str, Any]) -> tuple[Any, ...]:
            return (r.get("format"), r.get("way"), r["entries"], r.get("path"), r.get("kind"))

        mine = {key(r) for r in rows + nsrl}
        rows = [r for r in old.get("rows", []) if "commit" in r and key(r) not in mine] + rows
        nsrl = [r for r in old.get("nsrl_rdsv3", []) if "commit" in r and key(r) not in mine] + nsrl
    order = {"hashlist": 0, "csv": 1, "vics": 2}
    rows.sort(key=lambda r: (order[r["format"]], r["path"] != "bulk", r["entries"], r["kind"]))
    nsrl.sort(key=lambda r: (r["files"], r["way"]))
    result = {"rows": rows, "nsrl_rdsv3": nsrl,
              "note": "records/s per CPU-second of the importing process"}
    table = [(r["format"], f"{r['records']:,}", f"{r['entries']:,}", r["path"], r["kind"],
              r["records_per_cpu_s"], r["records_per_wall_s"], r["cpu_s"], r["peak_rss_mb"],
              r["store_mb"], round(r["load_avg"], 1), r["commit"]) for r in rows]
    write_results(out_dir, "ingest", result,
                  ["format", "records", "entries", "parser", "import", "records/CPU-s",
                   "records/wall-s", "CPU s", "peak RSS MB", "store MB", "load avg", "commit"],
                  table,
                  notes="Targets: >= 200k records/s for line lists and CSV, >= 50k/s for VICS,"
                  " on one core (CPU-seconds of the importing process), memory flat in size."
                  " A CSV record carries 2 hashes (md5, sha1) and an id, a VICS Media record 3"
                  " (MD5, SHA-1, PDQ; the PDQ index is built inside the import's time); sizes"
                  " are store entries. Peak RSS is the importing process's own (modules are"
                  " loaded before its clock starts). \"store shared\": another connection"
                  " holds the store open (a service or scan reading), so the import stays under"
                  " WAL; alone, a large import runs under a rollback journal. Parts of the"
                  " benchmark ran one at a time under the shared machine's benchmark lock"
                  " (`python -m benchmarks.ingest --part ...`); each row gives its load and"
                  " commit.")
    from benchmarks.ingest_rdsv3 import section

    md = Path(out_dir) / "ingest.md"
    md.write_text(md.read_text() + section(nsrl))
    first = [r for r in rows if r["kind"] == "first import"]
    if first:
        labels = [f"{r['format']} {r['entries']:,}\n{r['path']}" for r in first]
        shared = {(r["format"], r["entries"]): r["records_per_cpu_s"] for r in rows
                  if r["kind"] == "first import, store shared"}
        fig, (a, b) = grid(2, ncols=2, panel_size=(9.0, 4.0))
        bars(a, labels, {
            "records / CPU-s (store to itself)": [r["records_per_cpu_s"] for r in first],
            "store shared (WAL)": [shared.get((r["format"], r["entries"]), 0.0) for r in first],
        }, "records/s")
        bars(b, labels, {"peak RSS MB": [r["peak_rss_mb"] for r in first]}, "MB")
        save(fig, Path(out_dir) / "ingest.png", title="bank import: speed and memory")
    return result


def publish_nsrl(out_dir: str, nsrl: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge RDSv3 rows measured on their own (`benchmarks.ingest_rdsv3`) into the result."""
    return _publish(out_dir, [], nsrl, fresh=False)


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--out", default="benchmarks/results/ingest")
    parser.add_argument("--part", action="append", choices=PARTS,
                        help="run only these parts (repeatable; default all), merged into --out")
    args = parser.parse_args()
    run(args.out, quick=args.quick, parts=tuple(args.part or PARTS))


if __name__ == "__main__":
    _main()
