"""Property fuzzing of every entry point that takes outside data: hash lists (through each
parser and through `BankStore.import_file`), hex and hash values, and media bytes.

test_ingest_hostile fuzzes the parsers byte by byte on tiny hand-written lists and test_banks
fuzzes CSV imports; here the seeds are the real generated lists of every format
(synthetic_fixtures.hashlists, the malformed ones included), the mutations are structural
(lines dropped, repeated, swapped, spliced in from another format, cut mid-byte, NULs, BOMs,
invalid UTF-8), and the import checks are all-or-nothing on the whole store (every table and
the index files), not only row counts. The media fuzz gives the decoders a real header
followed by noise, splices of two formats and headers alone, which test_hasher's byte flips
rarely reach.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from _ingest_checks import PARSERS, check_parse
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_no_content_leak import SIGNATURES

from hashing import codec
from hashing.errors import HashFormatError, UnknownAlgorithmError
from hashing.hasher import HashOptions, hash_bytes
from hashing.registry import SPECS
from hashing.types import HashRecord, HashValue
from index.bank_types import ImportRejectedError
from index.banks import BankStore, ImportOptions
from index.categories import VIC
from index.ingest.records import ParseOptions
from synthetic_fixtures.hashlists import ListInfo, random_entries, write_hash_lists
from synthetic_fixtures.photos import make_photo

FUZZ = settings(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[ListInfo, bytes]]:
    """Every list format (valid and malformed) as (info, bytes); the files stay on disk."""
    out = tmp_path_factory.mktemp("lists")
    entries = random_entries(np.random.default_rng(8), 6)
    return [(info, Path(info.path).read_bytes())
            for info in write_hash_lists(out, entries, seed=8)]


OPS = ("drop", "repeat", "swap", "splice", "cut", "nul", "bom", "badutf8", "char", "crlf")


@st.composite
def mutation(draw: st.DrawFn, n_lists: int) -> tuple[int, list[tuple[str, int, int, int]]]:
    """Which list to start from, and up to four (op, a, b, c) structural edits."""
    base = draw(st.integers(0, n_lists - 1))
    edits = draw(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 10_000),
                                    st.integers(0, 10_000), st.integers(0, n_lists - 1)),
                          min_size=1, max_size=4))
    return base, edits


def mutate(data: bytes, edits: list[tuple[str, int, int, int]],
           others: list[tuple[ListInfo, bytes]]) -> bytes:
    lines = data.split(b"\n")
    for op, a, b, c in edits:
        i, j = a % len(lines), b % len(lines)
        if op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "repeat":
            lines.insert(j, lines[i])
        elif op == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "splice":  # a line of another list (often another format)
            donor = others[c][1].split(b"\n")
            lines[i] = donor[b % len(donor)]
        elif op == "cut":
            flat = b"\n".join(lines)
            lines = flat[: a % (len(flat) + 1)].split(b"\n")
        elif op == "nul":
            lines[i] = lines[i][: b % (len(lines[i]) + 1)] + b"\x00" + lines[i][b % (len(lines[i]) + 1):]
        elif op == "bom":
            lines[i] = b"\xef\xbb\xbf" + lines[i]
        elif op == "badutf8":
            lines[i] = lines[i] + b"\xff\xfe\xc3"
        elif op == "char":
            pos = b % (len(lines[i]) + 1)
            ch = b',"{}[]:#\t \\'[c % 12: c % 12 + 1]
            lines[i] = lines[i][:pos] + ch + lines[i][pos + 1:]
        elif op == "crlf":
            lines[i] = lines[i] + b"\r"
    return b"\n".join(lines)


def _write_tmp(directory: Path, name: str, data: bytes) -> str:
    path = directory / name
    path.write_bytes(data)
    return str(path)


@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_every_parser_on_mutated_real_lists(lists: list[tuple[ListInfo, bytes]],
                                            tmp_path_factory: pytest.TempPathFactory,
                                            data: st.DataObject) -> None:
    """Each parser, on a mutation of a real list of any format, yields well-formed records or
    rejections with line numbers inside the file, or refuses the file with the typed error."""
    base, edits = data.draw(mutation(len(lists)))
    blob = mutate(lists[base][1], edits, lists)
    fmt = data.draw(st.sampled_from(sorted(PARSERS)))
    path = _write_tmp(tmp_path_factory.mktemp("p"), "l.txt", blob)
    nlines = blob.count(b"\n") + 1
    opts = ParseOptions(algo=lists[base][0].algorithm if fmt == "hashlist" else None, scheme=VIC)
    check_parse(fmt, path, opts, nlines)


def store_state(store_dir: Path) -> str:
    """Digest of every table of the store and of its index files."""
    h = hashlib.sha256()
    con = sqlite3.connect(f"file:{store_dir / 'banks.sqlite'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for t in tables:
            h.update(t.encode())
            for row in con.execute(f"SELECT * FROM {t} ORDER BY rowid"):
                h.update(repr(row).encode())
    finally:
        con.close()
    for p in sorted((store_dir / "index").iterdir()):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_import_of_mutated_lists_is_all_or_nothing(lists: list[tuple[ListInfo, bytes]],
                                                   tmp_path_factory: pytest.TempPathFactory,
                                                   data: st.DataObject) -> None:
    """Default mode: a list with any bad record is refused and the store is bit-for-bit as
    before (tables and index files); an accepted list added exactly `added` entries. Nothing
    but ImportRejectedError ever escapes. --skip-invalid: the valid records go in, the rest
    are reported, and the two add up."""
    base, edits = data.draw(mutation(len(lists)))
    info = lists[base][0]
    blob = mutate(lists[base][1], edits, lists)
    explicit = data.draw(st.booleans())
    skip = data.draw(st.booleans())
    tmp = tmp_path_factory.mktemp("i")
    store_dir = tmp / "s"
    with BankStore(store_dir) as store:  # a store that already holds a bank
        # the generated lists carry Project VIC codes in their category fields
        store.import_file(lists[0][0].path, ImportOptions(bank="existing", scheme="vic"))
    before = store_state(store_dir)
    path = _write_tmp(tmp, "upload" + Path(info.path).suffix, blob)
    opts = ImportOptions(bank="fuzz", format=info.format if explicit else "auto",
                         algo=info.algorithm, skip_invalid=skip, scheme="vic")
    with BankStore(store_dir) as store:
        n_before = store.con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        try:
            result = store.import_file(path, opts)
        except ImportRejectedError as e:
            assert e.result.status == "rejected" and (e.result.rejected or e.result.error)
            assert not skip or e.result.error or e.result.added == 0
            report = json.loads(Path(e.result.report_path).read_text())  # type: ignore[arg-type]
            assert report["status"] == "rejected"
            accepted = False
        else:
            accepted = True
            assert result.status == "imported"
            assert skip or not result.rejected
            n_after = store.con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            assert n_after - n_before == result.added
    event(f"import accepted={accepted} skip_invalid={skip}")
    if not accepted:
        assert store_state(store_dir) == before


HEX_TEXT = st.text(alphabet=st.sampled_from("0123456789abcdefABCDEFxX gz\t\n\u0660\uff41-"),
                   max_size=140)


@settings(FUZZ, max_examples=300)
@given(algo=st.sampled_from(sorted(SPECS) + ["nope", ""]), text=HEX_TEXT | st.text(max_size=80))
def test_normalise_hex_raises_only_typed_errors(algo: str, text: str) -> None:
    try:
        out = codec.normalise_hex(algo, text)
    except UnknownAlgorithmError:
        assert algo not in SPECS
        return
    except HashFormatError as e:
        assert algo in SPECS and e.reason  # type: ignore[attr-defined]
        return
    assert len(out) == SPECS[algo].hex_length and set(out) <= set("0123456789abcdef")
    assert codec.bits_to_hex(codec.hex_to_bits(algo, text)) == out
    assert str(codec.to_value(algo, text)) == out


@settings(FUZZ, max_examples=150)
@given(algo=st.sampled_from(sorted(SPECS)), data=st.data())
def test_values_pack_and_measure_consistently(algo: str, data: st.DataObject) -> None:
    """Pack/unpack round trip on any valid batch; one bad member fails the whole batch with the
    typed error; `a - b` is a metric (symmetric, zero on self, triangle inequality)."""
    n = SPECS[algo].nbytes
    raw = data.draw(st.lists(st.binary(min_size=n, max_size=n), min_size=1, max_size=6))
    hexes = [r.hex() for r in raw]
    assert codec.unpack(codec.pack(algo, [h.upper() for h in hexes])) == hexes
    bad = data.draw(HEX_TEXT)
    assume(len(bad.strip().removeprefix("0x").removeprefix("0X")) != SPECS[algo].hex_length)
    with pytest.raises(HashFormatError):
        codec.pack(algo, [*hexes, bad])
    a, b, c = (HashValue(algo, raw[k % len(raw)]) for k in range(3))
    assert a - a == 0 and a - b == b - a and a - c <= (a - b) + (b - c)
    assert 0 <= a - b <= SPECS[algo].bits
    other = next(s for s in sorted(SPECS) if SPECS[s].nbytes != n)
    with pytest.raises(TypeError):
        _ = a - HashValue(other, bytes(SPECS[other].nbytes))


def _seeds() -> dict[str, bytes]:
    rgb = make_photo(np.random.default_rng(31), 48, 40)
    out = {}
    for fmt, kw in (("JPEG", {"quality": 80}), ("PNG", {}), ("GIF", {}),
                    ("WEBP", {"quality": 70}), ("TIFF", {}), ("BMP", {})):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, fmt, **kw)
        out[fmt] = buf.getvalue()
    return out


SEEDS = _seeds()
FAST = HashOptions()
EXACT = HashOptions(decode_mode="exact", dihedral=True)


@st.composite
def hostile_media(draw: st.DrawFn) -> bytes:
    fmt = draw(st.sampled_from(sorted(SEEDS)))
    seed = SEEDS[fmt]
    how = draw(st.sampled_from(["header+noise", "splice", "header_only", "repeat_tail"]))
    k = draw(st.integers(2, min(len(seed) - 1, 400)))
    noise = draw(st.binary(min_size=0, max_size=600))
    if how == "header+noise":
        return seed[:k] + noise
    if how == "splice":  # the head of one format glued to the body of another
        other = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
        return seed[:k] + other[draw(st.integers(0, len(other) - 1)):]
    if how == "header_only":
        return seed[:k]
    return seed + seed[k:] * draw(st.integers(1, 3)) + noise


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns on truncated TIFF reads
@settings(FUZZ, max_examples=400)
@given(blob=hostile_media(), exact=st.booleans())
def test_media_entry_point_never_raises(blob: bytes, exact: bool) -> None:
    """`hash_bytes` always returns a record (hashed or error), digests are always right, and
    the record's JSON never carries media bytes."""
    rec = hash_bytes(blob, "fuzz.bin", EXACT if exact else FAST)
    event(f"{rec.status} {rec.media_type}")
    assert isinstance(rec, HashRecord) and rec.status in ("hashed", "error")
    assert (rec.status == "error") == (rec.error is not None)
    assert rec.hashes["sha256"] == hashlib.sha256(blob).hexdigest()
    text = json.dumps(rec.to_dict()).encode()
    for sig in SIGNATURES:
        assert not sig.search(text)
    if rec.status == "hashed" and rec.media_type and rec.media_type.startswith("image/"):
        assert len(rec.hashes["pdq"]) == 64 and 0 <= (rec.pdq_quality or 0) <= 100


def test_seed_media_hash_cleanly() -> None:
    """The fuzz seeds themselves decode, so mutations start from valid files."""
    for fmt, data in SEEDS.items():
        rec = hash_bytes(data, f"seed.{fmt.lower()}", EXACT)
        assert rec.status == "hashed" and rec.media_type, fmt
