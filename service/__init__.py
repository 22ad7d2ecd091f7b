"""The partner HTTP service: hash lookups and hash-list submission over the bank store.

Hashes only: it never accepts or returns media. An app factory (`service.app.create_app`)
over `index/` (the bank store and its matcher) and the scan's match logic (`triage.match`),
with API keys, audit lines and limits of its own; no evidence or scan code.
"""
