"""The resume key: which stored rows a scan may reuse instead of hashing again.

A row is reused only when its file is unchanged and it was hashed the same way. "The same
way" is this key: a versioned digest of the hashing options (by field name, as JSON) and
the tool version, so it is stable across Python versions and dataclass changes that do
not change an option, and any change of an option or of the tool re-hashes.
"""

from __future__ import annotations

import hashlib
import json

from hashing.hasher import HashOptions

KEY_VERSION = 1  # bump when the key's recipe changes: every stored row is then hashed again


def resume_key(opts: HashOptions, tool_version: str) -> str:
    doc = {"key_version": KEY_VERSION, "tool": tool_version, "options": opts.to_dict()}
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return f"v{KEY_VERSION}:{digest}"
