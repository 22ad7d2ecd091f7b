"""The service's audit log: one JSON line per request, appended to `<store>/audit/service.log`.

A line says who (key name, client address), what (method, endpoint, counts), the outcome
(status, error) and how long it took; the hashes a lookup asked about are written only when
the service's policy says so (`ServiceConfig.audit_hashes`).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from typing import Any


class AuditLog:
    def __init__(self, store_dir: str) -> None:
        folder = os.path.join(store_dir, "audit")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self.path = os.path.join(folder, "service.log")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def write(self, **fields: Any) -> None:
        line = json.dumps({"time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                           **fields}, sort_keys=True)
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        self._file.close()
