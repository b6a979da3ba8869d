"""A folder of a batch prediction's inputs: small grey PNGs and files that are no image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["image_folder"]


def image_folder(root: Path, images: int = 4, *, seed: int = 0) -> Path:
    """`root` holding `images` 32x32 grey PNGs (img0.png...), a corrupt ``bad.png`` and
    ``notes/readme.txt``; the folder is returned."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(images):
        pixels = rng.integers(0, 256, (32, 32), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"img{index}.png")
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "notes").mkdir(exist_ok=True)
    (root / "notes" / "readme.txt").write_text("not an image\n", encoding="utf-8")
    return root
