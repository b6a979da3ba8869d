"""Seeded, resumable training of image classifiers on MedMNIST-style splits.

AdamW with a cosine schedule sized to the epoch or time budget, class weighting for
imbalance, MONAI augmentation, early stopping on validation AUC, checkpoints in
safetensors (no pickle) so a run can resume where it stopped.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose
from monai.utils import set_determinism
from numpy.typing import NDArray
from safetensors.torch import load_file, save_file
from sklearn.metrics import roc_auc_score
from torch import nn

from clinsight.data.medmnist import MedMNISTSplits, Split, TaskType
from clinsight.errors import ModelError
from clinsight.imaging.networks import NetworkConfig, build_network
from clinsight.imaging.transforms import AugmentSpec, Preprocess, PreprocessSpec, build_augmentation

__all__ = [
    "EpochRecord",
    "TrainConfig",
    "TrainResult",
    "data_fingerprint",
    "predict_logits",
    "train_image_model",
]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (all recorded in the model card)."""

    architecture: str = "resnet18"
    width: int = 24
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    dropout: float = 0.1
    patience: int = 10
    ema_decay: float | None = None
    time_budget_minutes: float | None = None
    class_weighting: bool = True
    seed: int = 0
    threads: int = 0
    train_subset: int | None = None
    augment: AugmentSpec = field(default_factory=AugmentSpec)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did: losses, validation AUC and timing."""

    epoch: int
    train_loss: float
    val_loss: float
    val_auc: float
    learning_rate: float
    seconds: float


@dataclass
class TrainResult:
    """A trained network with everything needed to evaluate and register it."""

    network: nn.Module
    network_config: NetworkConfig
    preprocess: PreprocessSpec
    config: TrainConfig
    history: list[EpochRecord]
    best_epoch: int
    epochs_run: int
    seconds: float
    data_sha256: str
    stopped_because: str


ProgressCallback = Callable[[EpochRecord, int], None]


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """Run a block on `count` intra-op threads (small per-image ops are fastest on one)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _augmented_epoch(
    images: torch.Tensor, augment: Compose, preprocess: Preprocess
) -> torch.Tensor:
    """One epoch's augmented, normalised copy of the (N, C, S, S) training images in [0, 1].

    Done up front on one thread: per-image MONAI transforms are small operations that
    several threads (or a loader process beside the training threads) only slow down.
    """
    with _torch_threads(1):
        augmented = torch.stack([torch.as_tensor(augment(image)) for image in images])
    return torch.from_numpy(preprocess.normalize(augmented.clamp_(0.0, 1.0)))


def _targets(labels: NDArray[np.int64], task: TaskType) -> torch.Tensor:
    if task == TaskType.MULTI_LABEL:
        return torch.from_numpy(labels.astype(np.float32))
    return torch.from_numpy(labels[:, 0].astype(np.int64))


def _loss_fn(task: TaskType, labels: NDArray[np.int64], config: TrainConfig, k: int) -> nn.Module:
    if task == TaskType.MULTI_LABEL:
        pos = labels.sum(axis=0).clip(min=1)
        pos_weight = (len(labels) - pos) / pos if config.class_weighting else np.ones(k)
        return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32))
    counts = np.bincount(labels[:, 0], minlength=k).clip(min=1)
    weights = len(labels) / (k * counts) if config.class_weighting else np.ones(k)
    return nn.CrossEntropyLoss(
        weight=torch.tensor(weights, dtype=torch.float32), label_smoothing=config.label_smoothing
    )


def _auc(task: TaskType, labels: NDArray[np.int64], logits: NDArray[np.float32]) -> float:
    """Validation AUC used for early stopping (macro one-vs-rest; mean per label)."""
    if task == TaskType.MULTI_LABEL:
        aucs = [
            roc_auc_score(labels[:, j], logits[:, j])
            for j in range(labels.shape[1])
            if 0 < labels[:, j].sum() < len(labels)
        ]
        return float(np.mean(aucs)) if aucs else float("nan")
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    y = labels[:, 0]
    if probs.shape[1] == 2:
        return float(roc_auc_score(y, probs[:, 1]))
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    return float(
        roc_auc_score(y, probs[:, present] / probs[:, present].sum(1, keepdims=True),
                      multi_class="ovr", labels=present)
    )  # fmt: skip


def predict_logits(
    network: nn.Module, inputs: torch.Tensor, batch_size: int = 256
) -> NDArray[np.float32]:
    """Logits for already normalised inputs (N, C, S, S), in eval mode without gradients."""
    network.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            outputs.append(network(inputs[start : start + batch_size]).float().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


class _WeightAverage:
    """Exponential moving average of a network's weights and BatchNorm statistics.

    On small datasets the epoch-to-epoch validation AUC swings widely; the averaged
    network is smoother, so it is what gets validated, selected and registered.
    """

    def __init__(self, network: nn.Module, decay: float) -> None:
        self.network = copy.deepcopy(network)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        """Fold the current weights in (with a warm-up so early steps count less)."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = network.state_dict()
        for name, average in self.network.state_dict().items():
            if average.dtype.is_floating_point:
                average.mul_(decay).add_(current[name].detach(), alpha=1 - decay)
            else:
                average.copy_(current[name])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # MONAI draws from the global state
    torch.manual_seed(seed)
    set_determinism(seed=seed)


def _checkpoint_paths(folder: Path) -> tuple[Path, Path]:
    return folder / "checkpoint.safetensors", folder / "checkpoint.json"


def _save_checkpoint(
    folder: Path,
    network: nn.Module,
    best_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
    average: _WeightAverage | None,
) -> None:
    tensors = {f"model.{k}": v.detach().clone() for k, v in network.state_dict().items()}
    tensors |= {f"best.{k}": v.clone() for k, v in best_state.items()}
    if average is not None:
        tensors |= {f"ema.{k}": v.clone() for k, v in average.network.state_dict().items()}
        meta = meta | {"ema_updates": average.updates}
    opt_state = optimizer.state_dict()
    for index, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).clone()
    meta = meta | {"param_groups": opt_state["param_groups"]}
    weights, info = _checkpoint_paths(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(weights.with_suffix(".tmp")))
    weights.with_suffix(".tmp").replace(weights)
    info.write_text(json.dumps(meta, default=str))


def _load_checkpoint(
    folder: Path,
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    average: _WeightAverage | None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    weights, info = _checkpoint_paths(folder)
    if not (weights.exists() and info.exists()):
        return None
    tensors = load_file(str(weights))
    meta: dict[str, Any] = json.loads(info.read_text())
    network.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    if average is not None:
        average.network.load_state_dict({k[4:]: v for k, v in tensors.items() if k[:4] == "ema."})
        average.updates = int(meta.pop("ema_updates", 0))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    return best, meta


def data_fingerprint(data: MedMNISTSplits) -> str:
    """sha256 over the training and validation arrays actually used."""
    digest = hashlib.sha256()
    for split in (Split.TRAIN, Split.VAL):
        images, labels = data.split(split)
        digest.update(np.ascontiguousarray(images).tobytes())
        digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def train_image_model(
    data: MedMNISTSplits,
    config: TrainConfig,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train a classifier on the train split, selecting the epoch on validation AUC.

    The test split is never touched here. With `checkpoint_dir`, state is saved after
    every epoch and a later call with the same directory resumes from it.

    Raises:
        ModelError: the configuration cannot be trained (bad sizes, empty data).
    """
    info = data.info
    if config.threads:
        torch.set_num_threads(config.threads)
    _seed_everything(config.seed)
    channels = info.channels
    spec = PreprocessSpec(image_size=data.size, channels=channels)
    preprocess = Preprocess(spec)
    train_images, train_labels = data.split(Split.TRAIN)
    if config.train_subset is not None:
        order = np.random.default_rng(config.seed).permutation(len(train_images))
        keep = np.sort(order[: config.train_subset])
        train_images, train_labels = train_images[keep], train_labels[keep]
    val_images, val_labels = data.split(Split.VAL)
    if len(train_images) == 0 or len(val_images) == 0:
        raise ModelError("Training needs a non-empty train and validation split.")

    net_config = NetworkConfig(
        config.architecture, channels, info.num_classes, config.width, config.dropout
    )
    network = build_network(net_config)
    loss_fn = _loss_fn(info.task, train_labels, config, info.num_classes)
    augment = build_augmentation(config.augment, data.size)
    train_inputs = torch.from_numpy(preprocess.geometry_batch(train_images))
    train_targets = _targets(train_labels, info.task)
    val_inputs = torch.from_numpy(preprocess.batch(val_images))
    val_targets = _targets(val_labels, info.task)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    average = None if config.ema_decay is None else _WeightAverage(network, config.ema_decay)
    evaluated = network if average is None else average.network
    best_state = {k: v.detach().clone() for k, v in evaluated.state_dict().items()}
    history: list[EpochRecord] = []
    best_auc, best_epoch, start_epoch, elapsed = -math.inf, 0, 0, 0.0
    planned = config.epochs
    loaded = (
        None
        if checkpoint_dir is None
        else _load_checkpoint(checkpoint_dir, network, optimizer, average)
    )
    if loaded is not None:
        best_state, meta = loaded
        history = [EpochRecord(**record) for record in meta["history"]]
        best_auc, best_epoch = meta["best_auc"], meta["best_epoch"]
        start_epoch, elapsed, planned = len(history), meta["seconds"], meta["planned"]

    budget = None if config.time_budget_minutes is None else config.time_budget_minutes * 60.0
    stopped = "epochs"
    for epoch in range(start_epoch, config.epochs):
        over_budget = budget is not None and history and elapsed + history[-1].seconds > budget
        if epoch >= planned or over_budget:
            stopped = "time budget"
            break
        if epoch - best_epoch >= config.patience and history:
            stopped = "early stopping"
            break
        started = time.perf_counter()
        lr = _cosine_lr(config.learning_rate, epoch, planned)
        for group in optimizer.param_groups:
            group["lr"] = lr
        _seed_everything(config.seed * 1000 + epoch)
        augment.set_random_state(seed=config.seed * 1000 + epoch)
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        epoch_inputs = _augmented_epoch(train_inputs, augment, preprocess)
        shuffled = torch.randperm(len(epoch_inputs), generator=generator)
        size = config.batch_size
        stop = len(shuffled) - len(shuffled) % size if len(shuffled) > size else len(shuffled)
        network.train()
        total, count = 0.0, 0
        for start in range(0, stop, size):
            batch = shuffled[start : start + size]
            inputs, targets = epoch_inputs[batch], train_targets[batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(inputs), targets)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(network)
            total += float(loss.detach()) * len(inputs)
            count += len(inputs)
        val_logits = predict_logits(evaluated, val_inputs)
        val_loss = float(loss_fn(torch.from_numpy(val_logits), val_targets))
        val_auc = _auc(info.task, val_labels, val_logits)
        seconds = time.perf_counter() - started
        elapsed += seconds
        record = EpochRecord(epoch + 1, total / max(count, 1), val_loss, val_auc, lr, seconds)
        history.append(record)
        if val_auc > best_auc or (math.isnan(best_auc) and not math.isnan(val_auc)):
            best_auc, best_epoch = val_auc, epoch + 1
            best_state = {k: v.detach().clone() for k, v in evaluated.state_dict().items()}
        if budget is not None and epoch - start_epoch < 2:
            # Size the cosine schedule to the budget; the second epoch shows the steady pace.
            fit = epoch + 1 + int((budget - elapsed) // max(seconds, 1e-6))
            planned = max(epoch + 1, min(config.epochs, fit))
        if checkpoint_dir is not None:
            meta = {
                "history": [asdict(r) for r in history], "best_auc": best_auc,
                "best_epoch": best_epoch, "seconds": elapsed, "planned": planned,
            }  # fmt: skip
            _save_checkpoint(checkpoint_dir, network, best_state, optimizer, meta, average)
        if progress is not None:
            progress(record, planned)
    network.load_state_dict(best_state)
    network.eval()
    return TrainResult(
        network=network,
        network_config=net_config,
        preprocess=spec,
        config=config,
        history=history,
        best_epoch=best_epoch,
        epochs_run=len(history),
        seconds=elapsed,
        data_sha256=data_fingerprint(data),
        stopped_because=stopped,
    )


def _cosine_lr(base: float, epoch: int, planned: int) -> float:
    """Cosine decay from `base` to 1% of it over the planned epochs, one warm-up epoch."""
    if epoch == 0 and planned > 2:
        return base * 0.2
    progress = min(1.0, epoch / max(planned - 1, 1))
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))
