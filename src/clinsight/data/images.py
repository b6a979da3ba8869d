"""Image input for prediction: PNG, JPEG and DICOM, recognised by content and scaled to [0, 1].

`read_image` sniffs the bytes (never the file name), decodes PNG and JPEG with
Pillow and hands DICOM to `clinsight.data.dicom.read_dicom`. Every reader
returns a `SourceImage`: float32 pixels in [0, 1] plus non-PHI technical facts.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from clinsight.data.dicom import read_dicom
from clinsight.data.source import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageFormat,
    SourceImage,
    check_pixel_count,
    frame_index,
    read_source_bytes,
    sniff_image_format,
)
from clinsight.errors import UnsupportedImageError

__all__ = ["read_image"]


def read_image(
    source: Path | bytes,
    *,
    frame: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> SourceImage:
    """Decode a PNG, JPEG or DICOM image (sniffed from its content) into [0, 1] pixels.

    `frame` picks one frame of a multi-frame image (default: the first);
    `max_pixels` caps rows x columns before any pixel is decoded.

    Raises:
        DataNotFoundError: `source` is a path that does not exist.
        UnsupportedImageError: the content is empty, too large, not an accepted
            format, malformed, not an image (DICOM SR, RT, SEG...) or `frame`
            is out of range.
    """
    data = read_source_bytes(source, max_bytes=max_bytes)
    kind = sniff_image_format(data)
    if kind == "dicom":
        return read_dicom(data, frame=frame, max_pixels=max_pixels, max_bytes=max_bytes)
    return _read_with_pillow(data, kind, frame=frame, max_pixels=max_pixels)


def _read_with_pillow(
    data: bytes, kind: ImageFormat, *, frame: int | None, max_pixels: int
) -> SourceImage:
    name = kind.upper()
    try:
        with Image.open(io.BytesIO(data), formats=[name]) as image:
            width, height = image.size
            # Pillow's own decompression-bomb limit stays in force when it is the stricter one.
            limit = max_pixels
            if Image.MAX_IMAGE_PIXELS is not None:
                limit = min(limit, Image.MAX_IMAGE_PIXELS)
            check_pixel_count(height, width, limit)
            frames = int(getattr(image, "n_frames", 1))
            index = frame_index(frame, frames, f"this {name} image")
            image.seek(index)
            mode = image.mode
            oriented = ImageOps.exif_transpose(image) if kind == "jpeg" else image
            pixels = _pillow_pixels(oriented)
    except Image.DecompressionBombError as exc:
        raise UnsupportedImageError(f"the {name} image is a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnsupportedImageError(
            f"the {name} image is malformed or truncated ({exc}); re-export it from the source"
        ) from exc
    metadata = {
        "mode": mode,
        "rows": str(pixels.shape[0]),
        "columns": str(pixels.shape[1]),
        "frames": str(frames),
        "frame": str(index),
    }
    return SourceImage(pixels=pixels, format=kind, metadata=metadata)


def _pillow_pixels(image: Image.Image) -> NDArray[np.float32]:
    """Grey modes stay (H, W); colour, palette and alpha modes become RGB (alpha dropped)."""
    mode = image.mode
    if mode == "1":
        return np.asarray(image, dtype=np.float32)
    if mode == "I" or mode.startswith("I;16"):
        # PNG grey goes up to 16 bits; Pillow opens it as "I;16" (or "I" in older releases).
        wide = np.asarray(image, dtype=np.float64) / 65535.0
        return np.clip(wide, 0.0, 1.0).astype(np.float32)
    if mode != "L":
        image = image.convert("L" if mode == "LA" else "RGB")
    # 8-bit: one float32 division keeps every value in [0, 1] exactly (255 / 255 == 1).
    return np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
