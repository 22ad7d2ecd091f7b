"""Deterministic synthetic test data: photo-like images, edits, videos, evidence folders, hash lists.

No real material ever enters this project; everything here is generated from a seed.
"""
