"""Small learnable MedMNIST-shaped datasets for every task type (no files needed)."""

from __future__ import annotations

import numpy as np

from clinsight.data.medmnist import MedMNISTInfo, MedMNISTSplits, Split, TaskType


def synthetic_splits(
    task: TaskType, channels: int = 1, classes: int = 2, n: int = 48, size: int = 28, seed: int = 0
) -> MedMNISTSplits:
    """Images whose class (or labels) is a bright patch in one of four quadrants."""
    rng = np.random.default_rng(seed)
    info = MedMNISTInfo(
        name=f"synthetic-{task.value}", description="Synthetic quadrants", modality="synthetic",
        task=task, labels=tuple(f"class {k}" for k in range(classes)), channels=channels,
        md5={size: "0" * 32},
    )  # fmt: skip
    half = size // 2
    corners = [(0, 0), (0, half), (half, 0), (half, half)]
    images, labels = {}, {}
    for split in Split:
        shape = (n, size, size) if channels == 1 else (n, size, size, channels)
        imgs = rng.integers(0, 60, size=shape, dtype=np.uint8)
        if task == TaskType.MULTI_LABEL:
            labs = rng.integers(0, 2, size=(n, classes))
            for i in range(n):
                for k in np.flatnonzero(labs[i]):
                    r, c = corners[k % 4]
                    imgs[i, r : r + half, c : c + half] = 220
        else:
            labs = (np.arange(n) % classes)[:, None]
            for i in range(n):
                r, c = corners[int(labs[i, 0]) % 4]
                imgs[i, r : r + half, c : c + half] = 220
        images[split], labels[split] = imgs, labs.astype(np.int64)
    return MedMNISTSplits(info=info, size=size, images=images, labels=labels, md5="0" * 32)
