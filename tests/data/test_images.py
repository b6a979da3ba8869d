"""PNG and JPEG input, content sniffing and size limits (DICOM has its own test module)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clinsight.data.images import read_image
from clinsight.data.source import sniff_image_format
from clinsight.errors import DataNotFoundError, UnsupportedImageError


def _encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries no pixels: only the header is read."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_png_8_bit_grey_exact_values() -> None:
    data = _encode(Image.fromarray(np.array([[0, 51, 255]], dtype=np.uint8)))
    image = read_image(data)
    assert image.format == "png"
    assert image.pixels.dtype == np.float32
    np.testing.assert_allclose(image.pixels, [[0.0, 0.2, 1.0]], atol=1e-7)
    assert image.metadata == {"mode": "L", "rows": "1", "columns": "3", "frames": "1", "frame": "0"}


def test_png_16_bit_grey_exact_values() -> None:
    data = _encode(Image.fromarray(np.array([[0, 13107], [65535, 1]], dtype=np.uint16)))
    image = read_image(data)
    np.testing.assert_allclose(image.pixels, [[0.0, 0.2], [1.0, 1 / 65535]], atol=1e-7)
    assert image.metadata["mode"] == "I;16"


def test_png_rgb_and_rgba_drop_alpha() -> None:
    rgba = np.array([[[255, 0, 51, 0], [0, 255, 0, 255]]], dtype=np.uint8)
    expected = [[[1.0, 0.0, 0.2], [0.0, 1.0, 0.0]]]
    np.testing.assert_allclose(read_image(_encode(Image.fromarray(rgba))).pixels, expected)
    rgb = Image.fromarray(rgba[..., :3])
    np.testing.assert_allclose(read_image(_encode(rgb)).pixels, expected)


def test_png_palette_becomes_rgb() -> None:
    palette_image = Image.fromarray(np.array([[0, 1], [1, 2]], dtype=np.uint8), mode="P")
    palette_image.putpalette([255, 0, 0, 0, 0, 255, 51, 51, 51])
    image = read_image(_encode(palette_image))
    assert image.metadata["mode"] == "P"
    np.testing.assert_allclose(image.pixels[0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(image.pixels[1, 0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(image.pixels[1, 1], [0.2, 0.2, 0.2], atol=1e-7)


def test_png_grey_alpha_and_bilevel() -> None:
    grey_alpha = Image.fromarray(np.array([[[102, 0], [255, 255]]], dtype=np.uint8), mode="LA")
    np.testing.assert_allclose(read_image(_encode(grey_alpha)).pixels, [[0.4, 1.0]], atol=1e-7)
    bilevel = Image.fromarray(np.array([[True, False]]))
    np.testing.assert_array_equal(read_image(_encode(bilevel)).pixels, [[1.0, 0.0]])


def test_jpeg_grey_and_rgb() -> None:
    flat = np.full((16, 16), 128, dtype=np.uint8)
    grey = read_image(_encode(Image.fromarray(flat), "JPEG", quality=100))
    assert grey.format == "jpeg"
    assert grey.pixels.shape == (16, 16)
    np.testing.assert_allclose(grey.pixels, 128 / 255, atol=1 / 255)
    colour = np.zeros((16, 16, 3), dtype=np.uint8)
    colour[..., 0] = 200
    rgb = read_image(_encode(Image.fromarray(colour), "JPEG", quality=100))
    assert rgb.pixels.shape == (16, 16, 3)
    np.testing.assert_allclose(rgb.pixels[8, 8], [200 / 255, 0.0, 0.0], atol=3 / 255)


def test_jpeg_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = _encode(Image.new("L", (40, 20)), "JPEG", exif=exif.tobytes())
    assert read_image(data).pixels.shape == (40, 20)


def test_format_is_sniffed_from_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "scan.dcm"
    path.write_bytes(_encode(Image.new("L", (3, 2), 255)))
    image = read_image(path)
    assert image.format == "png"
    assert image.pixels.shape == (2, 3)
    assert sniff_image_format(_encode(Image.new("L", (1, 1)), "JPEG")) == "jpeg"
    assert sniff_image_format(bytes(128) + b"DICM") == "dicom"


def test_apng_frame_selection() -> None:
    frames = [Image.new("L", (4, 4), value) for value in (0, 255)]
    data = _encode(frames[0], save_all=True, append_images=frames[1:])
    assert float(read_image(data).pixels.max()) == 0.0
    assert float(read_image(data, frame=1).pixels.min()) == 1.0
    with pytest.raises(UnsupportedImageError, match=r"frame 2 is out of range.*2 frame"):
        read_image(data, frame=2)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", r"empty \(0 bytes\).*PNG, JPEG or DICOM"),
        (bytes(range(256)) * 4, r"not a recognised image.*PNG, JPEG or DICOM"),
        (b"Patient complains of chest pain.\n", r"not a recognised image.*PNG, JPEG or DICOM"),
    ],
)
def test_unrecognised_content_names_the_accepted_formats(
    tmp_path: Path, content: bytes, pattern: str
) -> None:
    with pytest.raises(UnsupportedImageError, match=pattern):
        read_image(content)
    path = tmp_path / "input.png"
    path.write_bytes(content)
    with pytest.raises(UnsupportedImageError, match=pattern):
        read_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        read_image(tmp_path / "absent.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_gives_a_clear_error(fmt: str) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), fmt)
    with pytest.raises(UnsupportedImageError, match=f"the {fmt} image is malformed or truncated"):
        read_image(data[: len(data) // 2])


def test_max_pixels_is_enforced_before_decoding() -> None:
    with pytest.raises(UnsupportedImageError, match=r"10 x 10 = 100 pixels.*limit of 99 pixels"):
        read_image(_encode(Image.new("L", (10, 10))), max_pixels=99)
    bomb = _png_header_only(8000, 8000)
    with pytest.raises(UnsupportedImageError, match=r"64000000 pixels, over the limit of 50000000"):
        read_image(bomb)


def test_pillow_decompression_bomb_guard_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnsupportedImageError, match="decompression bomb"):
        read_image(_png_header_only(100_000, 100_000), max_pixels=10**12)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    with (
        pytest.warns(Image.DecompressionBombWarning),
        pytest.raises(UnsupportedImageError, match="limit of 50 pixels"),
    ):
        read_image(_encode(Image.new("L", (10, 10))), max_pixels=10**9)


def test_max_bytes_is_enforced_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_encode(Image.new("L", (64, 64))))
    size = path.stat().st_size
    with pytest.raises(UnsupportedImageError, match=f"{size} bytes, over the limit of 10 bytes"):
        read_image(path, max_bytes=10)
    with pytest.raises(UnsupportedImageError, match="over the limit of 10 bytes"):
        read_image(path.read_bytes(), max_bytes=10)
