"""Labelled edits of images, the way material is altered when it is re-shared, and a variant writer.

`EDITS` maps an edit name to `fn(image, rng) -> image` (RGB in, RGB out); `EDIT_FAMILIES`
groups the names for per-family reporting. Edits that are an encoding (JPEG quality, format
change) are listed in `ENCODED`: `write_variants` writes the encoder's bytes directly and
the function returns exactly what decoding those bytes gives, so a file and the in-memory
edit agree pixel for pixel.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from synthetic_fixtures.photos import PhotoInfo

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]


@dataclass(frozen=True, slots=True)
class Encoding:
    pil_format: str
    ext: str
    options: tuple[tuple[str, object], ...] = ()


ENCODED: dict[str, Encoding] = {
    **{f"jpeg_q{q}": Encoding("JPEG", "jpg", (("quality", q),)) for q in (30, 50, 70, 95)},
    "format_png": Encoding("PNG", "png"),
    "format_webp": Encoding("WEBP", "webp", (("quality", 80), ("method", 4))),
    "format_gif": Encoding("GIF", "gif"),
}


def encode_bytes(img: Image.Image, enc: Encoding) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, enc.pil_format, **dict(enc.options))
    return buf.getvalue()


def _encoded(enc: Encoding) -> Edit:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        with Image.open(io.BytesIO(encode_bytes(img, enc))) as im:
            return im.convert("RGB")

    return edit


def _resize(pct: int) -> Edit:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        return img.resize((max(1, round(w * pct / 100)), max(1, round(h * pct / 100))),
                          Image.Resampling.LANCZOS if pct < 100 else Image.Resampling.BICUBIC)

    return edit


def _crop(pct: int) -> Edit:
    """Remove `pct`% of width and of height, split unevenly between the two sides."""

    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        dw, dh = round(w * pct / 100), round(h * pct / 100)
        left = int(rng.integers(0, dw + 1))
        top = int(rng.integers(0, dh + 1))
        return img.crop((left, top, w - (dw - left), h - (dh - top)))

    return edit


def _bars(grow_w: float, grow_h: float, colour: tuple[int, int, int] = (0, 0, 0)) -> Edit:
    """Centre the image on a canvas grown by these fractions: letterbox, pillarbox or border."""

    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        cw, ch = w + max(1, round(w * grow_w)) if grow_w else w, h + max(1, round(h * grow_h)) if grow_h else h
        canvas = Image.new("RGB", (cw, ch), colour)
        canvas.paste(img, ((cw - w) // 2, (ch - h) // 2))
        return canvas

    return edit


def _transpose(op: Image.Transpose) -> Edit:
    return lambda img, rng: img.transpose(op)


def _enhance(kind: type[ImageEnhance.Brightness] | type[ImageEnhance.Contrast], factor: float) -> Edit:
    return lambda img, rng: kind(img).enhance(factor)


def _gamma(g: float) -> Edit:
    lut = [min(255, round(255 * (i / 255) ** g)) for i in range(256)] * 3
    return lambda img, rng: img.point(lut)


def _blur(radius: float) -> Edit:
    return lambda img, rng: img.filter(ImageFilter.GaussianBlur(radius))


def _noise(sigma: float) -> Edit:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        a = np.asarray(img, dtype=np.float32)
        a = a + rng.normal(0, sigma, size=a.shape).astype(np.float32)
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))

    return edit


def _grayscale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return img.convert("L").convert("RGB")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, size))


_CAPTIONS = ("WHEN YOU SEE IT", "lol", "Monday again", "NO WAY", "best day ever", "#tbt")


def _text_overlay(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Meme-style captions, top and bottom, white with a black outline."""
    out = img.copy()
    w, h = out.size
    draw = ImageDraw.Draw(out)
    size = max(6, h // 9)
    font = _font(size)
    for y in (h * 0.03, h * 0.85):
        text = _CAPTIONS[int(rng.integers(len(_CAPTIONS)))]
        draw.text((w * float(rng.uniform(0.03, 0.2)), y), text, font=font, fill=(255, 255, 255),
                  stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0))
    return out


def _logo_overlay(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A semi-transparent watermark logo in one corner, ~20% of the width."""
    base = img.convert("RGBA")
    w, h = base.size
    lw = max(4, w // 5)
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    corner = int(rng.integers(4))
    x = w - lw - w // 40 if corner % 2 else w // 40
    y = h - lw // 2 - h // 40 if corner // 2 else h // 40
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    draw.ellipse((x, y, x + lw // 2, y + lw // 2), fill=(*colour, 170))
    draw.text((x + lw // 2 + 2, y + lw // 8), "LOGO", font=_font(lw // 5), fill=(255, 255, 255, 200))
    return Image.alpha_composite(base, layer).convert("RGB")


def _stretch(sx: float, sy: float) -> Edit:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        return img.resize((max(1, round(w * sx)), max(1, round(h * sy))), Image.Resampling.BICUBIC)

    return edit


def _small_rotation(deg: float) -> Edit:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        sign = 1 if rng.random() < 0.5 else -1
        return img.rotate(sign * deg, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))

    return edit


def _screenshot(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The image shown inside a larger application-like frame: title bar, sidebar, text lines."""
    w, h = img.size
    cw, ch = round(w * 1.6), round(h * 1.5)
    bg = tuple(int(c) for c in rng.integers(225, 250, size=3))
    frame = Image.new("RGB", (cw, ch), bg)
    draw = ImageDraw.Draw(frame)
    bar = max(3, ch // 14)
    draw.rectangle((0, 0, cw, bar), fill=tuple(int(c) for c in rng.integers(30, 80, size=3)))
    r = max(1, bar // 4)
    for k, c in enumerate(((237, 106, 94), (245, 191, 79), (98, 197, 84))):
        cx = bar // 2 + k * 3 * r
        draw.ellipse((cx - r, bar // 2 - r, cx + r, bar // 2 + r), fill=c)
    side = round(cw * 0.22)
    draw.rectangle((0, bar, side, ch), fill=tuple(int(c) for c in rng.integers(200, 225, size=3)))
    font = _font(max(6, bar // 2))
    for k in range(1, 12):
        y = bar + k * max(6, ch // 14)
        if y > ch - bar:
            break
        draw.text((side // 10, y), f"Chat {k}", font=font, fill=(40, 40, 40))
    scale = min((cw - side - cw // 20) / w, (ch - bar - ch // 10) / h, 1.0)
    inner = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    frame.paste(inner, (side + (cw - side - inner.width) // 2, bar + (ch - bar - inner.height) // 2))
    return frame


def _small_rotation_expanded(deg: float) -> Edit:
    """Rotated by `deg` either way on a canvas grown to hold all of it, white corners."""

    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        sign = 1 if rng.random() < 0.5 else -1
        return img.rotate(sign * deg, resample=Image.Resampling.BICUBIC, expand=True,
                          fillcolor=(255, 255, 255))

    return edit


def _caption_bar(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A meme-style caption: a white band (20% of the height) above the image, black text."""
    w, h = img.size
    band = max(4, round(h * 0.2))
    canvas = Image.new("RGB", (w, h + band), (255, 255, 255))
    canvas.paste(img, (0, band))
    text = _CAPTIONS[int(rng.integers(len(_CAPTIONS)))]
    ImageDraw.Draw(canvas).text((w * float(rng.uniform(0.03, 0.2)), band * 0.2), text,
                                font=_font(band // 2), fill=(0, 0, 0))
    return canvas


def _phone_screenshot(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A phone gallery viewer: portrait black screen, status bar, image fitted to the width,
    a toolbar of icons below."""
    w, h = img.size
    sw = max(8, round(min(w, h) * 0.9))
    sh = round(sw * 2.1)
    screen = Image.new("RGB", (sw, sh), (0, 0, 0))
    draw = ImageDraw.Draw(screen)
    bar = max(3, sh // 30)
    font = _font(max(6, bar - 2))
    draw.text((sw // 20, 1), "9:41", font=font, fill=(255, 255, 255))
    draw.rectangle((sw - sw // 8, bar // 4, sw - sw // 20, bar - bar // 4), fill=(255, 255, 255))
    scale = min(sw / w, (sh - 4 * bar) / h)
    inner = img.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                       Image.Resampling.LANCZOS)
    top = (sh - inner.height) // 2
    screen.paste(inner, ((sw - inner.width) // 2, top))
    y = min(sh - 2 * bar, top + inner.height + bar)
    for k in range(4):
        cx = sw * (2 * k + 1) // 8
        draw.ellipse((cx - bar // 2, y, cx + bar // 2, y + bar), outline=(200, 200, 200))
    return screen


EDIT_FAMILIES: dict[str, list[str]] = {
    "jpeg": [f"jpeg_q{q}" for q in (30, 50, 70, 95)],
    "resize": [f"resize_{p}" for p in (25, 50, 75, 150, 200)],
    "crop": ["crop_5", "crop_10", "crop_20"],
    "pad": ["letterbox", "pillarbox", "border"],
    "dihedral": ["rotate90", "rotate180", "rotate270", "mirror", "flip", "transpose", "transverse"],
    "photometric": ["brightness_up", "brightness_down", "contrast_up", "contrast_down",
                    "gamma_0.6", "gamma_1.6"],
    "blur": ["blur_1", "blur_3"],
    "noise": ["noise_5", "noise_15"],
    "grayscale": ["grayscale"],
    "overlay": ["text_overlay", "logo_overlay"],
    "stretch": ["stretch_h", "stretch_v"],
    "small_rotation": ["rotate_1", "rotate_3", "rotate_5", "rotate_4_expand"],
    "screenshot": ["screenshot", "screenshot_phone"],
    "caption": ["caption_bar"],
    "format": ["format_png", "format_webp", "format_gif"],
}

EDITS: dict[str, Edit] = {
    **{name: _encoded(enc) for name, enc in ENCODED.items()},
    **{f"resize_{p}": _resize(p) for p in (25, 50, 75, 150, 200)},
    **{f"crop_{p}": _crop(p) for p in (5, 10, 20)},
    "letterbox": _bars(0.0, 0.4),
    "pillarbox": _bars(0.4, 0.0),
    "border": _bars(0.16, 0.16, (255, 255, 255)),
    "rotate90": _transpose(Image.Transpose.ROTATE_90),
    "rotate180": _transpose(Image.Transpose.ROTATE_180),
    "rotate270": _transpose(Image.Transpose.ROTATE_270),
    "mirror": _transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "flip": _transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "transpose": _transpose(Image.Transpose.TRANSPOSE),
    "transverse": _transpose(Image.Transpose.TRANSVERSE),
    "brightness_up": _enhance(ImageEnhance.Brightness, 1.3),
    "brightness_down": _enhance(ImageEnhance.Brightness, 0.7),
    "contrast_up": _enhance(ImageEnhance.Contrast, 1.4),
    "contrast_down": _enhance(ImageEnhance.Contrast, 0.6),
    "gamma_0.6": _gamma(0.6),
    "gamma_1.6": _gamma(1.6),
    "blur_1": _blur(1.0),
    "blur_3": _blur(3.0),
    "noise_5": _noise(5.0),
    "noise_15": _noise(15.0),
    "grayscale": _grayscale,
    "text_overlay": _text_overlay,
    "logo_overlay": _logo_overlay,
    "stretch_h": _stretch(1.3, 1.0),
    "stretch_v": _stretch(1.0, 1.3),
    "rotate_1": _small_rotation(1.0),
    "rotate_3": _small_rotation(3.0),
    "rotate_5": _small_rotation(5.0),
    "rotate_4_expand": _small_rotation_expanded(4.0),
    "screenshot": _screenshot,
    "screenshot_phone": _phone_screenshot,
    "caption_bar": _caption_bar,
}

FAMILY_OF: dict[str, str] = {e: fam for fam, names in EDIT_FAMILIES.items() for e in names}


@dataclass(frozen=True, slots=True)
class VariantInfo:
    path: str
    original: str
    edit: str
    family: str


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """The stored pixels as RGB, without EXIF transposition (the same pixels PDQ hashes)."""
    with Image.open(path) as im:
        return im.convert("RGB")


# Edits added later draw after these, so adding one never changes another edit's generator.
_LATER = ("caption_bar", "rotate_4_expand", "screenshot_phone")
_RNG_ORDER = (*sorted(n for n in EDITS if n not in _LATER), *_LATER)


def edit_rng(seed: int, original_index: int, edit: str) -> np.random.Generator:
    """The generator an edit gets in `write_variants`, so callers can reproduce a variant."""
    return np.random.default_rng([seed, original_index, _RNG_ORDER.index(edit)])


def write_variants(
    originals: Sequence[str | os.PathLike[str] | PhotoInfo],
    out_dir: str | os.PathLike[str],
    seed: int,
    edits: Sequence[str] | None = None,
    labels_name: str = "variants.json",
) -> list[VariantInfo]:
    """Write every edit of every original under `out_dir`, plus a JSON labels file.

    Non-encoding edits are stored as PNG so the file holds exactly the edited pixels. Paths in
    the labels file are relative to `out_dir`, so the folder can be moved.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(edits) if edits is not None else list(EDITS)
    infos: list[VariantInfo] = []
    for i, orig in enumerate(originals):
        src = orig.path if isinstance(orig, PhotoInfo) else os.fspath(orig)
        img = load_rgb(src)
        stem = Path(src).stem
        for name in names:
            enc = ENCODED.get(name)
            if enc is not None:
                data = encode_bytes(img, enc)
                ext = enc.ext
            else:
                buf = io.BytesIO()
                EDITS[name](img, edit_rng(seed, i, name)).save(buf, "PNG")
                data, ext = buf.getvalue(), "png"
            path = out / f"{stem}__{name}.{ext}"
            path.write_bytes(data)
            infos.append(VariantInfo(str(path), str(src), name, FAMILY_OF[name]))
    labels = [
        {"path": os.path.relpath(v.path, out), "original": os.path.relpath(v.original, out),
         "edit": v.edit, "family": v.family}
        for v in infos
    ]
    (out / labels_name).write_text(json.dumps(labels, indent=1), encoding="utf-8")
    return infos
