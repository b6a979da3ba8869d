"""MedMNIST v3 2D datasets: catalogue, checksummed loading from the data directory, download.

The data directory is read first; a missing file is downloaded from the official
Zenodo record (when downloads are allowed) and always verified against the
official md5 before use.
"""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from clinsight.data.intended_population import IntendedPopulation
from clinsight.errors import ChecksumError, DataError, DataNotFoundError
from clinsight.files import atomic_writer

__all__ = [
    "CATALOGUE",
    "MedMNISTInfo",
    "MedMNISTSplits",
    "Split",
    "TaskType",
    "dataset_info",
    "fetch_medmnist",
    "load_medmnist",
    "md5_of",
    "medmnist_path",
]

ZENODO_RECORD = "https://zenodo.org/records/10519652/files"
SIZES = (28, 64, 128, 224)


class TaskType(StrEnum):
    """How labels are read: one of the MedMNIST task kinds."""

    BINARY = "binary"
    MULTI_CLASS = "multi-class"
    ORDINAL = "ordinal-regression"
    MULTI_LABEL = "multi-label"


class Split(StrEnum):
    """The official splits of every MedMNIST dataset."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


@dataclass(frozen=True)
class MedMNISTInfo:
    """What a MedMNIST dataset holds and where its official files are."""

    name: str
    description: str
    modality: str
    task: TaskType
    labels: tuple[str, ...]
    channels: int
    md5: dict[int, str]
    positive_index: int = 1
    dicom_modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    # Who the source dataset's images come from, where its provenance states an age range.
    population: IntendedPopulation | None = None
    # What the intended use declares beyond modality and body part (empty: not checked).
    dicom_photometric: tuple[str, ...] = ()
    dicom_views: tuple[str, ...] = ()
    image_noun: str = ""

    @property
    def num_classes(self) -> int:
        """Number of output units a model needs (labels for multi-label)."""
        return len(self.labels)

    def filename(self, size: int) -> str:
        """Official file name at a given image size."""
        return f"{self.name}.npz" if size == 28 else f"{self.name}_{size}.npz"

    def url(self, size: int) -> str:
        """Official download URL at a given image size."""
        return f"{ZENODO_RECORD}/{self.filename(size)}?download=1"


_ORGANS = (
    "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
    "liver", "lung-left", "lung-right", "pancreas", "spleen",
)  # fmt: skip

_PNEUMONIA_CHILDREN = IntendedPopulation(
    1, 5, "children aged 1 to 5 years",
    "Kermany et al., Cell 2018 (the source of PneumoniaMNIST): chest X-rays of paediatric "
    "patients one to five years old, Guangzhou Women and Children's Medical Center",
)  # fmt: skip

CATALOGUE: dict[str, MedMNISTInfo] = {
    info.name: info
    for info in (
        MedMNISTInfo(
            "pathmnist", "Colon pathology (NCT-CRC-HE-100K)", "pathology",
            TaskType.MULTI_CLASS,
            ("adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
             "normal colon mucosa", "cancer-associated stroma",
             "colorectal adenocarcinoma epithelium"),
            3,
            {28: "a8b06965200029087d5bd730944a56c1", 64: "55aa9c1e0525abe5a6b9d8343a507616",
             128: "ac42d08fb904d92c244187169d1fd1d9", 224: "2c51a510bcdc9cf8ddb2af93af1eadec"},
        ),
        MedMNISTInfo(
            "chestmnist", "Chest X-ray (NIH ChestX-ray14)", "chest x-ray",
            TaskType.MULTI_LABEL,
            ("atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule",
             "pneumonia", "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis",
             "pleural", "hernia"),
            1,
            {28: "02c8a6516a18b556561a56cbdd36c4a8", 64: "9de6cd0b934ebb5b7426cfba5efbae16",
             128: "db107e5590b27930b62dbaf558aebee3", 224: "45bd33e6f06c3e8cdb481c74a89152aa"},
            dicom_modalities=("CR", "DX"), body_parts=("CHEST",),
            dicom_photometric=("MONOCHROME1", "MONOCHROME2"), dicom_views=("AP", "PA"),
            image_noun="chest radiograph",
        ),
        MedMNISTInfo(
            "dermamnist", "Dermatoscopy (HAM10000)", "dermatoscopy",
            TaskType.MULTI_CLASS,
            ("actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
             "benign keratosis-like lesions", "dermatofibroma", "melanoma", "melanocytic nevi",
             "vascular lesions"),
            3,
            {28: "0744692d530f8e62ec473284d019b0c7", 64: "b70a2f5635c6199aeaa28c31d7202e1f",
             128: "2defd784463fa5243564e855ed717de1", 224: "8974907d8e169bef5f5b96bc506ae45d"},
        ),
        MedMNISTInfo(
            "octmnist", "Retinal OCT", "optical coherence tomography",
            TaskType.MULTI_CLASS,
            ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
            1,
            {28: "c68d92d5b585d8d81f7112f81e2d0842", 64: "e229e9440236b774d9f0dfef9d07bdaf",
             128: "0a97e76651ace45c5d943ee3f65b63ae", 224: "abc493b6d529d5de7569faaef2773ba3"},
        ),
        MedMNISTInfo(
            "pneumoniamnist", "Pediatric chest X-ray, pneumonia vs normal", "chest x-ray",
            TaskType.BINARY,
            ("normal", "pneumonia"),
            1,
            {28: "28209eda62fecd6e6a2d98b1501bb15f", 64: "8f4eceb4ccffa70c672198ea285246c6",
             128: "05b46931834c231683c68f40c47b2971", 224: "d6a3c71de1b945ea11211b03746c1fe1"},
            dicom_modalities=("CR", "DX"), body_parts=("CHEST",), population=_PNEUMONIA_CHILDREN,
            dicom_photometric=("MONOCHROME1", "MONOCHROME2"), dicom_views=("AP", "PA"),
            image_noun="paediatric chest radiograph",
        ),
        MedMNISTInfo(
            "retinamnist", "Fundus camera, diabetic retinopathy grade 0-4", "fundus photography",
            TaskType.ORDINAL,
            ("0", "1", "2", "3", "4"),
            3,
            {28: "bd4c0672f1bba3e3a89f0e4e876791e4", 64: "afda852cc34dcda56f86ad2b2457dbcc",
             224: "eae7e3b6f3fcbda4ae613ebdcbe35348"},
        ),
        MedMNISTInfo(
            "breastmnist", "Breast ultrasound, malignant vs normal/benign", "ultrasound",
            TaskType.BINARY,
            ("malignant", "normal, benign"),
            1,
            {28: "750601b1f35ba3300ea97c75c52ff8f6", 64: "742edef2a1fd1524b2efff4bd7ba9364",
             128: "363e4b3f8d712e9b5de15470a2aaadf1", 224: "b56378a6eefa9fed602bb16d192d4c8b"},
            positive_index=0, dicom_modalities=("US",), body_parts=("BREAST",),
            dicom_photometric=("MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422"),
            image_noun="breast ultrasound image",
        ),
        MedMNISTInfo(
            "bloodmnist", "Blood cell microscopy", "microscopy",
            TaskType.MULTI_CLASS,
            ("basophil", "eosinophil", "erythroblast",
             "immature granulocytes (myelocytes, metamyelocytes and promyelocytes)",
             "lymphocyte", "monocyte", "neutrophil", "platelet"),
            3,
            {28: "7053d0359d879ad8a5505303e11de1dc", 64: "2b94928a2ae4916078ca51e05b6b800b",
             128: "adace1e0ed228fccda1f39692059dd4c", 224: "b718ff6835fcbdb22ba9eacccd7b2601"},
        ),
        MedMNISTInfo(
            "tissuemnist", "Kidney cortex microscopy", "microscopy",
            TaskType.MULTI_CLASS,
            ("collecting duct, connecting tubule", "distal convoluted tubule",
             "glomerular endothelial cells", "interstitial endothelial cells", "leukocytes",
             "podocytes", "proximal tubule segments", "thick ascending limb"),
            1,
            {28: "ebe78ee8b05294063de985d821c1c34b", 64: "123ece2eba09d0aa5d698fda57103344",
             128: "61b955355d7425a89687b06cca3ce0c2", 224: "b077128c4a949f0a4eb01517f9037b9c"},
        ),
        MedMNISTInfo(
            "organamnist", "Abdominal CT, axial view", "computed tomography",
            TaskType.MULTI_CLASS, _ORGANS, 1,
            {28: "68e3f8846a6bd62f0c9bf841c0d9eacc", 64: "2dcccc29b88e6da5a01161ef20cda288",
             128: "eeae80d0a227a8d099027e1b3cfd3b60", 224: "50747347e05c87dd3aaf92c49f9f3170"},
        ),
        MedMNISTInfo(
            "organcmnist", "Abdominal CT, coronal view", "computed tomography",
            TaskType.MULTI_CLASS, _ORGANS, 1,
            {28: "b9ceb9546e10131b32923c5bbeaea2b1", 64: "3ce34a8724ea6f548e6db4744d03b6a9",
             128: "773c1f009daa3fe5d9a2a201b2a7ed94", 224: "050f5e875dc056f6768abf94ec9995d1"},
        ),
        MedMNISTInfo(
            "organsmnist", "Abdominal CT, sagittal view", "computed tomography",
            TaskType.MULTI_CLASS, _ORGANS, 1,
            {28: "9ab87b696fb54e2a387ebe992d6ed5f1", 64: "53a6d115339d874c25e309a994ff46d3",
             128: "ded0c5fa01a95dc4978b956f613e9b8e"},
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class MedMNISTSplits:
    """The three official splits: images (N, H, W[, C]) uint8 and labels (N, L) integers."""

    info: MedMNISTInfo
    size: int
    images: dict[Split, NDArray[np.uint8]]
    labels: dict[Split, NDArray[np.int64]]
    md5: str

    def split(self, split: Split | str) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
        """Images and labels of one split."""
        key = Split(split)
        return self.images[key], self.labels[key]


def dataset_info(name: str) -> MedMNISTInfo:
    """The catalogue entry for `name`.

    Raises:
        DataError: the name is not a MedMNIST 2D dataset.
    """
    key = name.lower().strip()
    if key not in CATALOGUE:
        known = ", ".join(sorted(CATALOGUE))
        raise DataError(f"Unknown MedMNIST dataset {name!r}; choose one of: {known}.")
    return CATALOGUE[key]


def _expected_md5(info: MedMNISTInfo, size: int) -> str:
    if size not in info.md5:
        have = ", ".join(str(s) for s in sorted(info.md5))
        raise DataError(
            f"{info.name} has no official file at size {size}; available sizes: {have}."
        )
    return info.md5[size]


def medmnist_path(data_dir: Path, name: str, size: int = 28) -> Path:
    """Where the file of `name` at `size` lives in the data directory (it may not exist yet)."""
    info = dataset_info(name)
    _expected_md5(info, size)
    for candidate in (data_dir / "medmnist" / info.filename(size), data_dir / info.filename(size)):
        if candidate.exists():
            return candidate
    return data_dir / "medmnist" / info.filename(size)


def md5_of(path: Path) -> str:
    """The md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


ProgressCallback = Callable[[int, int], None]


def fetch_medmnist(
    data_dir: Path,
    name: str,
    size: int = 28,
    *,
    allow_download: bool = True,
    progress: ProgressCallback | None = None,
) -> Path:
    """Make sure the verified file of `name` at `size` is in the data directory.

    Raises:
        DataNotFoundError: the file is absent and downloading is off or failed.
        ChecksumError: the file (present or downloaded) does not match the official md5.
    """
    info = dataset_info(name)
    expected = _expected_md5(info, size)
    path = medmnist_path(data_dir, name, size)
    if not path.exists():
        if not allow_download:
            raise DataNotFoundError(
                f"{info.filename(size)} is not in the data directory. Put the official file at "
                f"{path} (from {info.url(size)}) or allow downloads (CLINSIGHT_ALLOW_DOWNLOAD=1)."
            )
        _download(info.url(size), path, progress)
    actual = md5_of(path)
    if actual != expected:
        raise ChecksumError(
            f"{path} has md5 {actual}, but the official {info.filename(size)} has {expected}. "
            f"The file is corrupt or not the MedMNIST release; delete it and fetch it again "
            f"from {info.url(size)}."
        )
    return path


def _download(url: str, target: Path, progress: ProgressCallback | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (fixed https URL)
            total = int(response.headers.get("Content-Length") or 0)
            with atomic_writer(target) as tmp:
                done = 0
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    tmp.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
    except OSError as exc:
        raise DataNotFoundError(
            f"Could not download {url} ({exc}). Without internet access, copy the file to "
            f"{target} by hand."
        ) from exc


def load_medmnist(
    data_dir: Path, name: str, size: int = 28, *, allow_download: bool = False
) -> MedMNISTSplits:
    """Load the three official splits of `name`, verifying the file first.

    Raises:
        DataNotFoundError, ChecksumError: see `fetch_medmnist`.
        DataError: the file lacks an expected array or has inconsistent shapes.
    """
    info = dataset_info(name)
    path = fetch_medmnist(data_dir, name, size, allow_download=allow_download)
    images: dict[Split, NDArray[np.uint8]] = {}
    labels: dict[Split, NDArray[np.int64]] = {}
    with np.load(path, allow_pickle=False) as archive:
        for split in Split:
            for key in (f"{split}_images", f"{split}_labels"):
                if key not in archive.files:
                    raise DataError(f"{path} has no array {key!r}; it is not a MedMNIST file.")
            imgs = np.asarray(archive[f"{split}_images"], dtype=np.uint8)
            labs = np.asarray(archive[f"{split}_labels"], dtype=np.int64).reshape(len(imgs), -1)
            if labs.shape[1] != (info.num_classes if info.task == TaskType.MULTI_LABEL else 1):
                raise DataError(f"{path}: {split} labels have shape {labs.shape}, unexpected.")
            images[split], labels[split] = imgs, labs
    return MedMNISTSplits(info=info, size=size, images=images, labels=labels, md5=md5_of(path))
