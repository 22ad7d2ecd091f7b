"""One-pass md5/sha1/sha256 equal hashlib's one-shot digests, in memory and streamed."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashing.algorithms.digests import MultiDigest, digest_bytes, digest_stream


def _reference(data: bytes) -> dict[str, str]:
    return {n: hashlib.new(n, data).hexdigest() for n in ("md5", "sha1", "sha256")}


def test_known_answers_for_empty_and_abc() -> None:
    assert digest_bytes(b"") == {
        "md5": "d41d8cd98f00b204e9800998ecf8427e",
        "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
    assert digest_bytes(b"abc")["sha256"] == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=5000), chunk=st.integers(1, 700))
def test_stream_equals_one_shot(data: bytes, chunk: int) -> None:
    digests, size = digest_stream(io.BytesIO(data), chunk_bytes=chunk)
    assert size == len(data)
    assert digests == _reference(data) == digest_bytes(data)


def test_subset_and_order_of_names() -> None:
    assert list(digest_bytes(b"x", ("sha256", "md5"))) == ["sha256", "md5"]
    assert digest_bytes(b"x", ("pdq", "phash")) == {}


class _CountingReader(io.RawIOBase):
    """A stream that records the largest single read, to prove the file is never held whole."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.largest = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def, override]
        n = min(len(b), self.left)
        b[:n] = b"\xab" * n
        self.left -= n
        self.largest = max(self.largest, n)
        return n


def test_large_stream_read_in_bounded_chunks() -> None:
    size = 9 * 1024 * 1024 + 17
    reader = _CountingReader(size)
    digests, got = digest_stream(reader, ("sha1",))  # type: ignore[arg-type]
    assert got == size and reader.largest <= 1 << 20
    assert digests["sha1"] == hashlib.sha1(b"\xab" * size).hexdigest()


def test_multidigest_counts_bytes() -> None:
    md = MultiDigest()
    md.update(b"ab")
    md.update(memoryview(b"c"))
    assert md.size == 3 and md.hexdigests() == _reference(b"abc")


@pytest.mark.parametrize("name", ["md5", "sha1", "sha256"])
def test_each_alone(name: str) -> None:
    assert digest_bytes(b"evidence", (name,)) == {name: hashlib.new(name, b"evidence").hexdigest()}
