"""Segment one image with a registered model: decode, gate, mask, areas, outline picture.

`segment_content` is the use case the command line calls (`clinsight segment predict`) and
that the API route and web result page will call: it decodes the bytes once (PNG, JPEG or
DICOM), takes the pixel spacing from a DICOM header (areas in mm²), runs the intended-use
gate and the model, and returns the result with what a page needs (`outline_png`: the
outline over the image; `plain_png`: the image alone).

DICOM SEG hook: for a DICOM input, `dicom_seg_bytes` builds the SEG object referencing the
source image through `interop.dicom_seg.build_seg(source_dataset, mask, label_names)`
(written on the `dicomseg` branch); storing it beside the study and serving it for
download is wired at merge, next to the prediction record.
"""

from __future__ import annotations

import importlib
import io
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion

from clinsight.config import Settings
from clinsight.data.images import read_image
from clinsight.data.segmentation import dicom_pixel_spacing
from clinsight.data.source import SourceImage, sniff_image_format
from clinsight.inference.segmentation import SegmentationPredictor, SegmentationResult

__all__ = [
    "OUTLINE_COLOURS",
    "SegmentedImage",
    "dicom_seg_bytes",
    "outline_png",
    "plain_png",
    "segment_content",
]

OUTLINE_COLOURS = ((255, 0, 255), (0, 200, 255), (255, 200, 0))
"""Outline colour of label 1, 2, 3 (magenta, cyan, amber: visible on grey and on red)."""


@dataclass(frozen=True)
class SegmentedImage:
    """The decoded image and the model's result (mask None when the gate refused it)."""

    image: SourceImage
    result: SegmentationResult
    is_dicom: bool


def segment_content(
    predictor: SegmentationPredictor, content: bytes, settings: Settings | None = None
) -> SegmentedImage:
    """Decode `content`, check it against the model's intended use, and segment it.

    Raises:
        UnsupportedImageError: the bytes are not a usable PNG, JPEG or DICOM image.
        DataError: the pixels are not finite.
        ModelError: the model cannot run.
    """
    image = read_image(content)
    is_dicom = sniff_image_format(content) == "dicom"
    spacing = dicom_pixel_spacing(content) if is_dicom else None
    warn_only = settings is not None and predictor.model.name in settings.intended_use_warn_only
    result = predictor.predict(
        image.pixels, source=image.metadata, spacing_mm=spacing, warn_only=warn_only
    )
    return SegmentedImage(image, result, is_dicom)


def _rgb(pixels: NDArray[np.float32]) -> NDArray[np.uint8]:
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
    return np.asarray(np.rint(np.clip(rgb[..., :3], 0, 1) * 255), dtype=np.uint8)


def _png(array: NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def plain_png(pixels: NDArray[np.float32]) -> bytes:
    """The image alone as PNG (the page's toggle to the plain image)."""
    return _png(_rgb(pixels))


def outline_png(pixels: NDArray[np.float32], mask: NDArray[np.uint8]) -> bytes:
    """The image with each label's outline drawn in its colour, about 0.4 % of the image's
    shorter side thick (at least one pixel)."""
    canvas = _rgb(pixels).copy()
    thickness = max(1, round(min(mask.shape) / 250))
    for label in range(1, int(mask.max(initial=0)) + 1):
        region = mask == label
        edge = region & ~binary_erosion(region, iterations=1, border_value=0)
        if thickness > 1:
            edge = binary_dilation(edge, iterations=thickness - 1)
        canvas[edge] = OUTLINE_COLOURS[(label - 1) % len(OUTLINE_COLOURS)]
    return _png(canvas)


def dicom_seg_bytes(content: bytes, segmented: SegmentedImage) -> bytes | None:
    """The DICOM SEG object of a DICOM input's mask, referencing the source image (None for
    PNG/JPEG, a refused image, or before `interop.dicom_seg` is merged).

    Raises:
        DataError: the SEG cannot be built from this source (see `interop.dicom_seg`).
    """
    mask = segmented.result.mask
    if not segmented.is_dicom or mask is None:
        return None
    try:
        module = importlib.import_module("clinsight.interop.dicom_seg")
    except ModuleNotFoundError:  # the dicomseg branch is not merged yet
        return None
    import pydicom

    source = pydicom.dcmread(io.BytesIO(content))
    built: bytes = module.build_seg(source, mask, list(segmented.result.labels[1:]))
    return built
