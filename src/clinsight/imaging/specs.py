"""Plain specifications of an image training run: network names, augmentation strengths and
hyper-parameters. Torch-free, so the command line can show their defaults without loading torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ARCHITECTURE_NAMES", "AugmentSpec", "TrainConfig"]

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
    ema_decay: float | None = None
    time_budget_minutes: float | None = None
    class_weighting: bool = True
    seed: int = 0
    threads: int = 0
    train_subset: int | None = None
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    ensemble: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)
