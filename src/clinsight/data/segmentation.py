"""Segmentation datasets: images with expert masks, in three layouts, and seeded splits.

- **kvasir-seg**: ``images/<id>.jpg`` and ``masks/<id>.jpg`` of the same size; the masks
  are JPEG grey (255 polyp, 0 background, compression noise at the edges), so they are
  thresholded at 127.
- **covid19-cxr-segmentations**: ``structure.csv`` lists one mask per annotated object,
  each cropped to its bounding box; it is pasted at (``Left``, ``Top``) into a zero image
  of the image's ``Resolution``. Left and right lung become one ``lung`` label; with
  ``heart=True`` the cardiomediastinum is a second label (``heart``), painted last.
- **folder**: ``images/<name>.<ext>`` and ``masks/<name>.png`` (or ``.jpg``, thresholded
  at 127) a user brings; a PNG mask must hold two values (0 and one foreground value).

Every loader lists its cases without reading pixels; `read_case` reads one and checks it
(missing mask, size mismatch, empty or non-binary mask raise `DataError` naming the case).
Splits are image-level, drawn by a seed, and stored with the model (`ImageSplit`).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clinsight.data.images import read_image
from clinsight.errors import DataError, DataNotFoundError, UnsupportedImageError

__all__ = [
    "IMAGE_SUFFIXES",
    "LAYOUTS",
    "ImageSplit",
    "MaskPart",
    "SegmentationCase",
    "SegmentationDataset",
    "SegmentationSample",
    "dicom_pixel_spacing",
    "kfold_ids",
    "load_cxr_lungs",
    "load_folder",
    "load_kvasir",
    "load_segmentation_dataset",
    "read_case",
    "seeded_split",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LAYOUTS = ("kvasir-seg", "covid19-cxr-segmentations", "folder")
JPEG_THRESHOLD = 127
_LUNG_TEMPLATES = ("Left Lung", "Right Lung")
_HEART_TEMPLATE = "Cardiomediastinum"


@dataclass(frozen=True)
class MaskPart:
    """One mask file and where it goes: label index, paste offset, and how to binarise.

    `cropped` masks are pasted at (`left`, `top`) into the image's size; full masks must
    have the image's size. `threshold` None: any non-zero value is foreground (and the file
    must hold at most two values); a number: values above it are foreground (JPEG masks).
    """

    path: Path
    label: int = 1
    left: int = 0
    top: int = 0
    cropped: bool = False
    threshold: int | None = None


@dataclass(frozen=True)
class SegmentationCase:
    """One image and the mask parts that make its label mask (pixels read on demand)."""

    case_id: str
    image_path: Path
    parts: tuple[MaskPart, ...]
    size: tuple[int, int] | None = None  # (width, height) a layout declares; None: the image's


@dataclass(frozen=True)
class SegmentationSample:
    """A read case: `image` float32 in [0, 1], (H, W) or (H, W, 3); `mask` uint8 (H, W) of
    label indices (0 background)."""

    case_id: str
    image: NDArray[np.float32]
    mask: NDArray[np.uint8]


@dataclass(frozen=True)
class SegmentationDataset:
    """The cases of one dataset, its label names (index 0 is background) and channels."""

    name: str
    layout: str
    root: Path
    labels: tuple[str, ...]
    channels: int
    cases: tuple[SegmentationCase, ...]
    image_noun: str
    allow_empty: bool = False

    @property
    def ids(self) -> tuple[str, ...]:
        """The case ids in listing order (sorted)."""
        return tuple(case.case_id for case in self.cases)

    def subset(self, ids: Sequence[str]) -> tuple[SegmentationCase, ...]:
        """The cases with `ids`, in that order.

        Raises:
            DataError: an id is not in the dataset.
        """
        by_id = {case.case_id: case for case in self.cases}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise DataError(
                f"{len(missing)} case id(s) are not in {self.name} (first: {missing[0]!r}); "
                "the split does not belong to this dataset."
            )
        return tuple(by_id[i] for i in ids)

    def fingerprint(self) -> str:
        """sha256 over the case ids and their files' sizes (cheap; no pixels read)."""
        import hashlib

        digest = hashlib.sha256()
        for case in self.cases:
            digest.update(case.case_id.encode())
            for path in (case.image_path, *(p.path for p in case.parts)):
                digest.update(str(path.stat().st_size).encode())
        return digest.hexdigest()


def _require_folder(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DataNotFoundError(
            f"The {what} folder {path.name!r} is missing; a segmentation dataset needs "
            "images/ and masks/ side by side."
        )


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_kvasir(root: Path) -> SegmentationDataset:
    """Kvasir-SEG: colonoscopy frames and polyp masks (JPEG, thresholded at 127).

    Raises:
        DataNotFoundError: images/ or masks/ is missing.
        DataError: an image has no mask of the same name.
    """
    images_dir, masks_dir = root / "images", root / "masks"
    _require_folder(images_dir, "images")
    _require_folder(masks_dir, "masks")
    cases = []
    for image in _images(images_dir):
        mask = masks_dir / image.name
        if not mask.is_file():
            raise DataError(f"Image {image.name!r} has no mask masks/{image.name}.")
        cases.append(
            SegmentationCase(image.stem, image, (MaskPart(mask, threshold=JPEG_THRESHOLD),))
        )
    return SegmentationDataset(
        "kvasir-seg", "kvasir-seg", root, ("background", "polyp"), 3, tuple(cases),
        "colonoscopy frame",
    )  # fmt: skip


def _resolution(text: str, where: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DataError(f"{where}: Resolution {text!r} is not WIDTHxHEIGHT.") from None
    return width, height


def load_cxr_lungs(root: Path, *, heart: bool = False) -> SegmentationDataset:
    """COVID-19 chest X-ray segmentations: both lungs as one label (and the heart region).

    Raises:
        DataNotFoundError: images/, masks/ or structure.csv is missing.
        DataError: a row is malformed, a mask file is missing, or an image has no lung mask.
    """
    images_dir, table = root / "images", root / "structure.csv"
    _require_folder(images_dir, "images")
    _require_folder(root / "masks", "masks")
    if not table.is_file():
        raise DataNotFoundError("structure.csv is missing; it places each cropped mask.")
    present = {p.name: p for p in _images(images_dir)}
    parts: dict[str, list[MaskPart]] = {name: [] for name in present}
    sizes: dict[str, tuple[int, int]] = {}
    wanted = {name: 1 for name in _LUNG_TEMPLATES} | ({_HEART_TEMPLATE: 2} if heart else {})
    with table.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name, template = row.get("Filename", ""), row.get("Template Name", "")
            if name not in present or template not in wanted:
                continue
            where = f"structure.csv row {row.get('#', '?')}"
            mask = root / row["Mask"]
            if not mask.is_file():
                raise DataError(f"{where}: the mask {row['Mask']!r} of {name!r} is missing.")
            sizes[name] = _resolution(row["Resolution"], where)
            try:
                left, top = int(row["Left"]), int(row["Top"])
            except ValueError:
                raise DataError(f"{where}: Left/Top are not whole numbers.") from None
            parts[name].append(MaskPart(mask, wanted[template], left, top, cropped=True))
    cases = []
    for name in sorted(present):
        found = sorted(parts[name], key=lambda p: p.label)  # heart painted over the lungs
        if not any(p.label == 1 for p in found):
            raise DataError(f"Image {name!r} has no lung mask in structure.csv.")
        cases.append(SegmentationCase(Path(name).stem, present[name], tuple(found), sizes[name]))
    labels = ("background", "lung", "heart") if heart else ("background", "lung")
    return SegmentationDataset(
        "cxr-lungs", "covid19-cxr-segmentations", root, labels, 1, tuple(cases),
        "adult chest radiograph",
    )  # fmt: skip


def load_folder(
    root: Path,
    *,
    label: str = "lesion",
    channels: int = 3,
    image_noun: str = "image",
    allow_empty: bool = False,
) -> SegmentationDataset:
    """A plain ``images/`` + ``masks/`` folder: one binary mask per image, same stem.

    Raises:
        DataNotFoundError: images/ or masks/ is missing, or images/ holds no image.
        DataError: an image has no mask.
    """
    images_dir, masks_dir = root / "images", root / "masks"
    _require_folder(images_dir, "images")
    _require_folder(masks_dir, "masks")
    images = _images(images_dir)
    if not images:
        raise DataNotFoundError("The images folder holds no PNG or JPEG image.")
    masks = {p.stem: p for p in _images(masks_dir)}
    cases = []
    for image in images:
        mask = masks.get(image.stem)
        if mask is None:
            raise DataError(
                f"Image {image.name!r} has no mask: put masks/{image.stem}.png beside it."
            )
        jpeg = mask.suffix.lower() in (".jpg", ".jpeg")
        part = MaskPart(mask, threshold=JPEG_THRESHOLD if jpeg else None)
        cases.append(SegmentationCase(image.stem, image, (part,)))
    return SegmentationDataset(
        root.name or "folder", "folder", root, ("background", label), channels, tuple(cases),
        image_noun, allow_empty,
    )  # fmt: skip


def load_segmentation_dataset(
    root: Path, layout: str | None = None, *, heart: bool = False, **folder_options: Any
) -> SegmentationDataset:
    """The dataset at `root` in `layout` (guessed: structure.csv means the CXR layout, a
    folder named kvasir-seg the Kvasir layout, else a plain folder); `heart` applies to the
    CXR layout, `folder_options` to `load_folder`.

    Raises:
        DataError: unknown layout; see the loaders for the rest.
    """
    root = Path(root)
    if layout is None:
        if (root / "structure.csv").is_file():
            layout = "covid19-cxr-segmentations"
        elif root.name == "kvasir-seg":
            layout = "kvasir-seg"
        else:
            layout = "folder"
    if layout == "kvasir-seg":
        return load_kvasir(root)
    if layout == "covid19-cxr-segmentations":
        return load_cxr_lungs(root, heart=heart)
    if layout == "folder":
        return load_folder(root, **folder_options)
    raise DataError(f"Unknown segmentation layout {layout!r}; use one of {', '.join(LAYOUTS)}.")


def _mask_pixels(part: MaskPart, case_id: str) -> NDArray[np.bool_]:
    try:
        with Image.open(part.path) as image:
            values = np.asarray(image.convert("RGB"), dtype=np.uint8).max(axis=2)
    except (OSError, ValueError) as exc:
        raise DataError(f"The mask {part.path.name!r} of case {case_id!r} cannot be read.") from exc
    if part.threshold is not None:
        return np.asarray(values > part.threshold)
    distinct = np.unique(values)
    if len(distinct) > 2:
        raise DataError(
            f"The mask {part.path.name!r} of case {case_id!r} is not binary: it holds "
            f"{len(distinct)} values; save it with 0 for background and one foreground value."
        )
    return np.asarray(values > 0)


def read_case(dataset: SegmentationDataset, case: SegmentationCase) -> SegmentationSample:
    """The image and its label mask, checked.

    Raises:
        DataError: the image cannot be read, a mask's size does not fit the image (or its
            declared resolution), a mask is not binary, or the label mask is empty
            (unless the dataset allows empty masks).
    """
    try:
        image = read_image(case.image_path).pixels
    except UnsupportedImageError as exc:
        raise DataError(f"The image of case {case.case_id!r} cannot be read: {exc}") from exc
    height, width = image.shape[:2]
    if case.size is not None and case.size != (width, height):
        raise DataError(
            f"Case {case.case_id!r}: the image is {width}x{height} but its masks are placed "
            f"in {case.size[0]}x{case.size[1]}."
        )
    mask = np.zeros((height, width), dtype=np.uint8)
    for part in case.parts:
        pixels = _mask_pixels(part, case.case_id)
        h, w = pixels.shape
        if part.cropped:
            if part.left < 0 or part.top < 0 or part.left + w > width or part.top + h > height:
                raise DataError(
                    f"Case {case.case_id!r}: the mask {part.path.name!r} ({w}x{h} at "
                    f"{part.left},{part.top}) lies outside the {width}x{height} image."
                )
            region = mask[part.top : part.top + h, part.left : part.left + w]
            region[pixels] = part.label
        elif (h, w) != (height, width):
            raise DataError(
                f"Case {case.case_id!r}: the mask is {w}x{h} but the image is {width}x{height}."
            )
        else:
            mask[pixels] = part.label
    if not dataset.allow_empty and not mask.any():
        raise DataError(f"The mask of case {case.case_id!r} is empty (no foreground pixel).")
    return SegmentationSample(case.case_id, image, mask)


@dataclass(frozen=True)
class ImageSplit:
    """Image-level split (case ids per part) drawn with `seed`; stored with the model."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...] = ()
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"seed": self.seed, "train": list(self.train), "val": list(self.val),
                "test": list(self.test)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageSplit:
        """Inverse of `to_dict`."""
        return cls(
            tuple(data["train"]), tuple(data["val"]), tuple(data.get("test", ())),
            int(data.get("seed", 0)),
        )  # fmt: skip


def seeded_split(ids: Sequence[str], *, val: int, test: int = 0, seed: int = 0) -> ImageSplit:
    """Shuffle the sorted `ids` with `seed`; the first `test` are test, the next `val`
    validation, the rest training (each part sorted).

    Raises:
        DataError: the parts leave no training image, or ids repeat.
    """
    unique = sorted(set(ids))
    if len(unique) != len(ids):
        raise DataError("Case ids repeat; an image-level split needs distinct ids.")
    if val < 1 or test < 0 or val + test >= len(unique):
        raise DataError(
            f"A split of {len(unique)} images into {val} validation and {test} test leaves "
            "no training image."
        )
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    return ImageSplit(
        tuple(sorted(order[val + test :])), tuple(sorted(order[test : test + val])),
        tuple(sorted(order[:test])), seed,
    )  # fmt: skip


def kfold_ids(ids: Sequence[str], k: int, seed: int = 0) -> list[tuple[str, ...]]:
    """`k` image-disjoint folds of the sorted `ids`, shuffled with `seed` (each sorted).

    Raises:
        DataError: fewer ids than folds, or k < 2.
    """
    unique = sorted(set(ids))
    if k < 2 or len(unique) < k:
        raise DataError(f"{k}-fold cross-validation needs k >= 2 and at least k images.")
    order = np.random.default_rng(seed).permutation(len(unique))
    return [tuple(sorted(unique[i] for i in order[f::k])) for f in range(k)]


def dicom_pixel_spacing(content: bytes) -> tuple[float, float] | None:
    """(row, column) spacing in mm from a DICOM file's PixelSpacing (or, for projection
    radiographs, ImagerPixelSpacing); None for PNG/JPEG or where the header has none."""
    import io

    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return None
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = dataset.get(keyword)
        if value is not None and len(value) == 2:
            row, column = float(value[0]), float(value[1])
            if row > 0 and column > 0:
                return (row, column)
    return None
