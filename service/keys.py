"""API keys and import jobs of the service, in `<store>/service.sqlite` (apart from the banks).

A key is shown once when created and stored only as its SHA-256: keys are 256-bit random
tokens, so a fast hash is enough (a slow KDF protects guessable passwords, not these), and
looking a key up by its hash needs no constant-time comparison of secrets. Every request
reads the key's row, so a revocation takes effect at the next request.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from index.bank_import import check_bank_name
from index.errors import BankError

ROLES = ("partner", "lookup", "admin")
_PREFIX = "osk_"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    banks TEXT NOT NULL,
    key_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    key_name TEXT NOT NULL,
    bank TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    report TEXT
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    role: str
    banks: tuple[str, ...]  # partner: the banks it may submit to; lookup: the banks it sees
    created_at: str
    revoked_at: str | None

    def sees(self, bank: str) -> bool:
        return self.role == "admin" or not self.banks or bank in self.banks

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "banks": list(self.banks),
                "created_at": self.created_at, "revoked_at": self.revoked_at}


class ServiceDB:
    """Keys and jobs; one connection, safe to share between threads (SQLite serialises)."""

    def __init__(self, store_dir: str) -> None:
        path = os.path.join(store_dir, "service.sqlite")
        if not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.executescript(_SCHEMA)

    def close(self) -> None:
        self.con.close()

    # keys ----------------------------------------------------------------------------------

    def add_key(self, name: str, role: str, banks: tuple[str, ...] = ()) -> str:
        """Create a key; returns the key itself (shown once, never stored)."""
        check_bank_name(name)  # the same safe alphabet for key names
        if role not in ROLES:
            raise BankError(f"role {role!r}: one of {', '.join(ROLES)}")
        for bank in banks:
            check_bank_name(bank)
        if role == "partner" and not banks:
            raise BankError("a partner key needs --bank (the banks it may submit lists to)")
        key = _PREFIX + secrets.token_urlsafe(32)
        try:
            self.con.execute(
                "INSERT INTO keys (name, role, banks, key_sha256, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, role, json.dumps(sorted(set(banks))), digest(key), _now()),
            )
        except sqlite3.IntegrityError:
            raise BankError(
                f"a key named {name!r} exists (revoke it or choose another name)"
            ) from None
        return key

    def keys(self) -> list[ApiKey]:
        rows = self.con.execute(
            "SELECT name, role, banks, created_at, revoked_at FROM keys ORDER BY name"
        ).fetchall()
        return [_key(r) for r in rows]

    def revoke(self, name: str) -> ApiKey:
        changed = self.con.execute(
            "UPDATE keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (_now(), name)
        ).rowcount
        if not changed:
            raise BankError(f"no active key named {name!r}")
        return next(k for k in self.keys() if k.name == name)

    def authenticate(self, key: str) -> ApiKey | None:
        row = self.con.execute(
            "SELECT name, role, banks, created_at, revoked_at FROM keys WHERE key_sha256 = ?"
            " AND revoked_at IS NULL",
            (digest(key),),
        ).fetchone()
        return _key(row) if row else None

    # jobs ----------------------------------------------------------------------------------

    def add_job(self, key_name: str, bank: str) -> str:
        job = secrets.token_hex(16)
        self.con.execute(
            "INSERT INTO jobs (id, key_name, bank, state, created_at) VALUES (?, ?, ?, 'queued', ?)",
            (job, key_name, bank, _now()),
        )
        return job

    def set_job(self, job: str, state: str, report: dict[str, Any] | None = None) -> None:
        self.con.execute(
            "UPDATE jobs SET state = ?, report = ?, finished_at = ? WHERE id = ?",
            (state, json.dumps(report) if report is not None else None,
             _now() if state in ("done", "failed") else None, job),
        )

    def job(self, job: str) -> dict[str, Any] | None:
        row = self.con.execute(
            "SELECT id, key_name, bank, state, created_at, finished_at, report FROM jobs"
            " WHERE id = ?",
            (job,),
        ).fetchone()
        if row is None:
            return None
        keys = ("id", "key", "bank", "state", "created_at", "finished_at", "report")
        out = dict(zip(keys, row, strict=True))
        out["report"] = json.loads(out["report"]) if out["report"] else None
        return out

    def interrupted_jobs(self) -> int:
        """Jobs a stopped service left queued or running: failed (their import rolled back)."""
        return self.con.execute(
            "UPDATE jobs SET state = 'failed', finished_at = ?, report = ? WHERE state IN"
            " ('queued', 'running')",
            (_now(), json.dumps({"error": "the service stopped before the import finished;"
                                 " nothing was imported"})),
        ).rowcount


def _key(row: tuple[Any, ...]) -> ApiKey:
    name, role, banks, created, revoked = row
    return ApiKey(name, role, tuple(json.loads(banks)), created, revoked)
