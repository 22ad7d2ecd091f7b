"""Decoding and hashing of media: cryptographic digests and perceptual hashes.

This layer imports nothing else of the project's; `index` and `triage` build on it.
"""
