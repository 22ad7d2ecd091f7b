"""The one codec: hex <-> packed bits, per-algorithm length checks, batch packing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashing import codec
from hashing.errors import HashFormatError, UnknownAlgorithmError
from hashing.registry import SPECS, parse_algorithms
from hashing.types import HashValue


@pytest.mark.parametrize("name", sorted(SPECS))
def test_round_trip_every_algorithm(name: str) -> None:
    n = SPECS[name].hex_length
    text = ("0123456789abcdef" * 8)[:n]
    assert codec.bits_to_hex(codec.hex_to_bits(name, text.upper())) == text
    assert codec.unpack(codec.pack(name, [text, text])) == [text, text]


@pytest.mark.parametrize(
    "text, reason",
    [("", "empty"), ("zz" * 32, "not hexadecimal"), ("ab" * 16, "expected 64 hex digits, got 32")],
)
def test_bad_pdq_strings_are_typed_errors(text: str, reason: str) -> None:
    with pytest.raises(HashFormatError, match=reason):
        codec.hex_to_bits("pdq", text)


def test_unknown_algorithm() -> None:
    with pytest.raises(UnknownAlgorithmError):
        parse_algorithms("pdq,nope")
    assert parse_algorithms("pdq, MD5,pdq") == ("pdq", "md5")


@settings(deadline=None)  # a property, not a timing: a loaded machine must not fail it
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_value_distance_is_popcount_of_xor(a: bytes, b: bytes) -> None:
    va, vb = HashValue("pdq", a), HashValue("pdq", b)
    expected = int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())
    assert va - vb == expected == vb - va
    assert codec.to_value("pdq", str(va)) == va


@settings(suppress_health_check=[HealthCheck.too_slow])  # 256 draws each; slow under load
@given(st.lists(st.integers(0, 1), min_size=256, max_size=256))
def test_bitvector_round_trip(bits: list[int]) -> None:
    text = codec.bitvector_to_hex(bits)
    assert len(text) == 64
    assert codec.hex_to_bitvector(text).tolist() == bits
