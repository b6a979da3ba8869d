"""The raw bytes of an uploaded image: size limits, format sniffing, frame choice, and the
decoded `SourceImage` that every reader (Pillow, DICOM) returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from clinsight.errors import DataError, DataNotFoundError, UnsupportedImageError

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "ImageFormat",
    "SourceImage",
    "check_pixel_count",
    "frame_index",
    "read_source_bytes",
    "sniff_image_format",
]

ImageFormat = Literal["png", "jpeg", "dicom"]
ACCEPTED_FORMATS = "PNG, JPEG or DICOM (with or without the 128-byte preamble)"
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 256 * 2**20

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
# A DICOM stream without preamble starts with a group 0x0002 (file meta) or
# 0x0008 (identifying) element, stored little endian.
_DICOM_FIRST_GROUPS = (b"\x02\x00", b"\x08\x00")


@dataclass(frozen=True)
class SourceImage:
    """Decoded pixels ready for preprocessing, with technical (never patient) metadata.

    `pixels` is (H, W) grey or (H, W, 3) RGB, float32, every value in [0, 1].
    """

    pixels: NDArray[np.float32]
    format: str
    metadata: dict[str, str]


def read_source_bytes(source: Path | bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of `source`, refusing anything larger than `max_bytes` before reading it.

    Raises:
        DataNotFoundError: the path does not exist.
        DataError: the path cannot be read (a folder, no permission).
        UnsupportedImageError: the content is empty or larger than `max_bytes`.
    """
    if isinstance(source, Path):
        try:
            size = source.stat().st_size
            if size > max_bytes:
                raise UnsupportedImageError(_too_large(size, max_bytes))
            data = source.read_bytes()
        except FileNotFoundError as exc:
            raise DataNotFoundError(f"image file {source} does not exist") from exc
        except OSError as exc:
            raise DataError(f"image file {source} cannot be read: {exc.strerror}") from exc
    else:
        data = bytes(source)
    if len(data) > max_bytes:
        raise UnsupportedImageError(_too_large(len(data), max_bytes))
    if not data:
        raise UnsupportedImageError(f"the image is empty (0 bytes); send a {ACCEPTED_FORMATS} file")
    return data


def sniff_image_format(data: bytes) -> ImageFormat:
    """Which accepted format `data` holds, judged by its leading bytes.

    Raises:
        UnsupportedImageError: the content is empty or none of PNG, JPEG, DICOM.
    """
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data.startswith(_JPEG_SIGNATURE):
        return "jpeg"
    if data[128:132] == b"DICM" or data.startswith(b"DICM") or data[:2] in _DICOM_FIRST_GROUPS:
        return "dicom"
    if not data:
        raise UnsupportedImageError(f"the image is empty (0 bytes); send a {ACCEPTED_FORMATS} file")
    raise UnsupportedImageError(
        f"the content is not a recognised image ({len(data)} bytes with no PNG, JPEG or DICOM "
        f"signature); Clinsight reads {ACCEPTED_FORMATS}"
    )


def frame_index(frame: int | None, frames: int, what: str) -> int:
    """The 0-based frame to decode: `frame`, or the first one when `frame` is None.

    Raises:
        UnsupportedImageError: `frame` is outside 0..frames-1.
    """
    if frame is None:
        return 0
    if not 0 <= frame < frames:
        raise UnsupportedImageError(
            f"frame {frame} is out of range: {what} has {frames} frame(s), "
            f"numbered 0 to {frames - 1}"
        )
    return frame


def check_pixel_count(rows: int, columns: int, max_pixels: int) -> None:
    """Refuse an image of more than `max_pixels` pixels per frame, before decoding it.

    Raises:
        UnsupportedImageError: rows x columns exceeds `max_pixels`.
    """
    if rows * columns > max_pixels:
        raise UnsupportedImageError(
            f"the image is {rows} x {columns} = {rows * columns} pixels, over the limit of "
            f"{max_pixels} pixels; downsample it or raise max_pixels"
        )


def _too_large(size: int, max_bytes: int) -> str:
    return (
        f"the image is {size} bytes, over the limit of {max_bytes} bytes; "
        "send a smaller file or raise max_bytes"
    )
