"""What an operator may tune about the service: batch and body sizes, time limits, rates."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    max_lookup_hashes: int = 1000  # hashes per POST /v1/lookup
    max_lookup_bytes: int = 1 << 20  # body of one lookup (1000 PDQ items with dihedral fit)
    max_list_bytes: int = 256 << 20  # body of one submitted hash list
    body_timeout: float = 30.0  # seconds to receive a whole body (slow senders are cut off)
    rate_per_second: float = 50.0  # requests per key, sustained
    rate_burst: int = 100  # requests per key in a burst
    failed_auth_limit: int = 20  # bad keys from one address within the window -> 429
    failed_auth_window: float = 60.0
    audit_hashes: bool = False  # write the hashes a lookup asked about to the audit log
