"""The service's HTTP API (FastAPI on uvicorn): hash lookups and hash-list submission.

Why FastAPI: it is the most widely deployed and maintained ASGI framework in Python (on
Starlette), gives partners an OpenAPI description for free, and lets each endpoint read its
body as a stream, which the size and time limits below need. Litestar would do as well; it
has the smaller community.

Endpoints: `POST /v1/lookup`, `POST /v1/banks/{bank}/lists`, `GET /v1/reports/{id}`,
`GET /v1/banks`, `GET /healthz`. Every error is JSON `{"error": ..., "item": i?}`.

Lookups are answered by `triage.match.match_records` over the store's `BankMatcher`, the code
a scan matches with (dihedral variants and the policy's radii and quality floor included).
The matcher in use is swapped whole after an import, so lookups keep being answered from the
last good index while a list is imported and its index rebuilt (in a worker thread).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from hashing import codec
from hashing.errors import HashFormatError, TriageError
from hashing.registry import SPECS, spec
from hashing.types import HashRecord
from index.bank_import import PARSERS, ImportOptions, check_bank_name, check_options
from index.bank_types import BankInfo, ImportRejectedError
from index.banks import BankMatcher, BankStore
from index.errors import BankError
from service.audit import AuditLog
from service.config import ServiceConfig
from service.keys import ApiKey, ServiceDB
from service.limits import FailedKeys, RateLimiter
from triage.match import DIHEDRAL_NAMES, Reason, match_records
from triage.policy import Policy

log = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ApiError(Exception):
    """An error answered as JSON with a status (and the failing item of a batch)."""

    def __init__(self, status: int, message: str, item: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.item = item
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What lookups use: a matcher and the metadata of the banks it was opened over."""

    matcher: BankMatcher
    banks: dict[str, BankInfo]


class Banks:
    """The current snapshot, replaced atomically (one reference assignment) after a change."""

    def __init__(self, store_dir: str, matcher_factory: Callable[[BankStore], BankMatcher]) -> None:
        self.store_dir = store_dir
        self._factory = matcher_factory
        self._swap = threading.Lock()
        self.current = self._open()

    def _open(self) -> Snapshot:
        with BankStore(self.store_dir) as store:
            matcher = self._factory(store)
            return Snapshot(matcher, {b.name: b for b in store.list_banks()})

    def refresh(self) -> None:
        """Open a new matcher (rebuilding stale indexes) and swap it in; lookups running on the
        old one finish on it (it is closed when the last reference goes)."""
        with self._swap:
            self.current = self._open()


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


class AuditMiddleware:
    """Writes one audit line per request, after its response, with what the endpoint noted."""

    def __init__(self, app: Any, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        notes: dict[str, Any] = {}
        scope.setdefault("state", {})["audit"] = notes
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.audit.write(
                client=_client(scope), method=scope.get("method"), endpoint=scope.get("path"),
                status=status["code"], ms=round(1000 * (time.perf_counter() - started), 2),
                **notes,
            )


def create_app(
    store_dir: str,
    config: ServiceConfig | None = None,
    policy: Policy | None = None,
    matcher_factory: Callable[[BankStore], BankMatcher] | None = None,
) -> FastAPI:
    """The service over the bank store in `store_dir` (keys in its service.sqlite)."""
    cfg = config or ServiceConfig()
    pol = policy or Policy()
    store_dir = os.path.abspath(store_dir)
    BankStore(store_dir).close()  # creates the store directory (0700) when new
    db = ServiceDB(store_dir)
    interrupted = db.interrupted_jobs()
    if interrupted:
        log.warning("%d import jobs were interrupted by the last stop; marked failed", interrupted)
    audit = AuditLog(store_dir)
    banks = Banks(store_dir, matcher_factory or (lambda store: store.open_matcher()))
    rates = RateLimiter(cfg.rate_per_second, cfg.rate_burst)
    failures = FailedKeys(cfg.failed_auth_limit, cfg.failed_auth_window)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import")
    uploads = os.path.join(store_dir, "uploads")
    os.makedirs(uploads, mode=0o700, exist_ok=True)

    app = FastAPI(title="osec-triage hash service", version="1",
                  docs_url=None, redoc_url=None)  # no browser UI on a hash service
    app.state.banks = banks
    app.state.db = db

    def note(request: Request, **fields: Any) -> None:
        request.scope.setdefault("state", {}).setdefault("audit", {}).update(fields)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        note(request, error=exc.message, item=exc.item)
        body: dict[str, Any] = {"error": exc.message}
        if exc.item is not None:
            body["item"] = exc.item
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_params(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid')}"
        note(request, error=message)
        return JSONResponse({"error": message}, status_code=400)

    def authenticate(request: Request, roles: tuple[str, ...]) -> ApiKey:
        address = _client(request.scope)
        wait = failures.blocked(address)
        if wait:
            raise ApiError(429, "too many requests with a wrong key from this address",
                           headers={"Retry-After": str(int(wait) + 1)})
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        key = db.authenticate(token.strip()) if scheme.lower() == "bearer" and token else None
        if key is None:
            failures.failed(address)
            raise ApiError(401, "missing, wrong or revoked API key",
                           headers={"WWW-Authenticate": "Bearer"})
        note(request, key=key.name, role=key.role)
        wait = rates.allow(key.name)
        if wait:
            raise ApiError(429, "rate limit exceeded for this key",
                           headers={"Retry-After": str(int(wait) + 1)})
        if key.role not in roles:
            raise ApiError(403, f"a {key.role} key may not use this endpoint")
        return key

    async def body_chunks(request: Request, limit: int) -> Any:
        """The request body in chunks, cut off past `limit` bytes (413) or when it is not all
        there within the configured time (408), so slow senders hold nothing for long."""
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ApiError(400, "bad Content-Length")
            if int(declared) > limit:
                raise ApiError(413, f"body of {declared} bytes exceeds the limit of {limit}",
                               headers={"Connection": "close"})
        deadline = time.monotonic() + cfg.body_timeout
        size = 0
        stream = request.stream().__aiter__()
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                chunk = await asyncio.wait_for(stream.__anext__(), remaining)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise ApiError(408, f"body not received within {cfg.body_timeout:g} s",
                               headers={"Connection": "close"}) from None
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"body exceeds the limit of {limit} bytes",
                               headers={"Connection": "close"})
            yield chunk

    # -- lookup ----------------------------------------------------------------------------

    def query_record(i: int, item: Any) -> HashRecord:
        if not isinstance(item, dict):
            raise ApiError(400, "a hash item must be an object with 'algo' and 'hash'", i)
        algo = item.get("algo")
        if not isinstance(algo, str) or algo.lower() not in SPECS:
            raise ApiError(400, f"unknown algorithm {algo!r}: one of {', '.join(SPECS)}", i)
        algo = algo.lower()
        value = item.get("hash")
        if not isinstance(value, str):
            raise ApiError(400, "'hash' must be a hex string", i)
        try:
            hex_ = codec.normalise_hex(algo, value)
        except HashFormatError as e:
            raise ApiError(400, f"{algo} hash: {e.reason}", i) from None
        quality = item.get("quality")
        if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int)
                                    or not 0 <= quality <= 100):
            raise ApiError(400, "'quality' must be an integer 0-100", i)
        dihedral = item.get("dihedral")
        variants: tuple[str, ...] | None = None
        if dihedral is not None:
            if algo != "pdq" or not isinstance(dihedral, list) or len(dihedral) != len(
                    DIHEDRAL_NAMES) or not all(isinstance(d, str) for d in dihedral):
                raise ApiError(400, "'dihedral' must be the 8 PDQ hashes of the image's"
                               f" dihedral transforms, in the order {', '.join(DIHEDRAL_NAMES)}",
                               i)
            try:
                variants = tuple(codec.normalise_hex("pdq", d) for d in dihedral)
            except HashFormatError as e:
                raise ApiError(400, f"dihedral pdq hash: {e.reason}", i) from None
        if spec(algo).kind != "perceptual" and (quality is not None):
            raise ApiError(400, "'quality' applies to perceptual hashes only", i)
        return HashRecord(path=f"query {i}", status="hashed", hashes={algo: hex_},
                          pdq_quality=quality if algo == "pdq" else None, pdq_dihedral=variants)

    def match_dict(r: Reason, snap: Snapshot) -> dict[str, Any]:
        info = snap.banks.get(r.bank or "")
        out: dict[str, Any] = {
            "bank": r.bank, "entry": r.entry, "algo": r.algo, "distance": r.distance,
            "kind": r.kind, "category": r.category,
            "source": info.source if info else None, "version": info.version if info else None,
        }
        if r.variant is not None:
            out["variant"] = r.variant
        if r.known_good:
            out["known_good"] = True
        return out

    @app.post("/v1/lookup")
    async def lookup(request: Request) -> JSONResponse:
        key = authenticate(request, ("lookup", "admin"))
        body = b"".join([c async for c in body_chunks(request, cfg.max_lookup_bytes)])
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError) as e:
            raise ApiError(400, f"malformed JSON: {e}") from None
        items = doc.get("hashes") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise ApiError(400, "expected {\"hashes\": [{\"algo\": ..., \"hash\": ...}, ...]}")
        if len(items) > cfg.max_lookup_hashes:
            raise ApiError(413, f"{len(items)} hashes in one lookup; the limit is"
                           f" {cfg.max_lookup_hashes}")
        records = [query_record(i, item) for i, item in enumerate(items)]
        if cfg.audit_hashes:
            note(request, hashes=[dict(r.hashes) for r in records])
        snap = banks.current
        reasons = await run_in_threadpool(match_records, records, snap.matcher, pol)
        results = []
        matched = 0
        for i, found in enumerate(reasons):
            visible = [match_dict(r, snap) for r in found if r.bank and key.sees(r.bank)]
            matched += bool(visible)
            results.append({"query": i, "matches": visible})
        note(request, hashes_asked=len(records), queries_matched=matched)
        return JSONResponse({"results": results})

    # -- lists -----------------------------------------------------------------------------

    def run_import(job: str, path: str, options: ImportOptions) -> None:
        """One import job (in the worker thread): the report is published only after the new
        matcher is in use, so a client that saw "done" gets answers from the new list."""
        db.set_job(job, "running")
        state, report = "failed", None
        try:
            with BankStore(store_dir) as store:
                try:
                    result = store.import_file(path, options)
                except ImportRejectedError as e:
                    result = e.result
            report = result.to_dict()
            report["file"] = f"upload {job}"  # not the service's temp path
            if result.status == "imported":
                banks.refresh()
            state = "done"
        except (TriageError, OSError) as e:
            report = {"error": str(e).replace(path, f"upload {job}")}
        except Exception as e:  # the worker must outlive any one job
            log.exception("import job %s failed", job)
            report = {"error": f"internal error: {type(e).__name__}"}
        finally:
            try:
                os.remove(path)
            except OSError:
                pass
            db.set_job(job, state, report)

    @app.post("/v1/banks/{bank}/lists", status_code=202)
    async def submit(request: Request, bank: str, format: str = "auto",
                     replace: bool = False, version: str | None = None,
                     algo: str | None = None, scheme: str | None = None) -> JSONResponse:
        key = authenticate(request, ("partner", "admin"))
        try:
            check_bank_name(bank)
        except BankError as e:
            raise ApiError(400, str(e)) from None
        if key.role != "admin" and bank not in key.banks:
            raise ApiError(403, f"key {key.name!r} may not submit lists to bank {bank!r}")
        if format not in ("auto", *PARSERS):
            raise ApiError(400, f"format {format!r}: one of auto, {', '.join(PARSERS)}")
        if scheme is not None and scheme not in ("vic", "caid"):
            raise ApiError(400, "scheme: vic or caid")
        if algo is not None and algo.lower() not in SPECS:
            raise ApiError(400, f"unknown algorithm {algo!r}")
        options = ImportOptions(bank=bank, format=format, replace=replace, version=version,
                                algo=algo.lower() if algo else None, scheme=scheme,
                                source=key.name)
        try:
            check_options(options)
        except BankError as e:
            raise ApiError(400, str(e)) from None
        path = os.path.join(uploads, f"{secrets.token_hex(12)}.list")
        size = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in body_chunks(request, cfg.max_list_bytes):
                    f.write(chunk)
                    size += len(chunk)
        except BaseException:
            os.remove(path)
            raise
        if size == 0:
            os.remove(path)
            raise ApiError(400, "empty body: send the hash list as the request body")
        job = db.add_job(key.name, bank)
        note(request, bank=bank, bytes=size, report=job, replace=replace)
        worker.submit(run_import, job, path, options)
        return JSONResponse({"report": job, "state": "queued", "url": f"/v1/reports/{job}"},
                            status_code=202)

    @app.get("/v1/reports/{job}")
    async def report(request: Request, job: str) -> JSONResponse:
        key = authenticate(request, ("partner", "admin", "lookup"))
        found = db.job(job) if job.isalnum() else None
        if found is None:
            raise ApiError(404, f"no report {job!r}")
        if key.role != "admin" and found["key"] != key.name:
            raise ApiError(403, "this report belongs to another key")
        note(request, report=job, state=found["state"])
        return JSONResponse(found)

    @app.get("/v1/banks")
    async def list_banks(request: Request) -> JSONResponse:
        key = authenticate(request, ("partner", "admin", "lookup"))
        snap = banks.current
        visible = [b.to_dict() for name, b in sorted(snap.banks.items()) if key.sees(name)]
        note(request, banks=len(visible))
        return JSONResponse({"banks": visible})

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        snap = banks.current
        return JSONResponse({"status": "ok", "banks": len(snap.banks),
                             "indexes": snap.matcher.index_checksums()})

    def close() -> None:
        """Finish the running import job, then release files (called when the server stops)."""
        worker.shutdown(wait=True)
        audit.close()
        db.close()

    app.state.close = close
    app.add_middleware(AuditMiddleware, audit=audit)
    return app
