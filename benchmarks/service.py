"""Service load benchmark: `POST /v1/lookup` on loopback against banks of 10^6 and 10^7 entries
(each entry a PDQ hash and an MD5), with our Hamming index and with FAISS (IndexBinaryFlat)
behind the same endpoint.

The server is the real one (`triage serve`'s app on uvicorn) in a child process; the client
sends sequential requests on one keep-alive connection, bounded in count and time, of 1 hash
and of 100 hashes, and reports lookups/s, p50/p99 latency, the server's CPU per request and its
memory (resident and peak, VmHWM; what loading the matcher cost; the index's own bytes).
Queries are what a scan asks: a PDQ item carries its quality and the 8 hashes of its image's
dihedral transforms (the original a near copy of a bank entry, 8 bits flipped, for half the
items; random for the rest), matched at the policy's radius (31); an MD5 item is an exact
lookup, half present in the bank, half absent. MD5 lookups do not touch the perceptual index,
so they run with our matcher only.

Run: `triage bench service [--quick]` or `python -m benchmarks.service [--keep DIR]
[--size N ...]` (`--keep DIR --build-only` first builds the bank stores once, outside the timed
run; a run of some sizes merges its rows with the result's rows of the others).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import machine_info, write_results
from benchmarks.plots import bars, grid, save

_BUDGET_S = 20.0  # per (bank, engine, algorithm, request size): 6 of them per bank
_COUNTS = {1: 400, 100: 40}
_SIZES = (1_000_000, 10_000_000)


def _md5(i: int) -> str:
    """The MD5 of bank entry `i` (entries past the bank's size are absent from it)."""
    return hashlib.md5(b"service-bench-%d" % i).hexdigest()


class FaissMatcher:
    """The store's matcher with FAISS's exact flat index in place of our Hamming index."""

    def __init__(self, store: Any) -> None:
        from index.bank_index import load_fresh
        from index.faiss_store import FaissBinaryIndex
        from index.store_schema import connect

        self.inner = store.open_matcher()
        con = connect(store.db_path)
        self.indexes = {}
        for algo in ("pdq",):
            _, rows = self.inner.perceptual(algo)
            self.indexes[algo] = (FaissBinaryIndex(load_fresh(con, store.dir, algo).codes), rows)
        con.close()

    def lookup_digest(self, algorithm: str, hex_: str) -> Any:
        return self.inner.lookup_digest(algorithm, hex_)

    def perceptual(self, algorithm: str) -> Any:
        return self.indexes.get(algorithm) or self.inner.perceptual(algorithm)

    def index_checksums(self) -> dict[str, str]:
        return self.inner.index_checksums()


def _index_bytes(matcher: Any) -> int:
    """Bytes the PDQ index holds in memory: its codes and any search tables built over them."""
    index, _ = matcher.perceptual("pdq")
    if isinstance(matcher, FaissMatcher):
        return int(index.ntotal) * int(index.nbytes)  # IndexBinaryFlat copies the codes
    return int(index.codes.nbytes) + int(index.table_bytes)


def _serve(store: str, engine: str, queue: Any, ask: Any) -> None:
    import uvicorn

    from service.app import create_app
    from service.config import ServiceConfig
    from service.server import config, loopback_socket

    before, _ = _rss_mb(os.getpid())
    cfg = ServiceConfig(rate_per_second=1e9, rate_burst=10**9, max_lookup_hashes=1000)
    factory = FaissMatcher if engine == "faiss-flat" else None
    app = create_app(store, cfg, matcher_factory=factory)
    after, _ = _rss_mb(os.getpid())

    def answer() -> None:  # the parent asks for the memory figures after each load
        while ask.get() is not None:
            rss, peak = _rss_mb(os.getpid())
            queue.put({"server_rss_mb": rss, "server_peak_mb": peak,
                       "matcher_load_mb": after - before,
                       "index_mb": _index_bytes(app.state.banks.current.matcher) / 2**20})

    threading.Thread(target=answer, daemon=True).start()
    sock = loopback_socket()
    queue.put(sock.getsockname()[1])
    uvicorn.Server(config(app, "127.0.0.1", sock.getsockname()[1])).run(sockets=[sock])


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set of a process, MB."""
    fields = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bank(work: Path, n: int, rng: np.random.Generator) -> tuple[Path, np.ndarray]:
    """A store with one bank of `n` entries, each a random PDQ code and an MD5 (and the
    codes). Under `work`, a store left by an earlier run (with its codes file) is used again:
    building 10^7 entries takes many minutes, and only the lookups are timed."""
    from index.banks import BankStore, ImportOptions

    store = work / f"store-{n}"
    kept = work / f"codes-{n}.npy"
    if store.exists() and kept.exists():
        return store, np.load(kept)
    codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    # a partner's CSV with its own short ids (entry ids as long as the hash would double the
    # store's size: 10^7 entries must fit the shared machine's disk)
    path = work / f"bank-{n}.csv"
    with open(path, "w", encoding="ascii") as f:
        f.write("id,pdq,md5,quality,category\n")
        for start in range(0, n, 100_000):
            f.write("".join(
                f"p{start + i},{row.tobytes().hex()},{_md5(start + i)},90,cam\n"
                for i, row in enumerate(codes[start:start + 100_000])))
    if store.exists():
        shutil.rmtree(store)
    with BankStore(store) as s:
        s.import_file(str(path), ImportOptions(bank="bench", format="csv", version="1"))
        s.open_matcher().close()  # builds the PDQ index file
    path.unlink()
    np.save(kept, codes)
    return store, codes


def _flip(row: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    out = row.copy()
    for bit in rng.choice(256, bits, replace=False):
        out[bit // 8] ^= 1 << (bit % 8)
    return out


def _pdq_items(codes: np.ndarray, count: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """PDQ items as a scan sends them: quality and 8 dihedral hashes, the first the hash
    itself. Even items are near copies of bank codes (8 bits flipped), odd ones random."""
    out = []
    for k in range(count):
        first = (_flip(codes[int(rng.integers(len(codes)))], 8, rng) if k % 2 == 0
                 else rng.integers(0, 256, 32, dtype=np.uint8))
        turned = [first] + [rng.integers(0, 256, 32, dtype=np.uint8) for _ in range(7)]
        hexes = [t.tobytes().hex() for t in turned]
        out.append({"algo": "pdq", "hash": hexes[0], "quality": 90, "dihedral": hexes})
    return out


def _md5_items(n: int, count: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """MD5 items, even ones of bank entries, odd ones absent from the bank."""
    return [{"algo": "md5", "hash": _md5(int(rng.integers(n)) if k % 2 == 0 else n + k)}
            for k in range(count)]


def _load(port: int, key: str, items: list[dict[str, Any]], per_request: int,
          budget_s: float = _BUDGET_S) -> dict[str, Any]:
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    con.connect()
    # http.client sends the headers and the body in two writes: without TCP_NODELAY, Nagle
    # holds the body until the server's delayed ACK (~40 ms), which would be measured as latency
    con.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies = []
    matched = 0
    started = time.perf_counter()
    for r in range(_COUNTS[per_request]):
        chunk = [items[(r * per_request + j) % len(items)] for j in range(per_request)]
        body = json.dumps({"hashes": chunk})
        t0 = time.perf_counter()
        con.request("POST", "/v1/lookup", body=body, headers=headers)
        resp = con.getresponse()
        doc = json.loads(resp.read())
        latencies.append(time.perf_counter() - t0)
        if resp.status != 200:
            raise RuntimeError(f"lookup failed: {resp.status} {doc}")
        matched += sum(bool(x["matches"]) for x in doc["results"])
        if time.perf_counter() - started > budget_s:
            break
    elapsed = time.perf_counter() - started
    con.close()
    ms = sorted(1000 * x for x in latencies)
    return {
        "requests": len(ms), "hashes_per_request": per_request, "wall_s": elapsed,
        "lookups_per_s": len(ms) * per_request / elapsed,
        "p50_ms": statistics.median(ms), "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        "matched_fraction": matched / (len(ms) * per_request),
    }


def _wait_healthy(port: int) -> None:
    for _ in range(6000):  # until it answers (the matcher loads first)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/healthz")
            c.getresponse().read()
            c.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the service did not answer")


def _measure(store: Path, n: int, engine: str, key: str, pdq: list[dict[str, Any]],
             md5: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One server with `engine` behind the endpoint; its rows (PDQ, and MD5 for ours)."""
    ctx = multiprocessing.get_context("spawn")
    queue, ask = ctx.Queue(), ctx.Queue()
    t0 = time.perf_counter()
    proc = ctx.Process(target=_serve, args=(str(store), engine, queue, ask), daemon=True)
    proc.start()
    rows = []
    try:
        port = queue.get(timeout=3600)
        _wait_healthy(port)
        start_s = time.perf_counter() - t0
        runs = [("pdq", pdq)] + ([("md5", md5)] if engine != "faiss-flat" else [])
        for algo, items in runs:
            _load(port, key, items[:16], 1, budget_s=30)  # warm up (numba, MIH tables, pages)
            for per_request in (1, 100):
                cpu0 = _cpu_s(proc.pid)
                got = _load(port, key, items, per_request)
                cpu = _cpu_s(proc.pid) - cpu0
                ask.put("memory")
                got.update(queue.get(timeout=60))
                got["server_cpu_ms_per_request"] = 1000 * cpu / got["requests"]
                got["lookups_per_server_cpu_s"] = (
                    got["requests"] * per_request / cpu if cpu else float("inf"))
                got.update(entries=n, engine=engine, algo=algo, server_start_s=start_s,
                           load_avg=os.getloadavg()[0])
                rows.append(got)
                print(n, engine, algo, per_request, f"{got['lookups_per_s']:,.0f}/s",
                      f"p50 {got['p50_ms']:.1f} ms p99 {got['p99_ms']:.1f} ms",
                      f"peak {got['server_peak_mb']:,.0f} MB", flush=True)
    finally:
        ask.put(None)
        proc.terminate()
        proc.join(30)
    return rows


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["entries"], r["engine"], r.get("algo", "pdq"), r["hashes_per_request"])


def run(out_dir: str, quick: bool = False, keep: str | None = None,
        build_only: bool = False, sizes: tuple[int, ...] | None = None) -> dict[str, Any]:
    """With `keep`, the bank stores are built (once) and kept in that directory; with
    `build_only`, nothing else is done (build them outside the benchmark lock). `sizes`
    measures only those banks; the rows of other sizes in `out_dir`'s result are kept."""
    from service.keys import ServiceDB

    sizes = sizes or ((10_000,) if quick else _SIZES)
    rng = np.random.default_rng(15)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="service-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if build_only:
        for n in sizes:
            _bank(work, n, rng)
        return {}
    rows: list[dict[str, Any]] = []
    try:
        for n in sizes:
            t0 = time.perf_counter()
            store, codes = _bank(work, n, rng)
            built = time.perf_counter() - t0  # ~0 for a kept store
            store_mb = sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 2**20
            db = ServiceDB(str(store))
            key = db.add_key(f"bench{n}-{os.getpid()}-{int(time.time())}", "lookup")
            db.close()
            # queries from a stream of their own: drawn from the bank's stream, "random" codes
            # would repeat bank codes (each a run of the same generator's bytes)
            queries = np.random.default_rng([16, n])
            pdq = _pdq_items(codes, 4000, queries)
            md5 = _md5_items(n, 4000, queries)
            del codes
            for engine in ("hamming (ours)", "faiss-flat"):
                for got in _measure(store, n, engine, key, pdq, md5):
                    got.update(store_build_s=built, store_mb=store_mb)
                    rows.append(got)
            if not keep:
                shutil.rmtree(store)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    commit = machine_info()["commit"]
    for r in rows:
        r["commit"] = commit
    return _publish(out_dir, rows, fresh=quick)


def _publish(out_dir: str, rows: list[dict[str, Any]], fresh: bool) -> dict[str, Any]:
    """Merge this run's rows with the result's earlier rows of other sizes, and write it all."""
    old_file = Path(out_dir) / "result.json"
    if old_file.exists() and not fresh:
        mine = {_key(r) for r in rows}
        old = json.loads(old_file.read_text()).get("rows", [])
        rows = [r for r in old if "commit" in r and "algo" in r and _key(r) not in mine] + rows
    engines = {"hamming (ours)": 0, "faiss-flat": 1}
    rows.sort(key=lambda r: (r["entries"], r["algo"] != "pdq", engines[r["engine"]],
                             r["hashes_per_request"]))
    result = {"rows": rows, "budget_s": _BUDGET_S, "max_requests": _COUNTS}
    table = [(f"{r['entries']:,}", r["algo"], r["engine"], r["hashes_per_request"],
              r["requests"], r["lookups_per_s"], r["p50_ms"], r["p99_ms"],
              r["server_cpu_ms_per_request"], r["lookups_per_server_cpu_s"],
              r["server_peak_mb"], r["matcher_load_mb"], r["index_mb"], r["store_mb"],
              r["matched_fraction"], round(r["load_avg"], 1), r["commit"]) for r in rows]
    write_results(out_dir, "service", result,
                  ["bank entries", "lookup", "index", "hashes/request", "requests",
                   "lookups/s (wall)", "p50 ms", "p99 ms", "server CPU ms/request",
                   "lookups/server-CPU-s", "server peak RSS MB", "matcher load MB",
                   "PDQ index MB", "store MB", "matched", "load avg", "commit"], table,
                  notes="POST /v1/lookup through the real server (uvicorn) on loopback,"
                  " sequential requests on one keep-alive connection, at most"
                  f" {_COUNTS[1]} single-hash or {_COUNTS[100]} 100-hash requests or"
                  f" {_BUDGET_S:g} s per row. Each bank entry is a PDQ hash and an MD5. A PDQ"
                  " item is what a scan sends: quality 90 and the 8 dihedral hashes (8 range"
                  " queries at the policy radius 31; half the items are 8-bit variants of bank"
                  " entries, so matched ~0.5); an MD5 item is an exact lookup, half present."
                  " Wall latencies include the shared machine's queueing (see load avg); server"
                  " CPU per request does not. Peak RSS is the server's VmHWM after the row;"
                  " matcher load is what opening the banks added to its RSS; PDQ index MB is"
                  " the codes and search tables (FAISS flat holds a copy of the codes; ours maps"
                  " the index file). MD5 lookups never touch the PDQ index, so they run with our"
                  " matcher only.")
    pdq = [r for r in rows if r["algo"] == "pdq"]
    labels = [f"{r['entries']:.0e}\n{r['engine'].split()[0]}\n{r['hashes_per_request']}/req"
              for r in pdq]
    loads = sorted({round(r["load_avg"], 1) for r in rows})
    commits = sorted({r["commit"] for r in rows})
    fig, (a, b, c) = grid(3, ncols=3, panel_size=(6.0, 4.2))
    bars(a, labels, {"PDQ lookups/s": [r["lookups_per_s"] for r in pdq]}, "lookups/s")
    bars(b, labels, {"p50 ms": [r["p50_ms"] for r in pdq],
                     "p99 ms": [r["p99_ms"] for r in pdq]}, "ms")
    bars(c, labels, {"server peak RSS MB": [r["server_peak_mb"] for r in pdq]}, "MB")
    save(fig, Path(out_dir) / "service.png",
         title=f"hash service, PDQ lookups on loopback (commit {', '.join(commits)};"
         f" load {loads[0]}-{loads[-1]})" if loads else "hash service")
    return result


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--out", default="benchmarks/results/service")
    parser.add_argument("--keep", default=None, help="build the bank stores once, keep them here")
    parser.add_argument("--build-only", action="store_true", help="only build the kept stores")
    parser.add_argument("--size", type=int, action="append",
                        help="bank sizes to build or measure (repeatable; default 10^6 and 10^7)")
    args = parser.parse_args()
    run(args.out, quick=args.quick, keep=args.keep, build_only=args.build_only,
        sizes=tuple(args.size) if args.size else None)


if __name__ == "__main__":
    _main()
