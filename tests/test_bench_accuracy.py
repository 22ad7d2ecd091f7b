"""The accuracy benchmark: its distance bookkeeping against brute force, and a tiny smoke run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import accuracy, media_bank
from hashing.registry import spec


def _random_tables(n: int, e: int, seed: int) -> tuple[accuracy.HashTable, accuracy.HashTable]:
    rng = np.random.default_rng(seed)
    orig, edit = accuracy.HashTable((n,)), accuracy.HashTable((n, e))
    for table in (orig, edit):
        for s in accuracy.SERIES:
            # Few distinct bytes so small distances (and matches at the default radii) occur.
            table.bank[s][...] = rng.choice([0, 1, 255], size=table.bank[s].shape)
            table.query[s][...] = rng.choice([0, 1, 255], size=table.query[s].shape)
            table.bank_quality[s][...] = rng.integers(0, 101, size=table.bank_quality[s].shape)
            table.query_quality[s][...] = rng.integers(0, 101,
                                                       size=table.query_quality[s].shape)
            table.valid[s][...] = rng.random(table.valid[s].shape) < 0.8
    return orig, edit


def _bits(a: np.ndarray, b: np.ndarray) -> int:
    return sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(a, b, strict=True))


def _brute(orig: accuracy.HashTable, bank: int, query: accuracy.HashTable, where: tuple[int, ...],
           series: str) -> int:
    """Distance a matcher sees between bank original `bank` and the query image at `where`:
    its nearest valid query hash, under the series' quality rule."""
    s = accuracy.SPEC_OF[series]
    floor = spec(s.algo).quality_floor or 0
    never = spec(s.algo).bits + 1
    best = never
    for k in range(s.queries):
        if not query.valid[series][(*where, k)]:
            continue
        d = _bits(orig.bank[series][bank], query.query[series][(*where, k)])
        low = (orig.bank_quality[series][bank] < floor
               or query.query_quality[series][(*where, k)] < floor)
        if s.rule == "floor" and low:
            d = never
        if s.rule == "low_radius" and low and d > accuracy.LOW_QUALITY_RADIUS:
            d = never
        best = min(best, d)
    return best


def test_positive_distances_match_brute_force() -> None:
    orig, edit = _random_tables(4, 3, seed=1)
    pos = accuracy.positive_distances(orig, edit)
    for series in accuracy.SERIES:
        for i in range(4):
            for j in range(3):
                assert pos[series][i, j] == _brute(orig, i, edit, (i, j), series), (series, i, j)


def test_pair_and_cross_histograms_match_brute_force() -> None:
    n, e = 5, 2
    orig, edit = _random_tables(n, e, seed=2)
    neg_orig = accuracy.pair_histograms(orig)
    neg_cross = accuracy.cross_histograms(orig, edit)
    only_second = accuracy.cross_histograms(orig, edit, [1])
    for series in accuracy.SERIES:
        bins = spec(accuracy._series_algorithm(series)).bits + 2
        want_orig, want_cross = np.zeros(bins, np.int64), np.zeros(bins, np.int64)
        want_second = np.zeros(bins, np.int64)
        for bank in range(n):
            for q in range(n):
                if q == bank:
                    continue
                want_orig[_brute(orig, bank, orig, (q,), series)] += 1
                for j in range(e):
                    want_cross[_brute(orig, bank, edit, (q, j), series)] += 1
                want_second[_brute(orig, bank, edit, (q, 1), series)] += 1
        np.testing.assert_array_equal(neg_orig[series], want_orig, err_msg=series)
        np.testing.assert_array_equal(neg_cross[series], want_cross, err_msg=series)
        np.testing.assert_array_equal(only_second[series], want_second, err_msg=series)
        assert want_orig.sum() == n * (n - 1) and want_cross.sum() == n * (n - 1) * e


def test_rates_are_inclusive_and_cumulative() -> None:
    hist = np.array([1, 0, 2, 1, 4])  # last bin: excluded by the quality floor
    assert accuracy.rate_at(hist, 0) == pytest.approx(1 / 8)
    assert accuracy.rate_at(hist, 2) == pytest.approx(3 / 8)
    np.testing.assert_allclose(accuracy.curve(hist), [1 / 8, 1 / 8, 3 / 8, 4 / 8])
    assert accuracy.rate_at(np.zeros(4, np.int64), 2) == 0.0


def test_quick_run_writes_sane_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = dataclasses.replace(accuracy.QUICK, n_originals=4, min_width=96, max_width=128, n_flat=3,
                               n_low_info=1)
    monkeypatch.setattr(accuracy, "QUICK", tiny)
    # the media-bank run is its own benchmark (minutes even at its quick size); here it is
    # replaced by a result of its shape, to check what the accuracy table makes of it
    monkeypatch.setattr(accuracy.media_bank, "run", lambda out, quick: _media_result())
    result = accuracy.run(tmp_path, quick=True)
    for name in ("result.json", "accuracy.md", "accuracy_roc.png", "accuracy_recall.png",
                 "accuracy_crop_robust.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "result.json").read_text())
    for key in ("recall", "false_positive_rate", "family_recall", "family_fpr", "histograms",
                "weak_scan_edits", "flat_images", "low_information", "goal", "machine", "config"):
        assert key in saved, key
    assert set(saved["recall"]) == set(accuracy.EDITS)
    assert result["images_hashed"] == 4 * (1 + len(accuracy.EDITS)) + 3
    for rec in saved["recall"].values():
        assert all(0.0 <= rec[s] <= 1.0 for s in accuracy.SERIES)
        # the scan sends the stored-pixel hash (= the reference's) and more; round 1 too
        assert rec["scan"] >= rec["pdq_ref"] and rec["pdq_dihedral"] >= rec["pdq_ref"]
    for s, f in saved["false_positive_rate"].items():
        assert 0.0 <= f["original_pairs"] <= 1.0 and 0.0 <= f["cross_pairs"] <= 1.0, s
        assert f["n_original_pairs"] == 4 * 3
        assert f["n_cross_pairs"] == 4 * 3 * len(accuracy.EDITS)
    flat = saved["flat_images"]
    assert flat["pairs"] == 3 * 2
    # Flat images are what the floor is for: under it, they never match anything.
    assert flat["median_quality"] < saved["config"]["quality_floor"]
    assert flat["false_positive_rate"]["pdq_ref"] == 0.0
    assert saved["pdq_vs_pdqhash"]["max_bits"] <= 4
    low = saved["low_information"]
    assert low["images"] == len(low["kinds"]) and low["chosen_radius"] >= 0
    md = (tmp_path / "accuracy.md").read_text()
    assert "Where the default scan is weak" in md and "| edit | family |" in md
    assert "Low-information images" in md and "| family | edits |" in md
    # the media-bank rows beside the hash lists and crop_resistant_hash, in the same table
    cr = saved["crop_robust"]
    assert "| edit | pdq | phash | crop_resistant | pdq_grid | orb | media_bank |" in md
    assert "| crop_30+jpeg | 0 | 0 | 0.5 | 0 | 0.75 | 1 |" in md
    assert "| distinct photos matching any bank item | 0 of 2,000 | 0 of 2,000 | 3 of 2,000 |" in md
    assert cr["crop_resistant_originals"] == cr["originals"] == 4 and cr["commit"] == "abc1234"


def _media_result() -> dict[str, object]:
    series = media_bank.SERIES
    return {
        "quick": True, "jpeg_quality": 70, "load": [1.0, 2.0, 3.0],
        "machine": {"commit": "abc1234"},
        "config": {"n_originals": 4, "n_crop_resistant": 4},
        "recall": {"crop_30+jpeg": dict(zip(series, (0.0, 0.0, 0.5, 0.0, 0.75, 1.0), strict=True)),
                   "screenshot": dict.fromkeys(series, 1.0)},
        "negatives": {"images": dict.fromkeys(series, 2000),
                      "false_positives": {**dict.fromkeys(series, 0), "crop_resistant": 3}},
        "wrong_item_matches": dict.fromkeys(series, 0),
    }


def test_merge_media_bank_rerenders_a_saved_result(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    saved = {"machine": {"commit": "def5678"}, "recall": {}, "edit_family": {},
             "pdq_median_quality": {}}
    (tmp_path / "result.json").write_text(json.dumps(saved))
    media = tmp_path / "media.json"
    media.write_text(json.dumps(_media_result()))
    rendered: list[dict[str, object]] = []

    def keep(out: object, result: dict[str, object]) -> None:
        rendered.append(result)

    monkeypatch.setattr(accuracy, "write_markdown", keep)
    accuracy.merge_media_bank(tmp_path, media)
    cr = rendered[0]["crop_robust"]
    assert isinstance(cr, dict)
    assert cr["accuracy_commit"] == "def5678" and cr["commit"] == "abc1234"
    assert cr["false_positives"]["crop_resistant"] == 3


def test_phash_radius_study_counts_what_pdq_recovers() -> None:
    # 2 originals x 3 edits: pHash distances and the scan's PDQ distances, pinned by hand
    pos = {"phash": np.array([[2, 8, 6], [8, 10, 4]]),
           "scan": np.array([[40, 10, 50], [60, 20, 5]])}
    study = accuracy.phash_radius_study(pos, ["a", "b", "c"])
    assert study["pairs"] == 6
    assert study["radii"]["8"] == {"phash": 5, "phash_or_pdq": 6}
    assert study["radii"]["6"] == {"phash": 3, "phash_or_pdq": 5}
    assert study["radii"]["4"] == {"phash": 2, "phash_or_pdq": 4}
    # at 8 -> 6 the edge pairs are (0, 1) and (1, 0): PDQ finds (0, 1), (1, 0) is lost
    assert study["8->6"] == {"edge_pairs": 2, "found_by_pdq": 1, "lost_by_edit": {"a": 1}}
    assert study["6->4"] == {"edge_pairs": 1, "found_by_pdq": 0, "lost_by_edit": {"c": 1}}
    notes = "\n".join(accuracy._phash_radius_notes(study))
    assert "| 6 | 3 | 5 |" in notes and "lost: a 1" in notes
    assert accuracy._phash_radius_notes(None) == []
