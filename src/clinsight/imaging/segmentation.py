"""Seeded, resumable training of segmentation networks, with the classifier's conventions.

The pieces are those of `imaging.training`: seeding (`seed_everything`), the cosine
schedule sized to the epoch or time budget (`cosine_lr`), early stopping with patience and
an epoch floor (`imaging.specs.early_stop_due`, here on validation Dice), weight averaging
and safetensors checkpoints (`imaging.checkpoints`), so a stopped run resumes where it
stopped. The loss is MONAI's Dice + cross-entropy; validation Dice is MONAI's, per image,
foreground labels averaged (an image whose mask and prediction are both empty scores 1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.transforms import Compose
from numpy.typing import NDArray
from torch import nn
from torch.nn import functional

from clinsight.data.segmentation import SegmentationSample
from clinsight.errors import ModelError
from clinsight.imaging.checkpoints import WeightAverage, load_checkpoint, save_checkpoint
from clinsight.imaging.segmentation_networks import (
    SegmentationNetworkConfig,
    build_segmentation_network,
    resize_pair,
    segmentation_augmentation,
)
from clinsight.imaging.specs import TrainConfig, early_stop_due
from clinsight.imaging.training import cosine_lr, seed_everything
from clinsight.imaging.transforms import PreprocessSpec, to_channels_first

__all__ = [
    "PairArrays",
    "SegmentationEpoch",
    "SegmentationTrainResult",
    "network_input",
    "predict_mask",
    "predict_probabilities",
    "prepare_pairs",
    "train_segmentation_model",
    "validation_dice",
]


@dataclass(frozen=True)
class PairArrays:
    """Images (N, C, S, S) uint8 and masks (N, 1, S, S) uint8 label indices at the network
    size, with their case ids (uint8 keeps 800 colour frames at 256 x 256 in 160 MB)."""

    ids: tuple[str, ...]
    images: NDArray[np.uint8]
    masks: NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class SegmentationEpoch:
    """What one epoch did: losses, validation Dice and timing."""

    epoch: int
    train_loss: float
    val_loss: float
    val_dice: float
    learning_rate: float
    seconds: float


@dataclass
class SegmentationTrainResult:
    """A trained network (best validation Dice) and what is needed to register it."""

    network: nn.Module
    network_config: SegmentationNetworkConfig
    preprocess: PreprocessSpec
    config: TrainConfig
    history: list[SegmentationEpoch]
    best_epoch: int
    best_val_dice: float
    epochs_run: int
    seconds: float
    stopped_because: str


ProgressCallback = Callable[[SegmentationEpoch, int], None]


def network_input(image: NDArray[np.float32], spec: PreprocessSpec) -> NDArray[np.float32]:
    """A source image in [0, 1] as the network's (C, S, S) input in [0, 1] (not yet
    normalised): channel conversion and an area resize of the whole frame (no crop)."""
    chw = torch.from_numpy(to_channels_first(image, spec.channels))
    resized = resize_pair(spec.image_size)({"image": chw, "label": chw[:1]})["image"]
    return np.ascontiguousarray(torch.as_tensor(resized).clamp_(0.0, 1.0).numpy())


def prepare_pairs(samples: Sequence[SegmentationSample], spec: PreprocessSpec) -> PairArrays:
    """Resize each image (area) and its mask (nearest) together to the network size."""
    size, resize = spec.image_size, resize_pair(spec.image_size)
    images = np.zeros((len(samples), spec.channels, size, size), dtype=np.uint8)
    masks = np.zeros((len(samples), 1, size, size), dtype=np.uint8)
    for i, sample in enumerate(samples):
        pair = resize({
            "image": torch.from_numpy(to_channels_first(sample.image, spec.channels)),
            "label": torch.from_numpy(sample.mask[None].astype(np.float32)),
        })  # fmt: skip
        images[i] = np.rint(torch.as_tensor(pair["image"]).clamp(0, 1).numpy() * 255)
        masks[i] = np.rint(torch.as_tensor(pair["label"]).numpy())
    return PairArrays(tuple(s.case_id for s in samples), images, masks)


def _normalise(images: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    return (images - spec.mean) / spec.std


def _as_float(images: NDArray[np.uint8] | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(images).float().div_(255.0)


def predict_probabilities(
    network: nn.Module, images: NDArray[np.uint8], spec: PreprocessSpec, batch_size: int = 16
) -> NDArray[np.float32]:
    """Softmax probabilities (N, K, S, S) for uint8 network-size images, eval mode."""
    network.eval()
    parts = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = _normalise(_as_float(images[start : start + batch_size]), spec)
            parts.append(torch.softmax(network(batch), dim=1).numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0, 0, 0), dtype=np.float32)


def predict_mask(
    network: nn.Module, image: NDArray[np.float32], spec: PreprocessSpec
) -> NDArray[np.uint8]:
    """The label mask (H, W) of a source image at its own size: the softmax at the network
    size resized back (bilinear), then its arg-max (what the ONNX predictor does)."""
    network.eval()
    batch = torch.from_numpy(network_input(image, spec)[None])
    with torch.inference_mode():
        probs = torch.softmax(network(_normalise(batch, spec)), dim=1)
        resized = functional.interpolate(
            probs, size=image.shape[:2], mode="bilinear", align_corners=False
        )
    return resized[0].argmax(dim=0).numpy().astype(np.uint8)


def validation_dice(probabilities: NDArray[np.float32], masks: NDArray[np.uint8]) -> float:
    """Mean over images of the foreground labels' mean Dice (MONAI `DiceMetric`) of the
    arg-max prediction; an image with empty mask and empty prediction scores 1."""
    k = probabilities.shape[1]
    predicted = torch.from_numpy(probabilities.argmax(axis=1)[:, None].astype(np.int64))
    truth = torch.from_numpy(masks.astype(np.int64))
    one_hot = [functional.one_hot(x[:, 0], k).permute(0, 3, 1, 2) for x in (predicted, truth)]
    metric = DiceMetric(include_background=False, reduction="mean", ignore_empty=False)
    return float(metric(one_hot[0], one_hot[1]).nanmean())


def _augmented(train: PairArrays, augment: Compose) -> tuple[torch.Tensor, torch.Tensor]:
    images, masks = [], []
    for image, mask in zip(train.images, train.masks, strict=True):
        pair = augment({"image": _as_float(image), "label": torch.from_numpy(mask).float()})
        images.append(torch.as_tensor(pair["image"]).clamp_(0.0, 1.0))
        masks.append(torch.as_tensor(pair["label"]).round_())
    return torch.stack(images), torch.stack(masks).long()


def train_segmentation_model(
    train: PairArrays,
    val: PairArrays,
    config: TrainConfig,
    network_config: SegmentationNetworkConfig,
    preprocess: PreprocessSpec,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> SegmentationTrainResult:
    """Train on `train`, keeping the epoch with the best validation Dice on `val`.

    With `checkpoint_dir`, state is saved after every epoch and a later call with the same
    directory resumes from it. `config.time_budget_minutes` sizes the cosine schedule to
    the budget after the first epochs, as for classifiers.

    Raises:
        ModelError: empty splits, or an image size the network cannot halve enough times.
    """
    if len(train) == 0 or len(val) == 0:
        raise ModelError("Segmentation training needs a non-empty train and validation split.")
    if preprocess.image_size % network_config.divisor:
        raise ModelError(
            f"The image size {preprocess.image_size} must be a multiple of "
            f"{network_config.divisor} for a {network_config.architecture} of this depth."
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    seed = config.seed
    seed_everything(seed)
    network = build_segmentation_network(network_config)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    average = None if config.ema_decay is None else WeightAverage(network, config.ema_decay)
    evaluated = network if average is None else average.network
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    augment = segmentation_augmentation(config.augment, preprocess.image_size)
    val_targets = torch.from_numpy(val.masks.astype(np.int64))
    best_state = {k: v.detach().clone() for k, v in evaluated.state_dict().items()}
    history: list[SegmentationEpoch] = []
    best_dice, best_epoch, start_epoch, elapsed = -math.inf, 0, 0, 0.0
    planned = config.epochs
    budget = None if config.time_budget_minutes is None else config.time_budget_minutes * 60.0
    loaded = None if checkpoint_dir is None else load_checkpoint(
        checkpoint_dir, network, optimizer, average)  # fmt: skip
    if loaded is not None:
        best_state, meta = loaded
        history = [SegmentationEpoch(**record) for record in meta["history"]]
        best_dice, best_epoch = meta["best_dice"], meta["best_epoch"]
        start_epoch, elapsed, planned = len(history), meta["seconds"], meta["planned"]
    stopped = "epochs"
    for epoch in range(start_epoch, config.epochs):
        over_budget = budget is not None and history and elapsed + history[-1].seconds > budget
        if epoch >= planned or over_budget:
            stopped = "time budget"
            break
        if history and early_stop_due(config, epoch, best_epoch, planned, elapsed, budget):
            stopped = "early stopping"
            break
        started = time.perf_counter()
        lr = cosine_lr(config.learning_rate, epoch, planned)
        for group in optimizer.param_groups:
            group["lr"] = lr
        seed_everything(seed * 1000 + epoch)
        augment.set_random_state(seed=seed * 1000 + epoch)
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        images, masks = _augmented(train, augment)
        shuffled = torch.randperm(len(images), generator=generator)
        size = config.batch_size
        stop = len(shuffled) - len(shuffled) % size if len(shuffled) > size else len(shuffled)
        network.train()
        total, count = 0.0, 0
        for start in range(0, stop, size):
            batch = shuffled[start : start + size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(_normalise(images[batch], preprocess)), masks[batch])
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(network)
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        probabilities = predict_probabilities(evaluated, val.images, preprocess)
        with torch.no_grad():
            logits = torch.from_numpy(np.log(np.clip(probabilities, 1e-7, 1.0)))
            val_loss = float(loss_fn(logits, val_targets))
        dice = validation_dice(probabilities, val.masks)
        seconds = time.perf_counter() - started
        elapsed += seconds
        record = SegmentationEpoch(epoch + 1, total / max(count, 1), val_loss, dice, lr, seconds)
        history.append(record)
        if dice > best_dice:
            best_dice, best_epoch = dice, epoch + 1
            best_state = {k: v.detach().clone() for k, v in evaluated.state_dict().items()}
        if budget is not None and epoch - start_epoch < 2:
            fit = epoch + 1 + int((budget - elapsed) // max(seconds, 1e-6))
            planned = max(epoch + 1, min(config.epochs, fit))
        if checkpoint_dir is not None:
            meta = {"history": [asdict(r) for r in history], "best_dice": best_dice,
                    "best_epoch": best_epoch, "seconds": elapsed, "planned": planned}  # fmt: skip
            save_checkpoint(checkpoint_dir, network, best_state, optimizer, meta, average)
        if progress is not None:
            progress(record, planned)
    network.load_state_dict(best_state)
    network.eval()
    return SegmentationTrainResult(
        network=network, network_config=network_config, preprocess=preprocess, config=config,
        history=history, best_epoch=best_epoch,
        best_val_dice=float(best_dice) if math.isfinite(best_dice) else math.nan,
        epochs_run=len(history), seconds=elapsed, stopped_because=stopped,
    )  # fmt: skip
