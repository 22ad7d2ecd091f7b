"""`triage hash`: hash files and folders to JSON lines, CSV or text on stdout."""

from __future__ import annotations

import os
import sys
from typing import Any, cast

import click

from hashing.decode import DEFAULT_MAX_FRAMES, DEFAULT_PIXEL_LIMIT, DecodeMode
from hashing.errors import UnknownAlgorithmError
from hashing.hasher import DEFAULT_MAX_MEDIA_BYTES, HashOptions
from hashing.i18n import _, localise
from hashing.output import FORMATS, Format, write_records
from hashing.registry import DEFAULT_ALGORITHMS, parse_algorithms


def _algorithms(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        algos = parse_algorithms(value)
    except UnknownAlgorithmError as exc:
        raise click.BadParameter(localise(exc)) from None
    if not algos:
        raise click.BadParameter(_("no algorithm given"))
    return algos


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@click.command("hash")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--algo", "algorithms", default=",".join(DEFAULT_ALGORITHMS),
              show_default=True, callback=_algorithms,
              help="Comma-separated: pdq,phash,dhash,ahash,whash,md5,sha1,sha256.")
@click.option("--dihedral", is_flag=True,
              help="Add the PDQ hashes of the 8 rotated/mirrored pixel planes.")
@click.option("--variants", is_flag=True,
              help="Add hashes of canonical variants (trimmed borders, caption bar removed, "
                   "embedded region, deskewed) when found (jsonl: `variants`).")
@click.option("--decode", "decode_mode", type=click.Choice(["fast", "exact"]), default="fast",
              show_default=True, help="fast: reduced JPEG luma decode for PDQ; exact: full.")
@click.option("--exif-transpose", is_flag=True,
              help="Also hash images as displayed (EXIF orientation applied): <algo>_exif.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: all cores].")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl",
              show_default=True)
@click.option("--pixel-limit", type=click.IntRange(min=1), default=DEFAULT_PIXEL_LIMIT,
              show_default=True, help="Refuse images with more pixels (decompression bombs).")
@click.option("--max-media-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_MEDIA_BYTES,
              show_default=True,
              help="Larger files are streamed: digests only for images, videos decoded from disk.")
@click.option("--video-fps", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Video frames sampled per second.")
@click.option("--max-frames", type=click.IntRange(min=1), default=DEFAULT_MAX_FRAMES,
              show_default=True,
              help="Frames (or pages) hashed per animated or multi-page image; the rest are "
                   "noted as not examined.")
def hash_cmd(paths: tuple[str, ...], algorithms: tuple[str, ...], dihedral: bool,
             variants: bool, decode_mode: str, exif_transpose: bool, workers: int | None,
             fmt: str, pixel_limit: int, max_media_bytes: int, video_fps: float,
             max_frames: int) -> None:
    """Hash PATH... (files, or folders walked recursively in sorted order, archive members
    after their archive: the rows a scan's manifest holds).

    Reads evidence read-only and never follows symlinks. A file that cannot be decoded is an
    `error` row that still carries its digests; the exit status is 0 unless the arguments
    are wrong.
    """
    for p in paths:
        if not os.path.lexists(p):
            raise click.BadParameter(_("{path!r} does not exist").format(path=p),
                                     param_hint="PATH")
    opts = HashOptions(algorithms=algorithms, dihedral=dihedral, variants=variants,
                       decode_mode=cast(DecodeMode, decode_mode), pixel_limit=pixel_limit,
                       exif_transpose=exif_transpose, video_fps=video_fps,
                       max_media_bytes=max_media_bytes, max_frames=max_frames)
    from triage.runner import hash_tree

    progress: Any = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(unit="file", file=sys.stderr)
    records = hash_tree(paths, opts, workers or _default_workers())
    out = sys.stdout
    for _written in write_records(records, cast(Format, fmt), out, algorithms, dihedral=dihedral,
                           exif_transpose=exif_transpose):
        if progress is not None:
            progress.update()
    if progress is not None:
        progress.close()
