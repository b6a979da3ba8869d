"""DICOM input: every real file in the data directory, the LUT pipeline, frames, damage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.utils import pixel_array
from pydicom.uid import (
    UID,
    ComprehensiveSRStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    RTDoseStorage,
    RTPlanStorage,
    generate_uid,
)

from clinsight.data.dicom import read_dicom
from clinsight.data.images import read_image
from clinsight.errors import UnsupportedImageError

Expected = tuple[int, ...] | str

# pydicom warns while it reads the deliberately truncated files
pytestmark = pytest.mark.filterwarnings("ignore:End of file reached before delimiter:UserWarning")

# Every .dcm file under data/dicom: what read_image must give, and why.
# A shape means the file decodes to float32 pixels in [0, 1] of that shape;
# "rejected: <pattern>" means UnsupportedImageError whose message matches it.
DICOM_TABLE: list[tuple[str, Expected, str]] = [
    ("pydicom_data/693_J2KR.dcm", (512, 512), "CT, JPEG 2000 lossless, rescale + window 40/100"),
    ("pydicom_data/693_UNCI.dcm", (512, 512), "CT, native, decompressed from lossy J2K"),
    ("pydicom_data/693_UNCR.dcm", (512, 512), "CT, native, signed 14-bit, rescale + window"),
    ("pydicom_data/HTJ2KLossless_08_RGB.dcm", (480, 640, 3), "SC RGB, HTJ2K lossless"),
    ("pydicom_data/HTJ2K_08_RGB.dcm", (480, 640, 3), "SC RGB, HTJ2K lossy"),
    ("pydicom_data/JLSL_08_07_0_1F.dcm", (128, 128), "SC grey 7-bit, JPEG-LS lossless, min-max"),
    ("pydicom_data/JLSL_16_15_1_1F.dcm", (128, 128), "SC grey signed 15-bit, JPEG-LS lossless"),
    ("pydicom_data/JLSL_RGB_ILV0.dcm", (256, 256, 3), "RGB JPEG-LS, no preamble, interleave 0"),
    ("pydicom_data/JLSL_RGB_ILV1.dcm", (256, 256, 3), "RGB JPEG-LS, no preamble, interleave 1"),
    ("pydicom_data/JLSL_RGB_ILV2.dcm", (256, 256, 3), "RGB JPEG-LS, no preamble, interleave 2"),
    ("pydicom_data/JLSN_RGB_ILV0.dcm", (256, 256, 3), "RGB JPEG-LS near-lossless, no preamble"),
    ("pydicom_data/JPEG-LL.dcm", (1024, 256), "NM SC, JPEG lossless SV1, signed 16-bit"),
    ("pydicom_data/JPEG2000_UNC.dcm", (1024, 256), "NM SC, native copy of JPEG-LL"),
    ("pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm", (768, 1024), "US 8-bit, JPEG lossless SV1"),
    ("pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm", (484, 484), "MR, two windows, overlays"),
    ("pydicom_data/MR2_J2KI.dcm", (1024, 1024), "MR, JPEG 2000 lossy, rescale + window"),
    ("pydicom_data/MR2_J2KR.dcm", (1024, 1024), "MR, JPEG 2000 lossless"),
    ("pydicom_data/MR2_UNCI.dcm", (1024, 1024), "MR, native, decompressed from lossy J2K"),
    ("pydicom_data/MR2_UNCR.dcm", (1024, 1024), "MR, native"),
    ("pydicom_data/OBXXXX1A.dcm", (600, 800, 3), "US palette colour → RGB"),
    ("pydicom_data/OBXXXX1A_2frame.dcm", (600, 800, 3), "US palette colour, 2 frames"),
    ("pydicom_data/OBXXXX1A_expb.dcm", (600, 800, 3), "US palette colour, big endian LUT"),
    ("pydicom_data/OBXXXX1A_expb_2frame.dcm", (600, 800, 3), "palette, big endian, 2 frames"),
    ("pydicom_data/OBXXXX1A_rle.dcm", (600, 800, 3), "US palette colour, RLE"),
    ("pydicom_data/OBXXXX1A_rle_2frame.dcm", (600, 800, 3), "US palette colour, RLE, 2 frames"),
    ("pydicom_data/OT-PAL-8-face.dcm", (480, 640, 3), "palette, no preamble and no file meta"),
    ("pydicom_data/RG1_J2KI.dcm", (1955, 1841), "CR MONOCHROME1 (inverted), J2K lossy"),
    ("pydicom_data/RG3_J2KI.dcm", (1760, 1760), "CR MONOCHROME1, JPEG 2000 lossy"),
    ("pydicom_data/RG3_J2KR.dcm", (1760, 1760), "CR MONOCHROME1, JPEG 2000 lossless"),
    ("pydicom_data/SC_rgb.dcm", (100, 100, 3), "SC RGB 8-bit, native"),
    ("pydicom_data/SC_rgb_16bit.dcm", (100, 100, 3), "SC RGB 16-bit"),
    ("pydicom_data/SC_rgb_16bit_2frame.dcm", (100, 100, 3), "SC RGB 16-bit, 2 frames"),
    ("pydicom_data/SC_rgb_2frame.dcm", (100, 100, 3), "SC RGB 8-bit, 2 frames"),
    ("pydicom_data/SC_rgb_32bit.dcm", (100, 100, 3), "SC RGB 32-bit"),
    ("pydicom_data/SC_rgb_32bit_2frame.dcm", (100, 100, 3), "SC RGB 32-bit, 2 frames"),
    ("pydicom_data/SC_rgb_dcmtk_ebcr_dcmd.dcm", (100, 100, 3), "RGB decompressed by dcmtk"),
    ("pydicom_data/SC_rgb_dcmtk_ebcyn1_dcmd.dcm", (100, 100, 3), "RGB decompressed by dcmtk"),
    ("pydicom_data/SC_rgb_dcmtk_ebcyn2_dcmd.dcm", (100, 100, 3), "RGB decompressed by dcmtk"),
    ("pydicom_data/SC_rgb_dcmtk_ebcynp_dcmd.dcm", (100, 100, 3), "RGB decompressed by dcmtk"),
    ("pydicom_data/SC_rgb_dcmtk_ebcys2_dcmd.dcm", (100, 100, 3), "RGB decompressed by dcmtk"),
    ("pydicom_data/SC_rgb_dcmtk_ebcys4_dcmd.dcm", (100, 100, 3), "RGB decompressed by dcmtk"),
    ("pydicom_data/SC_rgb_expb.dcm", (100, 100, 3), "SC RGB 8-bit, explicit big endian"),
    ("pydicom_data/SC_rgb_expb_16bit.dcm", (100, 100, 3), "SC RGB 16-bit, big endian"),
    ("pydicom_data/SC_rgb_expb_16bit_2frame.dcm", (100, 100, 3), "RGB 16-bit, big endian, 2 fr."),
    ("pydicom_data/SC_rgb_expb_2frame.dcm", (100, 100, 3), "SC RGB 8-bit, big endian, 2 frames"),
    ("pydicom_data/SC_rgb_expb_32bit.dcm", (100, 100, 3), "SC RGB 32-bit, big endian"),
    ("pydicom_data/SC_rgb_expb_32bit_2frame.dcm", (100, 100, 3), "RGB 32-bit, big endian, 2 fr."),
    ("pydicom_data/SC_rgb_gdcm2k_uncompressed.dcm", (100, 100, 3), "RGB decompressed by GDCM"),
    ("pydicom_data/SC_ybr_full_uncompressed.dcm", (100, 100, 3), "native YBR_FULL → RGB"),
    ("pydicom_data/US1_J2KI.dcm", (480, 640, 3), "US YBR_ICT, JPEG 2000 lossy → RGB"),
    ("pydicom_data/US1_J2KR.dcm", (480, 640, 3), "US YBR_RCT, JPEG 2000 lossless → RGB"),
    ("pydicom_data/US1_UNCI.dcm", (480, 640, 3), "US RGB, native"),
    ("pydicom_data/US1_UNCR.dcm", (480, 640, 3), "US RGB, native"),
    ("pydicom_data/bad_sequence.dcm", (512, 512), "CT with a malformed sequence, JPEG lossless"),
    ("pydicom_data/color-pl.dcm", (120, 256, 3), "US RGB, planar configuration 1"),
    ("pydicom_data/color-px.dcm", (120, 256, 3), "US RGB, planar configuration 0"),
    ("pydicom_data/eCT_Supplemental.dcm", (512, 512), "enhanced CT, LUTs in functional groups"),
    ("pydicom_data/emri_small.dcm", (64, 64), "enhanced MR, 10 frames, no window: min-max"),
    ("pydicom_data/emri_small_RLE.dcm", (64, 64), "enhanced MR, RLE lossless"),
    ("pydicom_data/emri_small_big_endian.dcm", (64, 64), "enhanced MR, explicit big endian"),
    ("pydicom_data/emri_small_jpeg_2k_lossless.dcm", (64, 64), "enhanced MR, J2K lossless"),
    (
        "pydicom_data/emri_small_jpeg_2k_lossless_too_short.dcm",
        "rejected: no readable dataset: the file is truncated",
        "truncated right after its file meta header",
    ),
    ("pydicom_data/emri_small_jpeg_ls_lossless.dcm", (64, 64), "enhanced MR, JPEG-LS lossless"),
    ("pydicom_data/explicit_VR-UN.dcm", (512, 512), "CT, J2K lossless, elements with VR UN"),
    ("pydicom_data/gdcm-US-ALOKA-16.dcm", (480, 640, 3), "US 16-bit segmented palette"),
    ("pydicom_data/gdcm-US-ALOKA-16_big.dcm", (480, 640, 3), "segmented palette, big endian"),
    ("pydicom_data/liver.dcm", "rejected: segmentation", "SEG label mask, not an image"),
    ("pydicom_data/liver_deflate.dcm", "rejected: segmentation", "SEG (deflated frames)"),
    ("pydicom_data/liver_expb.dcm", "rejected: segmentation", "SEG label mask, big endian"),
    ("pydicom_data/liver_j2k.dcm", "rejected: segmentation", "SEG label mask, JPEG 2000"),
    (
        "pydicom_data/liver_nonbyte_aligned_deflate.dcm",
        "rejected: segmentation",
        "SEG label mask, 1-bit deflated frames",
    ),
    ("pydicom_data/liver_nonbyte_aligned_j2k.dcm", "rejected: segmentation", "SEG, JPEG 2000"),
    ("pydicom_data/liver_nonbyte_aligned_rle.dcm", "rejected: segmentation", "SEG, 1-bit RLE"),
    ("pydicom_data/liver_rle.dcm", "rejected: segmentation", "SEG label mask, RLE"),
    ("pydicom_data/mlut_18.dcm", (512, 512), "SC with a Modality LUT Sequence"),
    ("pydicom_data/parametric_map_double_float.dcm", (128, 128), "parametric map, float64"),
    ("pydicom_data/parametric_map_float.dcm", (128, 128), "parametric map, float32: min-max"),
    ("pydicom_data/vlut_04.dcm", (512, 512), "SC with a VOI LUT Sequence"),
    ("pylibjpeg_data/966_fixed.dcm", (2128, 2000), "DX MONOCHROME1, JPEG 2000 lossless"),
    ("pylibjpeg_data/CT1_JLSN.dcm", (512, 512), "CT, JPEG-LS near-lossless, no window"),
    ("pylibjpeg_data/JPEGExtended_3s_1f_u_08_08.dcm", (576, 768, 3), "US YBR, JPEG extended"),
    ("pylibjpeg_data/JPEGLossless_1s_1f_u_16_12.dcm", (1024, 1024), "MR, JPEG lossless P14"),
    ("pylibjpeg_data/MAROTECH_CT_JP2Lossy.dcm", (716, 512), "CT, JPEG 2000 lossy"),
    ("pylibjpeg_data/NM_Kakadu44_SOTmarkerincons.dcm", (2500, 2048), "CR, J2K bad SOT marker"),
    ("pylibjpeg_data/RG1_JLSN.dcm", (1955, 1841), "CR MONOCHROME1, JPEG-LS near-lossless"),
    ("pylibjpeg_data/RG2_JPLL.dcm", (2140, 1760), "CR, JPEG lossless SV1"),
    ("pylibjpeg_data/TOSHIBA_J2K_OpenJPEGv2Regression.dcm", (512, 512), "CT, J2K lossless"),
    ("pylibjpeg_data/TOSHIBA_J2K_SIZ1_PixRep0.dcm", (512, 512), "CT, J2K sign mismatch"),
]
METADATA_KEYS = {
    "modality",
    "body_part",
    "view",
    "sop_class",
    "photometric",
    "transfer_syntax",
    "frames",
    "frame",
    "rows",
    "columns",
    "bits_stored",
    "rescale",
    "window",
    "inverted",
}
# Files that must decode to identical pixels: lossless codecs and byte orders.
SAME_PIXELS = [
    ("693_UNCR.dcm", "693_J2KR.dcm"),
    ("MR2_UNCR.dcm", "MR2_J2KR.dcm"),
    ("US1_UNCR.dcm", "US1_J2KR.dcm"),
    ("JLSL_RGB_ILV0.dcm", "JLSL_RGB_ILV1.dcm"),
    ("JLSL_RGB_ILV0.dcm", "JLSL_RGB_ILV2.dcm"),
    ("emri_small.dcm", "emri_small_RLE.dcm"),
    ("emri_small.dcm", "emri_small_big_endian.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),
    ("OBXXXX1A.dcm", "OBXXXX1A_expb.dcm"),
    ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm"),
    ("gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm"),
    ("SC_rgb.dcm", "SC_rgb_expb.dcm"),
    ("SC_rgb_16bit.dcm", "SC_rgb_expb_16bit_2frame.dcm"),
    ("color-pl.dcm", "color-px.dcm"),
]


@pytest.fixture(scope="module")
def dicom_dir(data_dir: Path) -> Path:
    return data_dir / "dicom"


def _linear_window(values: NDArray[np.float64], center: float, width: float) -> NDArray[np.float64]:
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR window onto [0, 1], written independently of pydicom."""
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _write(path: Path, sop_class: UID, pixels: NDArray[np.uint16] | None, **attrs: object) -> Path:
    """A minimal explicit VR little endian object; `attrs` are set as DICOM keywords."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-0042"
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.BitsAllocated = 16
        ds.BitsStored = attrs.get("BitsStored", 16)
        ds.HighBit = int(ds.BitsStored) - 1
        ds.PixelRepresentation = 0
        ds.PhotometricInterpretation = attrs.get("PhotometricInterpretation", "MONOCHROME2")
        ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_table_covers_every_dicom_file(dicom_dir: Path) -> None:
    on_disk = {p.relative_to(dicom_dir).as_posix() for p in dicom_dir.rglob("*.dcm")}
    in_table = [name for name, _, _ in DICOM_TABLE]
    assert len(in_table) == len(set(in_table))
    assert set(in_table) == on_disk


@pytest.mark.parametrize(
    ("name", "expected", "reason"), DICOM_TABLE, ids=[r[0] for r in DICOM_TABLE]
)
def test_dicom_file(dicom_dir: Path, name: str, expected: Expected, reason: str) -> None:
    assert reason
    if isinstance(expected, str):
        assert expected.startswith("rejected: ")
        with pytest.raises(UnsupportedImageError, match=expected.removeprefix("rejected: ")):
            read_image(dicom_dir / name)
        return
    image = read_image(dicom_dir / name)
    assert image.format == "dicom"
    assert image.pixels.shape == expected
    assert image.pixels.dtype == np.float32
    assert float(image.pixels.min()) >= 0.0
    assert float(image.pixels.max()) <= 1.0
    assert float(image.pixels.max()) > float(image.pixels.min())
    assert set(image.metadata) <= METADATA_KEYS
    assert image.metadata["rows"] == str(expected[0])


@pytest.mark.parametrize(("first", "second"), SAME_PIXELS)
def test_lossless_codecs_and_byte_orders_give_the_same_pixels(
    dicom_dir: Path, first: str, second: str
) -> None:
    a = read_image(dicom_dir / "pydicom_data" / first).pixels
    b = read_image(dicom_dir / "pydicom_data" / second).pixels
    np.testing.assert_array_equal(a, b)


def test_ybr_full_is_converted_to_rgb(dicom_dir: Path) -> None:
    rgb = read_image(dicom_dir / "pydicom_data/SC_rgb.dcm").pixels
    ybr = read_image(dicom_dir / "pydicom_data/SC_ybr_full_uncompressed.dcm").pixels
    # YBR_FULL stores rounded luma/chroma: a few grey levels off at saturated colours
    assert float(np.abs(rgb - ybr).max()) <= 6 / 255
    assert float(np.abs(rgb - ybr).mean()) < 1 / 255
    np.testing.assert_allclose(rgb[0, 0], [1.0, 0.0, 0.0])


def test_rescale_then_window_on_ct(dicom_dir: Path) -> None:
    path = dicom_dir / "pydicom_data/693_UNCR.dcm"
    image = read_image(path)
    hounsfield = pixel_array(pydicom.dcmread(path)).astype(np.float64) - 1024.0
    np.testing.assert_allclose(image.pixels, _linear_window(hounsfield, 40, 100), atol=1e-6)
    assert image.metadata["rescale"] == "slope=1 intercept=-1024"
    assert image.metadata["window"] == "center=40 width=100 (LINEAR)"
    assert image.metadata["inverted"] == "no"


def test_monochrome1_is_inverted(dicom_dir: Path) -> None:
    path = dicom_dir / "pydicom_data/RG3_J2KR.dcm"
    image = read_image(path)
    stored = pixel_array(pydicom.dcmread(path)).astype(np.float64)
    np.testing.assert_allclose(image.pixels, 1.0 - _linear_window(stored, 550, 1024), atol=1e-6)
    assert image.metadata["inverted"] == "yes (MONOCHROME1)"


def test_exact_values_of_a_small_monochrome1_object(tmp_path: Path) -> None:
    stored = np.array([[0, 100], [200, 1023]], dtype=np.uint16)
    path = _write(
        tmp_path / "m1.dcm",
        CTImageStorage,
        stored,
        Modality="CT",
        BitsStored=10,
        PhotometricInterpretation="MONOCHROME1",
        RescaleSlope=2,
        RescaleIntercept=-100,
        WindowCenter=100.5,
        WindowWidth=201,
    )
    image = read_image(path)
    # rescaled: -100, 100, 300, 1946; window 100.5/201 spans [0, 200]; then inverted
    np.testing.assert_allclose(image.pixels, [[1.0, 0.5], [0.0, 0.0]], atol=1e-6)
    assert "Doe" not in repr(image.metadata)
    assert "MRN" not in repr(image.metadata)


def test_voi_lut_sequence_is_applied(dicom_dir: Path) -> None:
    path = dicom_dir / "pydicom_data/vlut_04.dcm"
    ds = pydicom.dcmread(path)
    lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
    expected = (lut[pixel_array(ds)] - lut.min()) / (lut.max() - lut.min())
    image = read_image(path)
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    assert image.metadata["window"] == "VOI LUT"


def test_modality_lut_sequence_is_applied(dicom_dir: Path) -> None:
    path = dicom_dir / "pydicom_data/mlut_18.dcm"
    ds = pydicom.dcmread(path)
    descriptor = ds.ModalityLUTSequence[0].LUTDescriptor
    lut = np.asarray(ds.ModalityLUTSequence[0].LUTData, dtype=np.float64)
    index = np.clip(pixel_array(ds).astype(np.int64) - descriptor[1], 0, len(lut) - 1)
    mapped = lut[index]
    expected = (mapped - mapped.min()) / (mapped.max() - mapped.min())
    image = read_image(path)
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    assert image.metadata["rescale"] == "modality LUT"


def test_enhanced_ct_takes_rescale_and_window_from_functional_groups(dicom_dir: Path) -> None:
    path = dicom_dir / "pydicom_data/eCT_Supplemental.dcm"
    image = read_image(path, frame=1)
    hounsfield = pixel_array(pydicom.dcmread(path), index=1).astype(np.float64) - 1024.0
    np.testing.assert_allclose(image.pixels, _linear_window(hounsfield, 49, 102), atol=1e-6)
    assert image.metadata["window"] == "center=49.0000 width=102.000 (LINEAR)"


def test_float_parametric_map_is_min_max_scaled(dicom_dir: Path) -> None:
    path = dicom_dir / "pydicom_data/parametric_map_float.dcm"
    values = pixel_array(pydicom.dcmread(path)).astype(np.float64)
    expected = (values - values.min()) / (values.max() - values.min())
    image = read_image(path)
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    assert image.metadata["window"] == "min-max of the frame (float pixel data)"


def test_frame_selection(dicom_dir: Path) -> None:
    path = dicom_dir / "pydicom_data/emri_small.dcm"
    frames = pixel_array(pydicom.dcmread(path)).astype(np.float64)
    third = read_dicom(path, frame=3)
    expected = (frames[3] - frames[3].min()) / (frames[3].max() - frames[3].min())
    np.testing.assert_allclose(third.pixels, expected, atol=1e-6)
    assert (third.metadata["frame"], third.metadata["frames"]) == ("3", "10")
    assert read_dicom(path).metadata["frame"] == "0"
    assert not np.array_equal(read_dicom(path).pixels, third.pixels)
    for bad in (10, -1):
        with pytest.raises(UnsupportedImageError, match=rf"frame {bad} is out of range.*10 frame"):
            read_dicom(path, frame=bad)


def test_input_without_preamble_reads_the_same(dicom_dir: Path, tmp_path: Path) -> None:
    for name in ("693_UNCR.dcm", "MR2_J2KR.dcm"):
        raw = (dicom_dir / "pydicom_data" / name).read_bytes()
        stripped = tmp_path / f"{name}.nopreamble"
        stripped.write_bytes(raw[132:])
        expected = read_image(raw).pixels
        np.testing.assert_array_equal(read_image(stripped).pixels, expected)
        np.testing.assert_array_equal(read_image(raw[128:]).pixels, expected)


def test_deflated_dataset_reads(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / "pydicom_data/693_UNCR.dcm")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    image = read_image(tmp_path / "deflated.dcm")
    assert image.metadata["transfer_syntax"] == "Deflated Explicit VR Little Endian"
    np.testing.assert_array_equal(
        image.pixels, read_image(dicom_dir / "pydicom_data/693_UNCR.dcm").pixels
    )


@pytest.mark.parametrize(
    ("name", "cut", "pattern"),
    [
        ("693_UNCR.dcm", 0.5, "pixel data of this CT Image Storage object .* cannot be decoded"),
        # pydicom drops the whole dataset when encapsulated pixel data ends early
        ("MR2_J2KR.dcm", 0.5, "no readable dataset: the file is truncated"),
        ("693_UNCR.dcm", 0.002, "malformed or truncated|no pixel data"),
    ],
)
def test_truncated_file_gives_a_clear_error(
    dicom_dir: Path, tmp_path: Path, name: str, cut: float, pattern: str
) -> None:
    raw = (dicom_dir / "pydicom_data" / name).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(raw[: int(len(raw) * cut)])
    with pytest.raises(UnsupportedImageError, match=pattern):
        read_image(path)


@pytest.mark.parametrize(
    ("sop_class", "modality", "pattern"),
    [
        (ComprehensiveSRStorage, "SR", r"Comprehensive SR Storage object \(modality SR\) holds no"),
        (RTPlanStorage, "RTPLAN", r"RT Plan Storage object \(modality RTPLAN\) holds no pixel"),
    ],
)
def test_objects_without_pixels_are_rejected(
    tmp_path: Path, sop_class: UID, modality: str, pattern: str
) -> None:
    path = _write(tmp_path / "object.dcm", sop_class, None, Modality=modality)
    with pytest.raises(UnsupportedImageError, match=f"{pattern}.*Clinsight needs an image"):
        read_image(path)


def test_rt_dose_grid_is_rejected(tmp_path: Path) -> None:
    dose = np.arange(12, dtype=np.uint16).reshape(3, 4)
    path = _write(tmp_path / "dose.dcm", RTDoseStorage, dose, Modality="RTDOSE")
    with pytest.raises(UnsupportedImageError, match=r"RT Dose Storage.*dose grid"):
        read_image(path)


def test_pixel_limit_is_checked_before_decoding(dicom_dir: Path) -> None:
    with pytest.raises(UnsupportedImageError, match=r"512 x 512 = 262144 pixels.*limit of 1000"):
        read_dicom(dicom_dir / "pydicom_data/693_J2KR.dcm", max_pixels=1000)


def test_non_dicom_content_is_refused_by_read_dicom() -> None:
    with pytest.raises(UnsupportedImageError, match="not DICOM"):
        read_dicom(b"\x89PNG\r\n\x1a\n" + bytes(100))
