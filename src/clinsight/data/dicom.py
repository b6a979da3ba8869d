"""DICOM images for prediction: one frame, through the Modality and VOI LUTs, scaled to [0, 1].

The preamble is never trusted: files with or without the 128-byte preamble and
"DICM" are parsed with `force=True`, then checked to really hold an image.
Grey images go stored values → Modality LUT (rescale or LUT) → VOI LUT (LUT,
else window, else min-max of the frame) → [0, 1], inverted for MONOCHROME1.
Enhanced multi-frame objects take rescale and window from their functional
groups. Colour (RGB, YBR converted by pydicom) and palette colour become RGB.
Segmentations and RT dose grids are refused: they are not images to diagnose.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.pixels.processing import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
)
from pydicom.pixels.utils import pixel_array
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RTDoseStorage,
    SegmentationStorage,
)

from clinsight.data.source import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    SourceImage,
    check_pixel_count,
    frame_index,
    read_source_bytes,
    sniff_image_format,
)
from clinsight.errors import ClinsightError, UnsupportedImageError

__all__ = ["read_dicom"]

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_NOT_DIAGNOSTIC = {
    "SEG": "a segmentation (label mask drawn on an image); send the source image instead",
    "RTDOSE": "a radiotherapy dose grid, not an acquired image",
}
_NOT_DIAGNOSTIC_SOP_CLASSES: dict[str, str] = {SegmentationStorage: "SEG", RTDoseStorage: "RTDOSE"}
# Attributes the pydicom LUT functions read; copied into a per-frame view.
_LUT_KEYWORDS = (
    "PhotometricInterpretation",
    "BitsStored",
    "PixelRepresentation",
    "ModalityLUTSequence",
    "RescaleSlope",
    "RescaleIntercept",
    "VOILUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
)
_FRAME_LUT_SEQUENCES = ("PixelValueTransformationSequence", "FrameVOILUTSequence")


def read_dicom(
    source: Path | bytes,
    *,
    frame: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> SourceImage:
    """Decode one frame of a DICOM image (first by default) into [0, 1] pixels.

    Raises:
        DataNotFoundError: `source` is a path that does not exist.
        UnsupportedImageError: the content is not DICOM, is malformed or
            truncated, holds no image (SR, RT plan/structure set/dose, SEG,
            waveform...), is over `max_pixels`, or `frame` is out of range.
    """
    data = read_source_bytes(source, max_bytes=max_bytes)
    if sniff_image_format(data) != "dicom":
        raise UnsupportedImageError("the content is not DICOM (no DICM marker, no DICOM header)")
    if data.startswith(b"DICM"):
        data = data[4:]
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # untrusted bytes: any parser failure means a malformed file
        raise UnsupportedImageError(
            f"the DICOM file cannot be parsed ({type(exc).__name__}): it is malformed "
            "or truncated; re-export it from the PACS or modality"
        ) from exc
    try:
        return _read_dataset(dataset, frame=frame, max_pixels=max_pixels)
    except ClinsightError:
        raise
    except Exception as exc:  # a corrupt element value surfaces only when it is read
        raise UnsupportedImageError(
            f"the DICOM file is malformed or truncated ({type(exc).__name__}: "
            f"{str(exc)[:200]}); re-export it from the PACS or modality"
        ) from exc


def _read_dataset(dataset: Dataset, *, frame: int | None, max_pixels: int) -> SourceImage:
    what = _describe(dataset)
    _check_is_image(dataset, what)
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    check_pixel_count(rows, columns, max_pixels)
    frames = int(dataset.get("NumberOfFrames") or 1)
    index = frame_index(frame, frames, what)
    _ensure_transfer_syntax(dataset)
    syntax = dataset.file_meta.TransferSyntaxUID
    try:
        stored = pixel_array(dataset, index=index)
    except Exception as exc:  # decoders raise many types on corrupt or truncated pixel data
        raise UnsupportedImageError(
            f"the pixel data of {what} ({syntax.name}) cannot be decoded "
            f"({type(exc).__name__}: {str(exc)[:300]}); the file is truncated or corrupt, "
            "or its transfer syntax has no installed decoder"
        ) from exc

    photometric = str(dataset.get("PhotometricInterpretation", "")).strip().upper()
    samples = int(dataset.get("SamplesPerPixel") or 1)
    metadata = {
        "modality": str(dataset.get("Modality", "")),
        "body_part": str(dataset.get("BodyPartExamined", "")).strip().upper(),
        "view": str(dataset.get("ViewPosition", "")).strip().upper(),
        "sop_class": _sop_class_name(dataset),
        "photometric": photometric,
        "transfer_syntax": str(syntax.name),
        "frames": str(frames),
        "frame": str(index),
        "rows": str(rows),
        "columns": str(columns),
        "bits_stored": str(dataset.get("BitsStored", dataset.get("BitsAllocated", ""))),
    }
    if photometric == "PALETTE COLOR" and samples == 1:
        pixels = _palette_to_rgb(stored, dataset)
    elif samples == 3:
        bits = int(dataset.get("BitsStored") or dataset.BitsAllocated)
        pixels = stored.astype(np.float64) / float(2**bits - 1)
    elif photometric in ("MONOCHROME1", "MONOCHROME2") and samples == 1:
        pixels, steps = _grey_to_unit(stored, _frame_view(dataset, index))
        metadata.update(steps)
    else:
        raise UnsupportedImageError(
            f"{what} has photometric interpretation {photometric or 'missing'} with "
            f"{samples} sample(s) per pixel; Clinsight reads MONOCHROME1/2, RGB, YBR and "
            "PALETTE COLOR images"
        )
    unit = np.clip(np.nan_to_num(pixels, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return SourceImage(pixels=unit.astype(np.float32), format="dicom", metadata=metadata)


def _sop_class_name(dataset: Dataset) -> str:
    uid = dataset.get("SOPClassUID") or dataset.file_meta.get("MediaStorageSOPClassUID")
    return str(UID(str(uid)).name) if uid else ""


def _describe(dataset: Dataset) -> str:
    """'this CT Image Storage object (modality CT)': what the object is, without PHI."""
    sop = _sop_class_name(dataset)
    modality = dataset.get("Modality")
    what = f"this {sop} object" if sop else "this DICOM object (no SOP Class UID)"
    return what + (f" (modality {modality})" if modality else "")


def _check_is_image(dataset: Dataset, what: str) -> None:
    if len(dataset) == 0:
        raise UnsupportedImageError(
            "the DICOM file has a file meta header but no readable dataset: the file is "
            "truncated (compressed pixel data cut short reads this way) or empty; "
            "re-export it from the PACS or modality"
        )
    uid = dataset.get("SOPClassUID")
    kind = _NOT_DIAGNOSTIC_SOP_CLASSES.get(str(uid)) if uid else None
    kind = kind or str(dataset.get("Modality", "")).upper()
    if kind in _NOT_DIAGNOSTIC:
        raise UnsupportedImageError(
            f"{what} is {_NOT_DIAGNOSTIC[kind]}; Clinsight needs an image to analyse"
        )
    if not any(keyword in dataset for keyword in _PIXEL_KEYWORDS):
        raise UnsupportedImageError(
            f"{what} holds no pixel data, so it is not an image (structured report, RT plan "
            "or structure set, waveform, presentation state, or a truncated file); "
            "Clinsight needs an image such as CT, MR, CR/DX, US, NM or secondary capture"
        )
    if not dataset.get("Rows") or not dataset.get("Columns"):
        raise UnsupportedImageError(f"{what} has pixel data but no Rows/Columns: it is malformed")


def _ensure_transfer_syntax(dataset: Dataset) -> None:
    """Files without file meta (no preamble either) carry no Transfer Syntax UID: infer it."""
    if "TransferSyntaxUID" in dataset.file_meta:
        return
    implicit, little = dataset.original_encoding
    if little is False:
        dataset.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    else:
        dataset.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        )


def _frame_view(dataset: Dataset, index: int) -> Dataset:
    """The LUT attributes of frame `index`; functional groups override the top level."""
    view = Dataset()
    view.file_meta = dataset.file_meta
    for keyword in _LUT_KEYWORDS:
        if keyword in dataset:
            view.add(dataset[keyword])
    groups = []
    if shared := dataset.get("SharedFunctionalGroupsSequence"):
        groups.append(shared[0])
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    for group in groups:
        for keyword in _FRAME_LUT_SEQUENCES:
            if items := group.get(keyword):
                for element in items[0]:
                    view.add(element)
    return view


def _grey_to_unit(
    stored: NDArray[Any], view: Dataset
) -> tuple[NDArray[np.float64], dict[str, str]]:
    """Modality LUT, then VOI LUT (or min-max), scaled to [0, 1]; MONOCHROME1 inverted."""
    steps: dict[str, str] = {}
    if np.issubdtype(stored.dtype, np.floating):
        values = stored.astype(np.float64)
        steps["rescale"] = "none (float pixel data)"
        unit, steps["window"] = _min_max(values), "min-max of the frame (float pixel data)"
    else:
        values = apply_modality_lut(stored, view)
        if view.get("ModalityLUTSequence"):
            steps["rescale"] = "modality LUT"
        elif "RescaleSlope" in view and "RescaleIntercept" in view:
            steps["rescale"] = f"slope={view.RescaleSlope} intercept={view.RescaleIntercept}"
        else:
            steps["rescale"] = "none"
        unit, steps["window"] = _apply_voi(values, view)
    inverted = str(view.PhotometricInterpretation).strip().upper() == "MONOCHROME1"
    steps["inverted"] = "yes (MONOCHROME1)" if inverted else "no"
    return (1.0 - unit if inverted else unit), steps


def _apply_voi(values: NDArray[Any], view: Dataset) -> tuple[NDArray[np.float64], str]:
    """The VOI LUT or first window scaled by its own output range, else min-max of the frame."""
    lut = view.get("VOILUTSequence")
    if lut and "LUTDescriptor" in lut[0] and "LUTData" in lut[0]:
        entries, first, _ = (int(v) for v in lut[0].LUTDescriptor)
        domain = np.arange(first, first + (entries or 2**16))
        out_range = apply_voi(domain, view)
        mapped = apply_voi(np.rint(values).astype(np.int64), view)
        return _scale(mapped, float(out_range.min()), float(out_range.max())), "VOI LUT"
    if "WindowCenter" in view and "WindowWidth" in view:
        try:
            windowed = apply_windowing(values, view)
            # pydicom maps everything below/above the window to its output bounds.
            low, high = apply_windowing(np.array([-np.inf, np.inf]), view)
        except ValueError:
            return _min_max(values), "min-max of the frame (window in file is invalid)"
        center, width = view["WindowCenter"], view["WindowWidth"]
        function = str(view.get("VOILUTFunction", "LINEAR"))
        return _scale(windowed, float(low), float(high)), (
            f"center={_first(center.value, center.VM)} width={_first(width.value, width.VM)} "
            f"({function})"
        )
    return _min_max(values), "min-max of the frame"


def _first(value: Any, multiplicity: int) -> str:
    return str(value[0] if multiplicity > 1 else value)


def _min_max(values: NDArray[Any]) -> NDArray[np.float64]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.float64)
    return _scale(values, float(finite.min()), float(finite.max()))


def _scale(values: NDArray[Any], low: float, high: float) -> NDArray[np.float64]:
    if high <= low:
        return np.zeros(values.shape, dtype=np.float64)
    return (values.astype(np.float64) - low) / (high - low)


def _palette_to_rgb(stored: NDArray[Any], dataset: Dataset) -> NDArray[np.float64]:
    """Palette indices → RGB, scaled by the bit depth the LUT descriptor declares."""
    rgb = apply_color_lut(stored, _palette_view(dataset))[..., :3]
    bits = int(dataset.RedPaletteColorLookupTableDescriptor[2])
    return rgb.astype(np.float64) / float(2**bits - 1)


def _palette_view(dataset: Dataset) -> Dataset:
    """The dataset, or a copy of its palette with big endian 16-bit LUT data made native.

    pydicom reads non-segmented OW palette data as little endian whatever the
    transfer syntax, which turns big endian palette images almost black.
    """
    big_endian = not dataset.file_meta.TransferSyntaxUID.is_little_endian
    if not big_endian or "RedPaletteColorLookupTableData" not in dataset:
        return dataset
    view = Dataset()
    view.file_meta = dataset.file_meta
    for colour in ("Red", "Green", "Blue", "Alpha"):
        descriptor = f"{colour}PaletteColorLookupTableDescriptor"
        data = f"{colour}PaletteColorLookupTableData"
        if descriptor in dataset and data in dataset:
            view.add(dataset[descriptor])
            raw = dataset[data].value
            if len(raw) == 2 * (int(dataset[descriptor].value[0]) or 2**16):
                raw = np.frombuffer(raw, dtype=">u2").astype("<u2").tobytes()
            view.add_new(data, "OW", raw)
    return view
