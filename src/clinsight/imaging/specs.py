"""Plain specifications of an image training run: network names, augmentation strengths and
hyper-parameters. Torch-free, so the command line can show their defaults without loading torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "ARCHITECTURE_NAMES", "CLASS_WEIGHTINGS", "AugmentSpec", "TrainConfig", "early_stop_due",
    "epoch_floor", "patience_epochs", "stopping_rule",
]  # fmt: skip

CLASS_WEIGHTINGS = ("auto", "none", "inverse", "effective")
"""Loss weights per class: chosen on validation ("auto"), none, inverse frequency, or
effective number of samples (Cui et al., 2019, beta = 0.999)."""

ARCHITECTURE_NAMES = ("cnn", "resnet18", "resnet10")
"""The networks `imaging.networks.ARCHITECTURES` builds, in its order."""


@dataclass(frozen=True)
class AugmentSpec:
    """Training-time augmentation strengths (0 disables an augmentation)."""

    flip_prob: float = 0.5
    rotate_degrees: float = 15.0
    scale: float = 0.15
    translate: float = 0.1
    contrast_gamma: float = 0.4
    intensity: float = 0.15
    noise_std: float = 0.05
    blur_prob: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, recorded in the model card."""
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (all recorded in the model card).

    `ensemble` > 1 trains that many networks (a deep ensemble) and averages their logits.
    Early stopping never ends a run before its epoch floor (`epoch_floor`: at least
    `min_epochs` and `min_epochs_fraction` of the planned epochs, and with a time budget
    that fraction of the budget), and waits `patience_epochs` (at least `patience`, and
    `patience_fraction` of the planned epochs) without a better validation AUC.
    `class_weighting` "auto" trains `pilot_epochs` epochs per weighting on an imbalanced
    training split and keeps the one with the best validation AUC.
    """

    architecture: str = "resnet18"
    width: int = 24
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    dropout: float = 0.1
    patience: int = 10
    patience_fraction: float = 0.25
    min_epochs: int = 5
    min_epochs_fraction: float = 0.3
    ema_decay: float | None = None
    time_budget_minutes: float | None = None
    class_weighting: str = "auto"
    pilot_epochs: int = 3
    seed: int = 0
    threads: int = 0
    train_subset: int | None = None
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    ensemble: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def epoch_floor(config: TrainConfig, planned: int) -> int:
    """The fewest epochs a run trains before early stopping may end it."""
    return max(config.min_epochs, math.ceil(config.min_epochs_fraction * planned))


def patience_epochs(config: TrainConfig, planned: int) -> int:
    """Epochs without a better validation AUC after which a run stops early."""
    return max(config.patience, math.ceil(config.patience_fraction * planned))


def early_stop_due(
    config: TrainConfig,
    epochs_done: int,
    best_epoch: int,
    planned: int,
    elapsed_s: float = 0.0,
    budget_s: float | None = None,
) -> bool:
    """Whether early stopping ends a run now: past its epoch floor (and, with a time budget,
    past `min_epochs_fraction` of it) and `patience_epochs` epochs since its best one."""
    if epochs_done < epoch_floor(config, planned):
        return False
    if budget_s is not None and elapsed_s < config.min_epochs_fraction * budget_s:
        return False
    return epochs_done - best_epoch >= patience_epochs(config, planned)


def stopping_rule(config: TrainConfig) -> str:
    """The early-stopping rule of `config` in words (recorded on the model card)."""
    return (
        f"stop after max({config.patience}, {config.patience_fraction:g} x planned) epochs "
        f"without a better validation AUC, never before max({config.min_epochs}, "
        f"{config.min_epochs_fraction:g} x planned) epochs nor, with a time budget, before "
        f"{config.min_epochs_fraction:.0%} of it"
    )
