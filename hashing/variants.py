"""Query-side canonical variants: pixels in, images out.

Known material comes back letterboxed, inside a screenshot, rotated a few degrees or with a
caption bar. Banks hold hashes, not images, so the fix is on the query side: find the framing
that was added and hash the image without it. `find_variants` looks at a small grey copy of
the image (an integer-factor reduction to a long side of `WORK_SIDE`/2..`WORK_SIDE`) and returns the geometry of each variant it believes in;
`render` applies that geometry to any full-size plane (luma for PDQ, RGB for imagehash).

Detectors (each tuned to say nothing on a clean photo, so clean images cost one small
resize and a few vector passes):

* **trim**: borders of one colour per side (any colour: letterbox, pillarbox, padding,
  photo frames). A border line is one where >= 95 % of pixels are within `_TOL` of the
  side's colour (JPEG noise and soft edges pass); the run must end at a real edge (a line
  where >= 25 % of pixels differ sharply from the border), so a smooth sky is never cut.
* **caption**: a band along the top or bottom edge, 4-40 % of the height, of one colour
  with text on it (>= 30 % of every line and 70 % of the band background), ending at a
  sharp edge into lines that are almost all picture.
* **embedded**: the dominant photo-like rectangle of a screenshot, web capture or collage:
  busy (textured) blocks, opened to drop text lines, largest component, edges refined to
  the strongest step; kept only when at least two of its edges lie inside the frame with a
  near-uniform line just outside each (an interface background, not more photo).
* **deskew**: a frame rotated by a small angle (with or without expansion) leaves
  fill-coloured corner triangles whose hypotenuses are the rotated image edges: the fill
  profiles along each side are fitted with a line (RANSAC over profile points, then least
  squares on the inliers), at least two sides must agree, the rotation is undone about the
  centre (corners rotated out of the frame are lost; the nearest edge pixels stand in) and
  any fill border left is trimmed.

A variant is kept only when it differs materially from the frame (at least `_MIN_CHANGE`
of a dimension removed or 0.5 degrees of rotation), and near-duplicate geometries are
reported once. Written here because no maintained library finds re-posting frames (OpenCV
gives the primitives used below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WORK_SIDE = 512  # long side of the grey copy the detectors look at
_TOL = 8.0  # luma levels a border pixel may differ from its side's colour (JPEG noise)
_EDGE = 28.0  # luma step that counts as the start of the picture
_MIN_CHANGE = 0.02  # smallest share of a dimension worth a variant
_BLOCK = 8  # block size (work pixels) of the busy map of the embedded detector
_MAX_SKEW = 20.0  # degrees
_MIN_SKEW = 0.5


@dataclass(frozen=True, slots=True)
class Variant:
    """One canonical reframing: rotate by `angle` degrees counter-clockwise about the centre,
    then keep `box` = (top, left, bottom, right) as fractions of the rotated frame. `name`
    is the detector, `detail` what the reason says."""

    name: str
    detail: str
    box: tuple[float, float, float, float]
    angle: float = 0.0


def _work(plane: np.ndarray) -> np.ndarray:
    """A small float32 grey copy: an integer-factor area reduction (OpenCV's fast path; a
    fractional factor costs 4x more) to a long side of WORK_SIDE/2..WORK_SIDE."""
    import cv2

    g = np.asarray(plane)
    if g.ndim == 3:
        g = cv2.cvtColor(np.ascontiguousarray(g, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    h, w = g.shape
    factor = -(-max(h, w) // WORK_SIDE)
    if factor > 1 and min(h, w) >= factor:
        # cropped to whole multiples of the factor: OpenCV's fast path (3x quicker)
        oh, ow = h // factor, w // factor
        g = cv2.resize(g[: oh * factor, : ow * factor], (ow, oh), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(g, dtype=np.float32)


def _close_share(lines: np.ndarray, colour: float) -> np.ndarray:
    return (np.abs(lines - colour) <= _TOL).mean(axis=1)


def _border_run(lines: np.ndarray, colour: float, min_share: float) -> int:
    """How many leading lines (rows of `lines`) are border: >= `min_share` within _TOL.
    The first line is tried alone: on a clean photo that is all it costs."""
    if _close_share(lines[:1], colour)[0] < min_share:
        return 0
    bad = np.flatnonzero(_close_share(lines, colour) < min_share)
    return int(bad[0]) if bad.size else len(lines)


def _sharp_after(lines: np.ndarray, run: int, colour: float) -> bool:
    """Whether one of the 3 lines after the run starts the picture (a sharp step from the
    border colour on >= 25 % of the line) rather than fading out of it (a sky)."""
    for k in range(run, min(run + 3, len(lines))):
        if (np.abs(lines[k] - colour) > _EDGE).mean() >= 0.25:
            return True
    return False


def _side_views(g: np.ndarray) -> dict[str, np.ndarray]:
    """Each side's lines ordered from the edge inwards."""
    return {"top": g, "bottom": g[::-1], "left": g.T, "right": g.T[::-1]}


def _trim_sides(g: np.ndarray, min_share: float = 0.95) -> dict[str, int]:
    out: dict[str, int] = {}
    for side, lines in _side_views(g).items():
        colour = float(np.median(lines[0]))
        run = _border_run(lines, colour, min_share)
        limit = len(lines) * 0.45
        out[side] = run if 0 < run < limit and _sharp_after(lines, run, colour) else 0
    return out


def _box_from_sides(g: np.ndarray, s: dict[str, int]) -> tuple[float, float, float, float]:
    h, w = g.shape
    return (s["top"] / h, s["left"] / w, 1.0 - s["bottom"] / h, 1.0 - s["right"] / w)


def _material(box: tuple[float, float, float, float]) -> bool:
    top, left, bottom, right = box
    return (top + 1.0 - bottom) >= _MIN_CHANGE or (left + 1.0 - right) >= _MIN_CHANGE


def _pct(x: float) -> int:
    return round(100 * x)


def _trim_detail(box: tuple[float, float, float, float]) -> str:
    top, left, bottom, right = box
    parts = []
    v, hz = top + 1.0 - bottom, left + 1.0 - right
    if v >= _MIN_CHANGE / 2:
        parts.append(f"{_pct(v)}% top/bottom")
    if hz >= _MIN_CHANGE / 2:
        parts.append(f"{_pct(hz)}% left/right")
    return "trimmed " + ", ".join(parts)


def _trim(g: np.ndarray) -> Variant | None:
    sides = _trim_sides(g)
    box = _box_from_sides(g, sides)
    if not _material(box) or box[2] - box[0] < 0.2 or box[3] - box[1] < 0.2:
        return None
    return Variant("trim", _trim_detail(box), box)


def _caption(g: np.ndarray) -> Variant | None:
    """A band of one colour with text along the top and/or bottom edge."""
    h = g.shape[0]
    views = {"top": g, "bottom": g[::-1]}
    cut: dict[str, int] = {}
    for side, lines in views.items():
        colour = float(np.median(lines[:2]))
        if _close_share(lines[:1], colour)[0] < 0.7:
            continue
        close = _close_share(lines, colour)
        # band lines are mostly background (text covers under ~70 % of a line); the picture
        # starts where almost nothing is band colour
        bad = np.flatnonzero(close < 0.3)
        run = int(bad[0]) if bad.size else h
        if not (0.04 * h <= run <= 0.40 * h) or not _sharp_after(lines, run, colour):
            continue
        after = close[run:min(h, run + max(3, h // 20))]
        if float(close[:run].mean()) >= 0.7 and after.size and float(after.mean()) < 0.3:
            cut[side] = run
    if not cut:
        return None
    top, bottom = cut.get("top", 0) / h, cut.get("bottom", 0) / h
    if 1.0 - top - bottom < 0.3:
        return None
    where = "/".join(s for s in ("top", "bottom") if s in cut)
    return Variant("caption", f"caption bar removed {_pct(top + bottom)}% {where}",
                   (top, 0.0, 1.0 - bottom, 1.0))


def _largest_component(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (top, left, bottom, right; blocks) of the largest busy component, if it
    fills most of its box (holes are smooth parts of the photo)."""
    import cv2

    n, _labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                             connectivity=8)
    if n <= 1:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = (int(v) for v in stats[k])
    if area < 0.6 * w * h:
        return None
    return y, x, y + h, x + w


def _refine(lines: np.ndarray, guess: int, reach: int) -> int:
    """The line index near `guess` where the picture starts or ends: the strongest mean
    absolute step between neighbouring lines (a mean profile would miss a photo whose
    average equals the background's)."""
    lo, hi = max(1, guess - reach), min(len(lines) - 1, guess + reach)
    if hi <= lo:
        return guess
    steps = np.abs(np.diff(lines[lo - 1:hi + 1], axis=0)).mean(axis=1)
    return lo + int(np.argmax(steps))


def _uniform_line(line: np.ndarray) -> bool:
    return line.size > 0 and float((np.abs(line - np.median(line)) <= _TOL).mean()) >= 0.9


def _edge_out(g: np.ndarray, side: str, pos: int, span: tuple[int, int]) -> int | None:
    """Refine one edge of a candidate box, walking outwards over photo that the busy map
    missed (a smooth sky along the edge) until the line beyond is uniform interface
    background. None when the edge reaches the frame (not an inner edge)."""
    a, b = span
    lines = g[:, a:b] if side in ("top", "bottom") else g[a:b].T
    n = len(lines)
    step = -1 if side in ("top", "left") else 1
    limit = max(_BLOCK, n // 4)
    for moved in range(0, limit, 2):
        guess = pos + step * moved
        edge = _refine(lines, guess, _BLOCK // 2 if moved else _BLOCK)
        beyond = edge - 2 if step < 0 else edge + 1
        if not 0 <= beyond < n:
            return None
        if _uniform_line(lines[beyond]):
            return edge
    return None


def _embedded(g: np.ndarray) -> Variant | None:
    import cv2

    h, w = g.shape
    bh, bw = h // _BLOCK, w // _BLOCK
    if bh < 6 or bw < 6:
        return None
    # block variance from two area reductions (mean and mean of squares): OpenCV's integer
    # fast path, several times quicker than numpy's std over a reshaped view
    part = g[: bh * _BLOCK, : bw * _BLOCK]
    mean = cv2.resize(part, (bw, bh), interpolation=cv2.INTER_AREA)
    sq = cv2.resize(part * part, (bw, bh), interpolation=cv2.INTER_AREA)
    busy = (sq - mean * mean > 4.0).astype(np.uint8)
    # an odd kernel (no shift) drops text lines and the one-block edges of interface panels
    busy = cv2.morphologyEx(busy, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    found = _largest_component(busy)
    if found is None:
        return None
    top, left, bottom, right = (v * _BLOCK for v in found)
    if (bottom - top) * (right - left) > 0.92 * h * w:  # the photo is the frame (clean)
        return None
    frame = {"top": 0, "left": 0, "bottom": h, "right": w}
    edges = {"top": top, "left": left, "bottom": bottom, "right": right}
    inner: set[str] = set()
    for _ in range(2):  # the second pass refines each edge over the other refined span
        for side, start in (("top", top), ("left", left), ("bottom", bottom), ("right", right)):
            span = ((edges["left"], edges["right"]) if side in ("top", "bottom")
                    else (edges["top"], edges["bottom"]))
            got = None if abs(start - frame[side]) <= 2 else _edge_out(g, side, start, span)
            edges[side] = frame[side] if got is None else got
            inner.discard(side)
            if got is not None:
                inner.add(side)
    t, lft, b, r = edges["top"], edges["left"], edges["bottom"], edges["right"]
    if b - t < 0.2 * h or r - lft < 0.2 * w:
        return None
    box = (t / h, lft / w, b / h, r / w)
    area = (box[2] - box[0]) * (box[3] - box[1])
    if len(inner) < 2 or area > 0.92 or not _material(box):
        return None
    return Variant("embedded", f"embedded region {_pct(area)}% of frame", box)


def _profiles(mask: np.ndarray) -> dict[str, np.ndarray]:
    """Leading fill pixels per line, from each side inwards (top: per column, etc.)."""
    out = {}
    for side, lines in _side_views(mask).items():
        # lines[k] is the k-th line from the edge; count per position across the lines
        lead = np.argmin(lines, axis=0).astype(np.float64)
        lead[lines.all(axis=0)] = len(lines)
        out[side] = lead
    return out


def _fit_slope(y: np.ndarray, rng: np.random.Generator) -> tuple[float, int] | None:
    """RANSAC line through the points (x, y[x]) with 0 < y < len/3: (slope, inliers)."""
    x = np.arange(len(y), dtype=np.float64)
    keep = (y > 0) & (y < len(y) / 3)
    x, y = x[keep], y[keep]
    if len(x) < 12:
        return None
    i = rng.integers(0, len(x), size=(200, 2))
    dx = x[i[:, 1]] - x[i[:, 0]]
    ok = np.abs(dx) >= 4
    i, dx = i[ok], dx[ok]
    if not len(i):
        return None
    slope = (y[i[:, 1]] - y[i[:, 0]]) / dx
    shallow = np.abs(slope) <= math.tan(math.radians(_MAX_SKEW))
    i, slope = i[shallow], slope[shallow]
    if not len(i):
        return None
    icpt = y[i[:, 0]] - slope * x[i[:, 0]]
    resid = np.abs(y[None, :] - (slope[:, None] * x[None, :] + icpt[:, None]))
    counts = (resid <= 1.5).sum(axis=1)
    best = int(np.argmax(counts))
    inl = resid[best] <= 1.5
    if inl.sum() < 12:
        return None
    s, _ = np.polyfit(x[inl], y[inl], 1)
    return float(s), int(inl.sum())


# sign turning each side's fitted profile slope into the counter-clockwise rotation angle
_SKEW_SIGN = {"top": -1.0, "bottom": 1.0, "left": 1.0, "right": -1.0}


def _skew_angle(g: np.ndarray, fill: float) -> float | None:
    mask = np.abs(g - fill) <= _TOL
    rng = np.random.default_rng(0)  # deterministic: the same image gives the same variant
    angles = []
    for side, prof in _profiles(mask).items():
        fit = _fit_slope(prof, rng)
        if fit is not None and fit[1] >= 0.15 * len(prof):
            angles.append(_SKEW_SIGN[side] * math.degrees(math.atan(fit[0])))
    if len(angles) < 2:
        return None
    angles.sort()
    med = float(np.median(angles))
    agree = [a for a in angles if abs(a - med) <= 0.4]
    if len(agree) < 2 or not _MIN_SKEW <= abs(med) <= _MAX_SKEW:
        return None
    return float(np.mean(agree))


def _rotate(plane: np.ndarray, angle: float) -> np.ndarray:
    """Rotate counter-clockwise by `angle` degrees about the centre, same frame size."""
    import cv2

    h, w = plane.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    # Corners rotated out of the frame are lost; repeating the nearest edge pixels there
    # keeps the hash closest to the original's (median 6 bits at 5 degrees, against 20 for a
    # constant fill, on generated photos).
    return cv2.warpAffine(plane, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _deskew(g: np.ndarray) -> Variant | None:
    h, w = g.shape
    c = 3
    corners = np.array([g[:c, :c].mean(), g[:c, -c:].mean(), g[-c:, :c].mean(),
                        g[-c:, -c:].mean()])
    if corners.max() - corners.min() > _TOL:
        return None
    fill = float(np.median(corners))
    angle = _skew_angle(g, fill)
    if angle is None:
        return None
    undone = _rotate(g, -angle)
    sides = _trim_sides(undone, min_share=0.9)
    box = _box_from_sides(undone, sides)
    return Variant("deskew", f"deskewed {-angle:+.1f}°", box, angle=-angle)


def _same(a: Variant, b: Variant) -> bool:
    if abs(a.angle - b.angle) > 0.3:
        return False
    return max(abs(x - y) for x, y in zip(a.box, b.box, strict=True)) < 0.015


def find_variants(plane: np.ndarray) -> tuple[Variant, ...]:
    """The canonical variants worth hashing for one image (empty for a clean photo).

    `plane` is luma (H, W) or RGB (H, W, 3) at any scale; the geometry is scale-free.
    """
    g = _work(plane)
    if min(g.shape) < 32:
        return ()
    found: list[Variant] = []
    for detect in (_trim, _caption, _embedded, _deskew):
        v = detect(g)
        if v is not None and not any(_same(v, f) for f in found):
            found.append(v)
    return tuple(found)


def render(variant: Variant, plane: np.ndarray) -> np.ndarray:
    """The variant's pixels from a full-size plane (luma or RGB), same dtype."""
    arr = np.asarray(plane)
    if variant.angle:
        arr = _rotate(arr, variant.angle)
    h, w = arr.shape[:2]
    top, left, bottom, right = variant.box
    y0, x0 = round(top * h), round(left * w)
    y1, x1 = max(y0 + 1, round(bottom * h)), max(x0 + 1, round(right * w))
    return np.ascontiguousarray(arr[y0:y1, x0:x1])


def canonical_images(plane: np.ndarray) -> list[tuple[Variant, np.ndarray]]:
    """Pixels in, images out: each canonical variant of `plane` with its pixels."""
    return [(v, render(v, plane)) for v in find_variants(plane)]
