"""`triage bank import-media`: every container the scan reads, entry ids relative to the
folder, signatures stored with their own algorithms, kept out of every partner export and
report, and dropped from matching by retraction or disabling like any entry."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from hashing.algorithms.local_features import LocalFeatures, describe
from hashing.decode import decode_image
from index.banks import BankStore
from index.media_bank import MediaMatcher, load_features
from synthetic_fixtures.photos import make_photo
from triage.media_import import read_categories


def _photo(seed: int, w: int = 480, h: int = 360) -> Image.Image:
    return Image.fromarray(make_photo(np.random.default_rng((23, seed)), w, h))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    ref = tmp_path / "holdings"
    (ref / "case7").mkdir(parents=True)
    _photo(0).save(ref / "case7" / "a.jpg", quality=92)
    _photo(1).save(ref / "b.png")
    buf = io.BytesIO()
    _photo(2, 360, 480).save(buf, "JPEG", quality=90)
    with zipfile.ZipFile(ref / "old.zip", "w") as z:
        z.writestr("inner/c.jpg", buf.getvalue())
    (ref / "readme.txt").write_text("not media")
    (ref / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return ref


def _invoke(store: Path, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["bank", *args, "--store", str(store)])
    return r.exit_code, r.stdout, r.stderr


def _tree_digest(root: Path) -> dict[str, tuple[int, float, bytes]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_import_media_end_to_end(tmp_path: Path, folder: Path) -> None:
    store = tmp_path / "store"
    before = _tree_digest(folder)
    code, out, err = _invoke(store, "import-media", str(folder), "--bank", "held",
                             "--category", "A", "--source", "unit 3", "--workers", "0")
    assert code == 0, err
    assert _tree_digest(folder) == before  # read-only
    assert "broken.jpg" in err  # the undecodable file is reported by its relative path
    with BankStore(store) as s:
        rows = s.history("held")
        detail = s.show("held")
        ids = {r["entry_id"] for r in rows}
        assert ids == {"case7/a.jpg", "b.png", "old.zip", "old.zip!/inner/c.jpg", "readme.txt",
                       "broken.jpg"}
        per = detail.per_algorithm
        assert per["orb"] == 3 and per["pdq"] == 3 and per["phash"] == 3
        assert per["md5"] == 6  # every file has its digests, the broken one too
        assert per["pdq_grid"] >= 3 * 20
        feats, pks = load_features(s.con)
        assert feats.n_items == 3 and feats.index.ntotal == sum(1 for _ in feats.owner)
        # the stored features are exactly what describing the file gives
        a = next(r for r in rows if r["entry_id"] == "b.png" and r["algorithm"] == "orb")
        blob = s.con.execute("SELECT features FROM local_features lf JOIN entries e ON"
                             " e.id = lf.entry WHERE e.hash = ?", (a["hash"],)).fetchone()[0]
        stored = LocalFeatures.from_bytes(blob)
        img = decode_image((folder / "b.png").read_bytes(), path="b.png", need={"luma"})
        assert img.luma is not None
        direct = describe(img.luma, img.width, img.height)
        assert np.array_equal(stored.descriptors, direct.descriptors)
    mode = stat.S_IMODE(os.stat(store / "banks.sqlite").st_mode)
    assert mode & 0o077 == 0
    # re-importing the same folder changes nothing
    code, out, _ = _invoke(store, "import-media", str(folder), "--bank", "held",
                           "--category", "A", "--workers", "0")
    assert code == 0 and " 0 added" in out


def test_signatures_never_leave_the_store(tmp_path: Path, folder: Path) -> None:
    store = tmp_path / "store"
    assert _invoke(store, "import-media", str(folder), "--bank", "held", "--workers", "0")[0] == 0
    with BankStore(store) as s:
        private = {r["hash"] for r in s.history("held") if r["algorithm"] in ("orb", "pdq_grid")}
        blobs = [bytes(b) for (b,) in s.con.execute("SELECT features FROM local_features")]
    descriptors = [LocalFeatures.from_bytes(b).descriptors[0].tobytes().hex() for b in blobs]
    assert private and descriptors
    for fmt in ("csv", "pdq", "vics"):
        code, out, err = _invoke(store, "export", "held", "--format", fmt)
        assert code == 0, err
        assert "orb" not in out.lower() and "pdq_grid" not in out.lower()
        assert not any(h in out for h in private | set(descriptors)), fmt
    for report in (store / "reports").iterdir():
        text = report.read_text()
        assert not any(h in text for h in private | set(descriptors))
        assert json.loads(text)["format"] == "media"
    # a partner list cannot bring store-private algorithms in
    lst = tmp_path / "l.txt"
    lst.write_text("0" * 64 + "\n")
    code, _, err = _invoke(store, "import", str(lst), "--bank", "p", "--algo", "orb")
    assert code != 0 and "media" in err


def test_categories_file_and_retraction(tmp_path: Path, folder: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("path,category\ncase7/a.jpg,A\nold.zip!/inner/c.jpg,B\n")
    assert read_categories(str(labels)) == {"case7/a.jpg": "A", "old.zip!/inner/c.jpg": "B"}
    store = tmp_path / "store"
    code, _, err = _invoke(store, "import-media", str(folder), "--bank", "held",
                           "--categories", str(labels), "--workers", "0")
    assert code == 0, err
    with BankStore(store) as s:
        cats = {r["entry_id"]: s.con.execute(
            "SELECT category FROM entries WHERE entry_id = ? LIMIT 1", (r["entry_id"],)
        ).fetchone()[0] for r in s.history("held")}
        assert cats["case7/a.jpg"] == "A" and cats["old.zip!/inner/c.jpg"] == "B"
        assert cats["b.png"] is None
        orb = next(r["hash"] for r in s.history("held")
                   if r["entry_id"] == "case7/a.jpg" and r["algorithm"] == "orb")
        m = MediaMatcher(s.db_path, s.dir)
        assert m.features().n_items == 3
        m.close()
        s.retract("held", [orb], "test")
        m = MediaMatcher(s.db_path, s.dir)
        assert m.features().n_items == 2
        m.close()
        s.set_enabled("held", False)
        m = MediaMatcher(s.db_path, s.dir)
        assert m.features().n_items == 0 and m.windows()[0].ntotal == 0
        m.close()


def test_store_export_moves_signatures_between_stores_only(tmp_path: Path, folder: Path) -> None:
    first, second = tmp_path / "s1", tmp_path / "s2"
    assert _invoke(first, "import-media", str(folder), "--bank", "held", "--category", "A",
                   "--workers", "0")[0] == 0
    out = tmp_path / "held.bank"
    code, _, err = _invoke(first, "export", "held", "--format", "store", "--out", str(out))
    assert code == 0, err
    assert stat.S_IMODE(os.stat(out).st_mode) & 0o077 == 0
    code, _, err = _invoke(first, "export", "held", "--format", "store", "--out", str(out))
    assert code != 0 and "exists" in err  # never overwrites
    code, stdout, err = _invoke(second, "import-store", str(out), "--bank", "copy")
    assert code == 0, err
    with BankStore(first) as a, BankStore(second) as b:
        def rows(s: BankStore, name: str) -> set[tuple[object, ...]]:
            return {(r["entry_id"], r["algorithm"], r["hash"]) for r in s.history(name)}
        assert rows(a, "held") == rows(b, "copy")
        fa, _ = load_features(a.con)
        fb, _ = load_features(b.con)
        assert np.array_equal(fa.index.codes, fb.index.codes)
        assert b.show("copy").per_algorithm["pdq_grid"] == a.show("held").per_algorithm[
            "pdq_grid"]
    # a damaged feature blob is refused, not planted under its key
    import sqlite3
    con = sqlite3.connect(out)
    con.execute("UPDATE features SET data = substr(data, 1, length(data) - 1) WHERE rowid = 1")
    con.commit()
    con.close()
    code, _, err = _invoke(tmp_path / "s3", "import-store", str(out))
    assert code == 0 and "damaged" in err
    with BankStore(tmp_path / "s3") as c:
        assert load_features(c.con)[0].n_items == 2
    code, _, err = _invoke(tmp_path / "s4", "import-store", str(folder / "readme.txt"))
    assert code != 0


def test_large_feature_sets_are_searched_through_an_inverted_file() -> None:
    from index.faiss_store import FaissBinaryIndex
    from index.hamming import HammingIndex
    from index.media_bank import APPROXIMATE_FROM, descriptor_index, ivf_lists

    assert [ivf_lists(n) for n in (10**5, 5 * 10**5, 5 * 10**6)] == [512, 1024, 4096]
    codes = np.random.default_rng(3).integers(0, 256, (APPROXIMATE_FROM, 32), dtype=np.uint8)
    assert isinstance(descriptor_index(codes[:-1]), HammingIndex)
    large = descriptor_index(codes)
    assert isinstance(large, FaissBinaryIndex) and large.kind == "ivf"
    lims, dist, ids = large.range_search(codes[:50], 0)  # each code finds itself
    assert (ids[lims[:-1]] == np.arange(50)).all() and (dist[lims[:-1]] == 0).all()


def test_a_large_descriptor_index_is_saved_and_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Building the inverted file costs a pass over every code (42-47 s at 5·10^6): it is
    saved beside the store and read back while the codes are the same; other codes or a
    damaged file build it again."""
    from index import faiss_store
    from index.media_bank import APPROXIMATE_FROM, descriptor_index

    codes = np.random.default_rng(4).integers(0, 256, (APPROXIMATE_FROM, 32), dtype=np.uint8)
    saved = str(tmp_path / "index" / "orb.ivf")
    builds: list[int] = []
    real = faiss_store.FaissBinaryIndex.__init__

    def counting(self: Any, *a: Any, **kw: Any) -> None:
        builds.append(1)
        real(self, *a, **kw)

    monkeypatch.setattr(faiss_store.FaissBinaryIndex, "__init__", counting)
    first = descriptor_index(codes, saved=saved)
    assert len(builds) == 1 and os.path.isfile(saved)
    again = descriptor_index(codes, saved=saved)
    assert len(builds) == 1  # read back, not built
    q = codes[::997]
    for a, b in zip(first.range_search(q, 40), again.range_search(q, 40), strict=True):
        assert np.array_equal(a, b)
    other = codes.copy()
    other[0] ^= 1
    descriptor_index(other, saved=saved)  # other codes: built, and saved in their place
    assert len(builds) == 2
    descriptor_index(other, saved=saved)
    assert len(builds) == 2
    data = bytearray(Path(saved).read_bytes())
    data[-1] ^= 1
    Path(saved).write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        rebuilt = descriptor_index(other, saved=saved)
    assert len(builds) == 3 and "checksum mismatch; building it again" in caplog.text
    assert rebuilt.ntotal == len(other)
    descriptor_index(other, saved=saved)  # the damaged file was replaced
    assert len(builds) == 3
    # a folder that cannot be written only costs the next open the build
    blocked = tmp_path / "file"
    blocked.write_text("")
    with caplog.at_level("WARNING"):
        descriptor_index(codes, saved=str(blocked / "orb.ivf"))
    assert "not saved" in caplog.text


def test_a_media_bank_keeps_its_inverted_file_in_the_store(
        tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from index import media_bank
    from index.hamming import HammingIndex

    monkeypatch.setattr(media_bank, "APPROXIMATE_FROM", 1)  # these 3 images count as large
    store = tmp_path / "store"
    code, _, err = _invoke(store, "import-media", str(folder), "--bank", "held", "--workers", "0")
    assert code == 0, err
    saved = store / "index" / media_bank.DESCRIPTOR_INDEX_FILE
    with BankStore(store) as s:
        m = MediaMatcher(s.db_path, s.dir)
        assert not isinstance(m.features().index, HammingIndex)
        m.close()
        assert saved.stat().st_mode & 0o777 == 0o600
        first = saved.stat().st_ino
        m = MediaMatcher(s.db_path, s.dir)  # read back: the file is not written again
        m.close()
        assert saved.stat().st_ino == first
        orb = next(r["hash"] for r in s.history("held") if r["algorithm"] == "orb")
        s.retract("held", [orb], "test")
        m = MediaMatcher(s.db_path, s.dir)  # other codes: built and saved again
        assert m.features().n_items == 2
        m.close()
        assert saved.stat().st_ino != first


class _Killed(Exception):
    """Stands in for a kill between two chunks of an import."""


def _bank_rows(store: Path) -> list[tuple[object, ...]]:
    with BankStore(store) as s:
        return s.con.execute(
            "SELECT e.algorithm, e.hash, e.entry_id, e.category, e.line FROM entries e"
            " ORDER BY e.algorithm, e.hash").fetchall()


def test_a_killed_media_import_resumes_without_hashing_again(tmp_path: Path,
                                                             folder: Path) -> None:
    """Hashing holdings takes hours, and the bank is written at the end: what a killed run
    hashed is kept in the store's staging file and reused by the next run of the same import,
    a file changed since is hashed again, and the bank equals one uninterrupted import's."""
    from index.banks import BankStore
    from triage.media_import import MediaImportOptions, import_media
    from triage.media_staging import staging_path

    for k in range(3, 40):
        _photo(k, 200, 150).save(folder / f"p{k:02d}.jpg", quality=85)
    options = MediaImportOptions(bank="held", category="A", workers=0)
    once = tmp_path / "once"
    with BankStore(once) as s:
        whole = import_media(s, str(folder), options)
    store = tmp_path / "store"
    settled: list[int] = []

    def kill_after_two_chunks(n: int) -> None:
        settled.append(n)
        if len(settled) == 2:
            raise _Killed

    with BankStore(store) as s:
        with pytest.raises(_Killed):
            import_media(s, str(folder), options, progress=kill_after_two_chunks)
        staged = staging_path(s.dir, "held", str(folder))
        assert os.path.isfile(staged) and stat.S_IMODE(os.stat(staged).st_mode) == 0o600
        assert s.con.execute("SELECT COUNT(*) FROM entries").fetchone() == (0,)
    done = sum(settled)
    assert 0 < done < whole.added
    changed = sorted(folder.glob("p*.jpg"))[0]  # among the first settled (walk order)
    os.utime(changed, (1_000_000_000, 1_000_000_000))
    with BankStore(store) as s:
        resumed = import_media(s, str(folder), options)
        assert not os.path.exists(staged)  # the bank is written: the staging is gone
    reused = resumed.notes["reused from an interrupted import"]
    assert reused == done - 1  # all the killed run settled but the file changed since
    assert "reused from an interrupted import" not in whole.notes
    assert (resumed.added, resumed.rejected) == (whole.added, whole.rejected)
    assert _bank_rows(store) == _bank_rows(once)
    with BankStore(store) as s:  # an import that finished leaves nothing to reuse
        again = import_media(s, str(folder), options)
    assert "reused from an interrupted import" not in again.notes and again.added == 0


def test_a_damaged_staging_file_is_started_afresh(tmp_path: Path, folder: Path) -> None:
    from triage.media_import import MediaImportOptions, import_media
    from triage.media_staging import staging_path

    options = MediaImportOptions(bank="held", category="A", workers=0)
    once = tmp_path / "once"
    with BankStore(once) as s:
        whole = import_media(s, str(folder), options)
    store = tmp_path / "store"
    with BankStore(store) as s:
        staged = Path(staging_path(s.dir, "held", str(folder)))
        staged.parent.mkdir(mode=0o700)
        staged.write_bytes(b"not a database" * 100)  # a staging file damaged on disk
        result = import_media(s, str(folder), options)
        assert not staged.exists()
    assert "reused from an interrupted import" not in result.notes
    assert (result.added, result.rejected) == (whole.added, whole.rejected)
    assert _bank_rows(store) == _bank_rows(once)
