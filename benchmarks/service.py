"""Service load benchmark: `POST /v1/lookup` on loopback against PDQ banks of 10^6 and 10^7
entries, with our Hamming index and with FAISS (IndexBinaryFlat) behind the same endpoint.

The server is the real one (`triage serve`'s app on uvicorn) in a child process; the client
sends sequential requests on one keep-alive connection, bounded in count and time, of 1 hash
and of 100 hashes (half near copies of bank entries, half random), and reports lookups/s,
p50/p99 latency and the server's resident memory.

Run: `triage bench service [--quick]` or `python -m benchmarks.service [--keep DIR]`
(`--keep DIR --build-only` first builds the bank stores once, outside the timed run).
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import write_results
from benchmarks.plots import bars, grid, save

_BUDGET_S = 20.0  # per (bank, engine, request size): 8 of them, one lock hold
_COUNTS = {1: 400, 100: 40}


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


def _serve(store: str, engine: str, queue: Any) -> None:
    import uvicorn

    from service.app import create_app
    from service.config import ServiceConfig
    from service.server import config

    cfg = ServiceConfig(rate_per_second=1e9, rate_burst=10**9, max_lookup_hashes=1000)
    factory = FaissMatcher if engine == "faiss-flat" else None
    app = create_app(store, cfg, matcher_factory=factory)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
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
    """A store with one PDQ bank of `n` random codes (and the codes). Under `work`, a store
    left by an earlier run (with its codes file) is used again: building 10^7 entries takes
    minutes, and only the lookups are timed."""
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
        f.write("id,pdq,quality,category\n")
        for start in range(0, n, 100_000):
            f.write("".join(f"p{start + i},{row.tobytes().hex()},90,cam\n"
                            for i, row in enumerate(codes[start:start + 100_000])))
    if store.exists():
        shutil.rmtree(store)
    with BankStore(store) as s:
        s.import_file(str(path), ImportOptions(bank="bench", format="csv", version="1"))
        s.open_matcher().close()  # builds the PDQ index file
    path.unlink()
    np.save(kept, codes)
    return store, codes


def _queries(codes: np.ndarray, count: int, rng: np.random.Generator) -> list[str]:
    """Half near copies of bank codes (8 bits flipped), half random codes."""
    out = []
    for k in range(count):
        if k % 2 == 0:
            row = codes[int(rng.integers(len(codes)))].copy()
            for bit in rng.choice(256, 8, replace=False):
                row[bit // 8] ^= 1 << (bit % 8)
        else:
            row = rng.integers(0, 256, 32, dtype=np.uint8)
        out.append(row.tobytes().hex())
    return out


def _load(port: int, key: str, hashes: list[str], per_request: int) -> dict[str, Any]:
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
        chunk = [hashes[(r * per_request + j) % len(hashes)] for j in range(per_request)]
        body = json.dumps({"hashes": [{"algo": "pdq", "hash": h} for h in chunk]})
        t0 = time.perf_counter()
        con.request("POST", "/v1/lookup", body=body, headers=headers)
        resp = con.getresponse()
        doc = json.loads(resp.read())
        latencies.append(time.perf_counter() - t0)
        if resp.status != 200:
            raise RuntimeError(f"lookup failed: {resp.status} {doc}")
        matched += sum(bool(x["matches"]) for x in doc["results"])
        if time.perf_counter() - started > _BUDGET_S:
            break
    elapsed = time.perf_counter() - started
    con.close()
    ms = sorted(1000 * x for x in latencies)
    return {
        "requests": len(ms), "hashes_per_request": per_request,
        "lookups_per_s": len(ms) * per_request / elapsed,
        "p50_ms": statistics.median(ms), "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        "matched_fraction": matched / (len(ms) * per_request),
    }


def run(out_dir: str, quick: bool = False, keep: str | None = None,
        build_only: bool = False) -> dict[str, Any]:
    """With `keep`, the bank stores are built (once) and kept in that directory; with
    `build_only`, nothing else is done (build them outside the benchmark lock)."""
    from service.keys import ServiceDB

    sizes = [10_000] if quick else [1_000_000, 10_000_000]
    rng = np.random.default_rng(15)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="service-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if build_only:
        for n in sizes:
            _bank(work, n, rng)
        return {}
    rows: list[dict[str, Any]] = []
    ctx = multiprocessing.get_context("spawn")
    try:
        for n in sizes:
            t0 = time.perf_counter()
            store, codes = _bank(work, n, rng)
            built = time.perf_counter() - t0  # ~0 for a kept store
            store_mb = sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 2**20
            db = ServiceDB(str(store))
            key = db.add_key(f"bench{n}", "lookup")
            db.close()
            hashes = _queries(codes, 4000, rng)
            del codes
            for engine in ("hamming (ours)", "faiss-flat"):
                queue = ctx.Queue()
                proc = ctx.Process(target=_serve, args=(str(store), engine, queue), daemon=True)
                proc.start()
                port = queue.get(timeout=1800)
                for _ in range(3000):  # until it answers (the matcher loads first)
                    try:
                        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                        c.request("GET", "/healthz")
                        c.getresponse().read()
                        c.close()
                        break
                    except OSError:
                        time.sleep(0.1)
                _load(port, key, hashes[:50], 1)  # warm up (numba, MIH tables)
                for per_request in (1, 100):
                    cpu0 = _cpu_s(proc.pid)
                    got = _load(port, key, hashes, per_request)
                    cpu = _cpu_s(proc.pid) - cpu0
                    got["server_cpu_ms_per_request"] = 1000 * cpu / got["requests"]
                    got["lookups_per_server_cpu_s"] = (
                        got["requests"] * per_request / cpu if cpu else float("inf"))
                    rss, peak = _rss_mb(proc.pid)
                    got.update(entries=n, engine=engine, server_rss_mb=rss, server_peak_mb=peak,
                               store_build_s=built, store_mb=store_mb,
                               load_avg=os.getloadavg()[0])
                    rows.append(got)
                    print(n, engine, per_request, f"{got['lookups_per_s']:,.0f}/s",
                          f"p50 {got['p50_ms']:.1f} ms p99 {got['p99_ms']:.1f} ms", flush=True)
                proc.terminate()
                proc.join(30)
            if not keep:
                shutil.rmtree(store)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {"rows": rows, "budget_s": _BUDGET_S, "max_requests": _COUNTS}
    table = [(f"{r['entries']:,}", r["engine"], r["hashes_per_request"], r["requests"],
              r["lookups_per_s"], r["p50_ms"], r["p99_ms"], r["server_cpu_ms_per_request"],
              r["lookups_per_server_cpu_s"], r["server_rss_mb"], r["matched_fraction"],
              round(r["load_avg"], 1)) for r in rows]
    write_results(out_dir, "service", result,
                  ["bank entries", "index", "hashes/request", "requests", "lookups/s (wall)",
                   "p50 ms", "p99 ms", "server CPU ms/request", "lookups/server-CPU-s",
                   "server RSS MB", "matched", "load avg"], table,
                  notes="POST /v1/lookup on loopback, sequential requests on one connection;"
                  " PDQ radius 31; half the queries are 8-bit variants of bank entries. Wall"
                  " latencies include the shared machine's queueing (see load avg); server CPU"
                  " per request does not. Server RSS is after the run (peak and store size in"
                  " result.json).")
    labels = [f"{r['entries']:,}\n{r['engine']}\n{r['hashes_per_request']}/req" for r in rows]
    fig, (a, b) = grid(2, ncols=2, panel_size=(8.0, 4.2))
    bars(a, labels, {"lookups/s": [r["lookups_per_s"] for r in rows]}, "lookups/s")
    bars(b, labels, {"p50 ms": [r["p50_ms"] for r in rows],
                     "p99 ms": [r["p99_ms"] for r in rows]}, "ms")
    save(fig, Path(out_dir) / "service.png", title="hash service: lookups on loopback")
    return result


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--out", default="benchmarks/results/service")
    parser.add_argument("--keep", default=None, help="build the bank stores once, keep them here")
    parser.add_argument("--build-only", action="store_true", help="only build the kept stores")
    args = parser.parse_args()
    run(args.out, quick=args.quick, keep=args.keep, build_only=args.build_only)


if __name__ == "__main__":
    _main()
