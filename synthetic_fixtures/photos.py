"""Photo-like synthetic images with natural-image statistics, and a corpus writer in every format.

An image is composed at a modest "canvas" resolution (1/f^beta spectral noise, a sky-like
gradient, textured regions, anti-aliased shapes and printed text), then upsampled to the
target size and given full-resolution grain. Composing at the canvas size is what keeps a
16 MP image well under a second; the grain keeps the fine-scale statistics from being
unnaturally smooth. Everything comes from the caller's `numpy.random.Generator`, so the same
seed gives the same pixels, and the corpus writer gives the same bytes.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Long side of the composition canvas; larger targets are upsampled from it.
CANVAS_LONG_SIDE = 1024
# Long side of the spectral noise field before it is upsampled to the canvas.
NOISE_LONG_SIDE = 256

THUMB_SIZES: tuple[tuple[int, int], ...] = ((32, 24), (64, 48), (120, 90), (96, 128), (200, 150))
DEFAULT_SIZES: tuple[tuple[int, int], ...] = (
    (32, 24), (160, 120), (320, 240), (640, 480), (480, 640), (800, 600), (1024, 768),
    (1280, 720), (1920, 1080), (2048, 1536), (4000, 3000), (4608, 3456),
)

_WORDS = (
    "SALE", "OPEN", "EXIT", "CAFE", "Station", "Platform 4", "No Parking", "Welcome",
    "Bakery", "Hotel", "Main St", "Route 9", "Library", "Pharmacy", "Tickets", "Garden",
)


@dataclass(frozen=True, slots=True)
class Recipe:
    """How one corpus file is stored: Pillow format, mode, EXIF orientation and save options."""

    name: str
    ext: str
    pil_format: str
    mode: str
    exif_orientation: int | None = None
    animated: bool = False


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("jpeg", "jpg", "JPEG", "RGB"),
        Recipe("jpeg_exif1", "jpg", "JPEG", "RGB", exif_orientation=1),
        Recipe("jpeg_exif3", "jpg", "JPEG", "RGB", exif_orientation=3),
        Recipe("jpeg_exif6", "jpg", "JPEG", "RGB", exif_orientation=6),
        Recipe("jpeg_exif8", "jpeg", "JPEG", "RGB", exif_orientation=8),
        Recipe("jpeg_gray", "jpg", "JPEG", "L"),
        Recipe("png_rgb", "png", "PNG", "RGB"),
        Recipe("png_rgba", "png", "PNG", "RGBA"),
        Recipe("png_p", "png", "PNG", "P"),
        Recipe("png_i16", "png", "PNG", "I;16"),
        Recipe("webp", "webp", "WEBP", "RGB"),
        Recipe("gif", "gif", "GIF", "P"),
        Recipe("gif_anim", "gif", "GIF", "P", animated=True),
        Recipe("bmp", "bmp", "BMP", "RGB"),
        Recipe("tiff", "tif", "TIFF", "RGB"),
    )
}
ALL_FORMATS: tuple[str, ...] = tuple(RECIPES)

# Stored pixels are the inverse of what EXIF asks a viewer to do, so that
# `ImageOps.exif_transpose` of the stored file shows the upright scene.
_STORE_FOR_ORIENTATION: dict[int, Image.Transpose | None] = {
    1: None,
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True, slots=True)
class PhotoInfo:
    """One written corpus file. `width`/`height` are the stored pixel size (before EXIF)."""

    path: str
    format: str
    mode: str
    width: int
    height: int
    exif_orientation: int | None
    flat: bool
    recipe: str = ""
    frames: int = 1


def _canvas_size(width: int, height: int) -> tuple[int, int]:
    long_side = max(width, height)
    if long_side <= CANVAS_LONG_SIDE:
        return width, height
    s = CANVAS_LONG_SIDE / long_side
    return max(1, round(width * s)), max(1, round(height * s))


def spectral_noise(rng: np.random.Generator, width: int, height: int, beta: float) -> np.ndarray:
    """Gaussian noise with a 1/f^beta amplitude spectrum, float32 HxW scaled to [0, 1]."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f ** (-beta)
    amp[0, 0] = 0.0
    spec = (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)) * amp
    field = np.fft.irfft2(spec, s=(height, width)).astype(np.float32)
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / max(hi - lo, 1e-6)


def _noise_rgb(rng: np.random.Generator, cw: int, ch: int) -> np.ndarray:
    s = min(1.0, NOISE_LONG_SIDE / max(cw, ch))
    nw, nh = max(2, round(cw * s)), max(2, round(ch * s))
    beta = float(rng.uniform(0.9, 1.4))
    luma = spectral_noise(rng, nw, nh, beta)
    base = rng.uniform(30, 220, size=3).astype(np.float32)
    tint = rng.uniform(-60, 60, size=3).astype(np.float32)
    chroma = spectral_noise(rng, nw, nh, beta + 0.3)
    rgb = (
        base[None, None, :]
        + (luma[..., None] - 0.5) * rng.uniform(120, 220)
        + (chroma[..., None] - 0.5) * tint[None, None, :]
    )
    return cv2.resize(rgb.astype(np.float32), (cw, ch), interpolation=cv2.INTER_CUBIC)


def _add_gradient(rng: np.random.Generator, img: np.ndarray) -> None:
    ch, cw = img.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    y = np.linspace(-1, 1, ch, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, cw, dtype=np.float32)[None, :]
    ramp = (np.cos(angle) * x + np.sin(angle) * y) * 0.5
    colour = rng.uniform(-70, 70, size=3).astype(np.float32)
    img += ramp[..., None] * colour[None, None, :]
    # A vignette, as lenses give.
    img *= (1.0 - 0.25 * (x * x + y * y))[..., None]


def _texture(rng: np.random.Generator, box: tuple[int, int, int, int], scale: int) -> np.ndarray:
    """One of stripes, checks, rings or fine noise over `box` (x0, y0, x1, y1), float32 in [-1, 1]."""
    x0, y0, x1, y1 = box
    y, x = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    period = rng.uniform(3, 24) * scale / 512
    kind = int(rng.integers(4))
    if kind == 0:
        a = rng.uniform(0, np.pi)
        return np.sin((np.cos(a) * x + np.sin(a) * y) * (2 * np.pi / period))
    if kind == 1:
        return np.sign(np.sin(x * np.pi / period) * np.sin(y * np.pi / period))
    if kind == 2:
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        return np.sin(np.hypot(x - cx, y - cy) * (2 * np.pi / period))
    return rng.uniform(-1, 1, size=(y1 - y0, x1 - x0)).astype(np.float32)


def _add_textured_regions(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    """Blend textured convex regions in; the work is done only inside each region's box."""
    ch, cw = img.shape[:2]
    for _ in range(count):
        pts = np.stack([rng.uniform(0, cw, 5), rng.uniform(0, ch, 5)], axis=1).astype(np.int32)
        x0, y0 = np.clip(pts.min(axis=0), 0, [cw - 1, ch - 1])
        x1, y1 = np.clip(pts.max(axis=0) + 1, 1, [cw, ch])
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(pts - [x0, y0]).astype(np.int32), 255,
                           lineType=cv2.LINE_AA)
        m = (mask.astype(np.float32) / 255.0)[..., None]
        tex = _texture(rng, (int(x0), int(y0), int(x1), int(y1)), max(cw, ch))
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        contrast = rng.uniform(15, 60)
        region = colour[None, None, :] + (tex * contrast)[..., None]
        view = img[y0:y1, x0:x1]
        view *= 1 - m
        view += region * m


def _add_shapes(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    ch, cw = img.shape[:2]
    scale = max(cw, ch)
    for _ in range(count):
        colour = tuple(float(c) for c in rng.uniform(0, 255, size=3))
        kind = int(rng.integers(4))
        thick = -1 if rng.random() < 0.7 else max(1, int(scale * rng.uniform(0.002, 0.01)))
        cx, cy = int(rng.uniform(0, cw)), int(rng.uniform(0, ch))
        if kind == 0:
            axes = (max(1, int(scale * rng.uniform(0.02, 0.15))), max(1, int(scale * rng.uniform(0.02, 0.15))))
            cv2.ellipse(img, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, colour, thick, cv2.LINE_AA)
        elif kind == 1:
            w, h = int(scale * rng.uniform(0.03, 0.25)), int(scale * rng.uniform(0.03, 0.25))
            cv2.rectangle(img, (cx, cy), (cx + w, cy + h), colour, thick, cv2.LINE_AA)
        elif kind == 2:
            pts = np.stack([rng.uniform(0, cw, 3), rng.uniform(0, ch, 3)], axis=1).astype(np.int32)
            cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
        else:
            end = (int(rng.uniform(0, cw)), int(rng.uniform(0, ch)))
            cv2.line(img, (cx, cy), end, colour, max(1, int(scale * 0.004)), cv2.LINE_AA)


def _add_lighting(rng: np.random.Generator, img: np.ndarray) -> None:
    # Uneven illumination over everything, so shapes are shaded rather than flat fills.
    ch, cw = img.shape[:2]
    s = min(1.0, 64 / max(cw, ch))
    light = spectral_noise(rng, max(2, round(cw * s)), max(2, round(ch * s)), 2.0)
    light = cv2.resize(light, (cw, ch), interpolation=cv2.INTER_CUBIC)
    img *= (0.6 + 0.7 * light)[..., None]


def _add_text(rng: np.random.Generator, canvas: np.ndarray, count: int) -> np.ndarray:
    ch, cw = canvas.shape[:2]
    if min(cw, ch) < 24:
        return canvas
    pil = Image.fromarray(canvas)
    draw = ImageDraw.Draw(pil)
    for _ in range(count):
        size = max(8, int(min(cw, ch) * rng.uniform(0.04, 0.12)))
        font = ImageFont.load_default(size=size)
        word = _WORDS[int(rng.integers(len(_WORDS)))]
        xy = (float(rng.uniform(0, cw * 0.8)), float(rng.uniform(0, ch * 0.9)))
        fill = tuple(int(c) for c in rng.integers(0, 256, size=3))
        draw.text(xy, word, font=font, fill=fill)
    return np.asarray(pil)


def _add_grain(rng: np.random.Generator, img: np.ndarray, strength: float) -> None:
    """Add full-resolution luminance grain to uint8 HxWx3 `img` in place.

    The grain is a prime-sized random block tiled over the image (cheap at 16 MP), split into
    positive and negative uint8 parts so OpenCV's saturating add/subtract can apply it
    without a pass through a wider integer type.
    """
    height, width = img.shape[:2]
    th, tw = min(height, 521), min(width, 523)
    tile = np.rint(rng.standard_normal((th, tw)) * strength).astype(np.int16)
    tile = np.roll(tile, (int(rng.integers(th)), int(rng.integers(tw))), axis=(0, 1))
    reps = (-(-height // th), -(-width // tw), 1)
    for part, op in ((np.maximum(tile, 0), cv2.add), (np.maximum(-tile, 0), cv2.subtract)):
        block = np.repeat(part.astype(np.uint8)[..., None], 3, axis=2)
        full = np.tile(block, reps)[:height, :width]
        op(img, np.ascontiguousarray(full), dst=img)


def make_photo(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A photo-like uint8 HxWx3 RGB image with natural-image statistics."""
    cw, ch = _canvas_size(width, height)
    img = _noise_rgb(rng, cw, ch)
    _add_gradient(rng, img)
    _add_textured_regions(rng, img, int(rng.integers(1, 4)))
    _add_shapes(rng, img, int(rng.integers(3, 10)))
    _add_lighting(rng, img)
    canvas = np.clip(img, 0, 255).astype(np.uint8)
    canvas = _add_text(rng, canvas, int(rng.integers(1, 4)))
    if (cw, ch) != (width, height):
        canvas = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_LINEAR)
    out = canvas if canvas.flags.writeable and canvas.flags.c_contiguous else canvas.copy()
    _add_grain(rng, out, float(rng.uniform(2.0, 5.0)))
    return out


def make_flat(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A low-information image (near-solid colour, faint gradient): PDQ quality well under 50."""
    base = rng.uniform(20, 235, size=3).astype(np.float32)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    slope = rng.uniform(-6, 6, size=3).astype(np.float32)
    img = base + slope * (0.5 * x + 0.5 * y)
    img = img + rng.uniform(-1, 1, size=(height, width, 1)).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


LOW_INFO_KINDS = ("flat", "gradient", "sky", "dark", "blurred")


def make_low_info(rng: np.random.Generator, width: int, height: int, kind: str) -> np.ndarray:
    """A low-information image of one kind: `flat` (`make_flat`), `gradient` (two colours
    blended along a random direction), `sky` (a smooth vertical gradient with faint cloud
    noise over a thin dark horizon), `dark` (a photo at a few percent of its brightness),
    `blurred` (a photo under a heavy Gaussian blur). Most hash under PDQ quality 50."""
    if kind == "flat":
        return make_flat(rng, width, height)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    if kind == "gradient":
        a, b = (rng.uniform(0, 255, size=3).astype(np.float32) for _ in range(2))
        angle = rng.uniform(0, 2 * np.pi)
        t = np.clip(0.5 + (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle), 0, 1)
        img = a + (b - a) * t
    elif kind == "sky":
        top = rng.uniform([40, 90, 160], [120, 160, 240]).astype(np.float32)
        low = rng.uniform([150, 170, 190], [230, 230, 250]).astype(np.float32)
        img = top + (low - top) * y
        clouds = spectral_noise(rng, width, height, 2.6)[..., None]
        img = img + 12.0 * clouds
        horizon = int(height * rng.uniform(0.85, 0.95))
        img[horizon:] = img[horizon:] * 0.35
    elif kind == "dark":
        img = make_photo(rng, width, height).astype(np.float32) * rng.uniform(0.03, 0.08)
    elif kind == "blurred":
        photo = make_photo(rng, width, height)
        sigma = max(width, height) / rng.uniform(6, 12)
        img = cv2.GaussianBlur(photo, (0, 0), sigma).astype(np.float32)
    else:
        raise ValueError(f"unknown low-information kind {kind!r}")
    img = img + rng.normal(0, 0.8, size=(height, width, 1)).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def scene_to_stored(rgb: np.ndarray, exif_orientation: int | None) -> Image.Image:
    """The stored pixels for an upright scene and an EXIF orientation tag (1, 3, 6 or 8)."""
    img = Image.fromarray(rgb)
    op = _STORE_FOR_ORIENTATION.get(exif_orientation or 1)
    return img.transpose(op) if op is not None else img


def _alpha_for(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    alpha = 255 * np.clip(1.3 - np.hypot(x - 0.5, y - 0.5) * 1.6, 0, 1)
    return alpha.astype(np.uint8)


def _quantize(img: Image.Image) -> Image.Image:
    # Median cut without dithering: deterministic and what many GIF/PNG-8 tools do.
    return img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def encode(rgb: np.ndarray, recipe: Recipe, rng: np.random.Generator) -> tuple[bytes, Image.Image, int]:
    """Encode an upright RGB scene per `recipe`; returns (bytes, stored image, frame count)."""
    stored = scene_to_stored(rgb, recipe.exif_orientation)
    buf = io.BytesIO()
    frames = 1
    if recipe.pil_format == "JPEG":
        img = stored.convert("L") if recipe.mode == "L" else stored
        kwargs: dict[str, object] = {"quality": int(rng.integers(75, 96))}
        if recipe.exif_orientation is not None:
            exif = Image.Exif()
            exif[0x0112] = recipe.exif_orientation
            kwargs["exif"] = exif.tobytes()
        img.save(buf, "JPEG", **kwargs)
    elif recipe.mode == "RGBA":
        img = stored.convert("RGBA")
        img.putalpha(Image.fromarray(_alpha_for(np.asarray(stored))))
        img.save(buf, recipe.pil_format)
    elif recipe.mode == "I;16":
        gray = np.asarray(stored.convert("L"), dtype=np.uint16) * 257
        img = Image.frombytes("I;16", stored.size, gray.astype("<u2").tobytes())
        img.save(buf, "PNG")
    elif recipe.animated:
        img = _quantize(stored)
        frames = 4
        w, h = stored.size
        dx = max(1, w // 16)
        seq = [
            _quantize(Image.fromarray(np.roll(np.asarray(stored), k * dx, axis=1)))
            for k in range(1, frames)
        ]
        img.save(buf, "GIF", save_all=True, append_images=seq, duration=120, loop=0)
    elif recipe.mode == "P":
        img = _quantize(stored)
        img.save(buf, recipe.pil_format)
    elif recipe.pil_format == "WEBP":
        img = stored
        img.save(buf, "WEBP", quality=int(rng.integers(70, 95)), method=4)
    elif recipe.pil_format == "TIFF":
        img = stored
        img.save(buf, "TIFF", compression="tiff_lzw")
    else:
        img = stored
        img.save(buf, recipe.pil_format)
    return buf.getvalue(), img, frames


def write_photo_corpus(
    out_dir: str | os.PathLike[str],
    seed: int,
    n: int,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    formats: Sequence[str] = ALL_FORMATS,
    flat_every: int = 10,
) -> list[PhotoInfo]:
    """Write `n` images cycling through `formats` and `sizes`; every `flat_every`-th is flat.

    Image i draws from its own generator seeded by (seed, i), so a corpus of n images is a
    prefix of the corpus of n+1 images with the same parameters.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    infos: list[PhotoInfo] = []
    for i in range(n):
        recipe = RECIPES[formats[i % len(formats)]]
        width, height = sizes[(i + i // len(formats)) % len(sizes)]
        rng = np.random.default_rng([seed, i])
        flat = flat_every > 0 and i % flat_every == flat_every - 1
        rgb = make_flat(rng, width, height) if flat else make_photo(rng, width, height)
        data, img, frames = encode(rgb, recipe, rng)
        tag = "flat" if flat else "photo"
        path = out / f"{i:05d}_{tag}_{recipe.name}_{width}x{height}.{recipe.ext}"
        path.write_bytes(data)
        infos.append(
            PhotoInfo(
                path=str(path),
                format=recipe.pil_format,
                mode=recipe.mode,
                width=img.size[0],
                height=img.size[1],
                exif_orientation=recipe.exif_orientation,
                flat=flat,
                recipe=recipe.name,
                frames=frames,
            )
        )
    return infos
