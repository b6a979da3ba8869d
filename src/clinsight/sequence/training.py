"""Seeded, resumable training of sequence networks with early stopping on validation AUPRC.

The conventions of `imaging.training`: AdamW, a cosine learning-rate schedule sized to the
epoch or time budget, the epoch with the best validation AUPRC kept (patience, and an epoch
floor), checkpoints in safetensors after every epoch (`imaging.checkpoints`, no pickle) so a
later call with the same folder resumes, and a progress callback per epoch. The test split
is never seen here.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

from clinsight.errors import ModelError
from clinsight.imaging.checkpoints import load_checkpoint, save_checkpoint
from clinsight.sequence.binning import ModelInputs
from clinsight.sequence.networks import SequenceNetworkConfig, build_sequence_network

__all__ = [
    "BatchSource",
    "SequenceEpoch",
    "SequenceTrainConfig",
    "TrainedSequenceModel",
    "TrainingRun",
    "predict_sequence_logits",
    "seed_all",
    "train_network",
    "train_sequence_model",
]


@dataclass(frozen=True)
class SequenceTrainConfig:
    """Hyper-parameters of one run (recorded on the model card)."""

    architecture: str = "gru"
    hidden: int = 64
    dropout: float = 0.3
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    patience: int = 8
    min_epochs: int = 6
    time_budget_minutes: float | None = None
    seed: int = 0
    threads: int = 0
    class_weighting: str = "none"
    """``balanced``: positives weighted by negatives / positives of each training label."""
    wide: bool = False
    """Visit networks only: add the linear term over the history's log code counts."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SequenceEpoch:
    """One epoch: training loss, validation loss, AUPRC and AUROC, learning rate, seconds."""

    epoch: int
    train_loss: float
    val_loss: float
    val_auprc: float
    val_auroc: float
    learning_rate: float
    seconds: float


@dataclass
class TrainedSequenceModel:
    """The selected network and how it was trained."""

    network: nn.Module
    network_config: SequenceNetworkConfig
    config: SequenceTrainConfig
    history: list[SequenceEpoch]
    best_epoch: int
    best_val_auprc: float
    seconds: float
    stopped_because: str


ProgressCallback = Callable[[SequenceEpoch, int], None]


class BatchSource(Protocol):
    """Inputs a network reads in batches: binned stays (`ModelInputs`) or visit sequences."""

    def __len__(self) -> int: ...

    def batch(self, index: NDArray[np.int64]) -> tuple[torch.Tensor, ...]:
        """The network's positional inputs for the rows in `index`."""
        ...


def predict_sequence_logits(
    network: nn.Module, inputs: BatchSource, batch_size: int = 512
) -> NDArray[np.float64]:
    """(N,) logits ((N, K) for K labels) in eval mode without gradients."""
    network.eval()
    out: list[NDArray[np.float64]] = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            index = np.arange(start, min(start + batch_size, len(inputs)))
            out.append(network(*inputs.batch(index)).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and PyTorch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _cosine(base: float, epoch: int, planned: int) -> float:
    progress = min(1.0, epoch / max(planned - 1, 1))
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainingRun:
    """The selected network of `train_network` and how its training went."""

    network: nn.Module
    history: list[SequenceEpoch]
    best_epoch: int
    best_val_auprc: float
    seconds: float
    stopped_because: str


def _scores(y: NDArray[np.int64], logits: NDArray[np.float64]) -> tuple[float, float]:
    """Validation AUPRC and AUROC; micro-averaged over the labels of a multi-label task."""
    truth, flat = np.asarray(y).ravel(), np.asarray(logits).ravel()
    return float(average_precision_score(truth, flat)), float(roc_auc_score(truth, flat))


def _positive_weight(targets: torch.Tensor, weighting: str) -> torch.Tensor | None:
    if weighting == "none":
        return None
    if weighting != "balanced":
        raise ModelError(f"unknown class weighting {weighting!r}; use none or balanced.")
    positives = targets.sum(dim=0)
    return (len(targets) - positives) / positives.clamp(min=1.0)


def train_network(
    network: nn.Module,
    train: BatchSource,
    y_train: NDArray[np.int64],
    val: BatchSource,
    y_val: NDArray[np.int64],
    config: SequenceTrainConfig,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> TrainingRun:
    """Train `network` (freshly built under ``config.seed``) on `train`, keep the epoch
    with the best validation AUPRC. `y_*` are (N,) 0/1 or (N, K) multi-label 0/1.

    Raises:
        ModelError: a split is empty or validation lacks one of the two outcomes.
    """
    if len(train) == 0 or len(val) == 0:
        raise ModelError("training needs a non-empty training and validation split.")
    if len(set(np.asarray(y_val).ravel().tolist())) < 2:
        raise ModelError("the validation split needs stays with and without the outcome.")
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    targets = torch.from_numpy(np.asarray(y_train, dtype=np.float32))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=_positive_weight(targets, config.class_weighting))
    val_targets = torch.from_numpy(np.asarray(y_val, dtype=np.float32))
    budget = None if config.time_budget_minutes is None else config.time_budget_minutes * 60.0
    history: list[SequenceEpoch] = []
    best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    best_auprc, best_epoch, elapsed, planned = -math.inf, 0, 0.0, config.epochs
    loaded = (
        None
        if checkpoint_dir is None
        else load_checkpoint(checkpoint_dir, network, optimizer, None)
    )
    if loaded is not None:
        best_state, meta = loaded
        history = [SequenceEpoch(**r) for r in meta["history"]]
        best_auprc, best_epoch = meta["best_auprc"], meta["best_epoch"]
        elapsed = meta["seconds"]
        planned = meta["planned"] if budget is not None else config.epochs
    stopped = "epochs"
    for epoch in range(len(history), config.epochs):
        if epoch >= planned or (
            budget is not None and history and elapsed + history[-1].seconds > budget
        ):
            stopped = "time budget"
            break
        if epoch >= config.min_epochs and epoch - best_epoch >= config.patience:
            stopped = "early stopping"
            break
        started = time.perf_counter()
        lr = _cosine(config.learning_rate, epoch, planned)
        for group in optimizer.param_groups:
            group["lr"] = lr
        seed_all(config.seed * 1000 + epoch)
        order = torch.randperm(
            len(targets), generator=torch.Generator().manual_seed(config.seed * 1000 + epoch)
        )
        network.train()
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(*train.batch(batch.numpy())), targets[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        logits = predict_sequence_logits(network, val)
        val_loss = float(loss_fn(torch.from_numpy(logits).float(), val_targets))
        auprc, auroc = _scores(y_val, logits)
        seconds = time.perf_counter() - started
        elapsed += seconds
        record = SequenceEpoch(epoch + 1, total / len(order), val_loss, auprc, auroc, lr, seconds)
        history.append(record)
        if auprc > best_auprc:
            best_auprc, best_epoch = auprc, epoch + 1
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        if budget is not None and len(history) <= 2:
            fit = epoch + 1 + int((budget - elapsed) // max(seconds, 1e-6))
            planned = max(epoch + 1, min(config.epochs, fit))
        if checkpoint_dir is not None:
            meta = {
                "history": [asdict(r) for r in history], "best_auprc": best_auprc,
                "best_epoch": best_epoch, "seconds": elapsed, "planned": planned,
            }  # fmt: skip
            save_checkpoint(checkpoint_dir, network, best_state, optimizer, meta, None)
        if progress is not None:
            progress(record, planned)
    network.load_state_dict(best_state)
    network.eval()
    return TrainingRun(network, history, best_epoch, float(best_auprc), elapsed, stopped)


def train_sequence_model(
    train: ModelInputs,
    y_train: NDArray[np.int64],
    val: ModelInputs,
    y_val: NDArray[np.int64],
    config: SequenceTrainConfig,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> TrainedSequenceModel:
    """Build the binned-input network of `config` and train it (`train_network`).

    Raises:
        ModelError: a split is empty or validation lacks one of the two outcomes.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_all(config.seed)
    net_config = SequenceNetworkConfig(
        config.architecture, train.x.shape[2], train.static.shape[1], config.hidden,
        config.dropout,
    )  # fmt: skip
    run = train_network(
        build_sequence_network(net_config), train, y_train, val, y_val, config,
        checkpoint_dir=checkpoint_dir, progress=progress,
    )  # fmt: skip
    return TrainedSequenceModel(
        run.network, net_config, config, run.history, run.best_epoch, run.best_val_auprc,
        run.seconds, run.stopped_because,
    )  # fmt: skip
