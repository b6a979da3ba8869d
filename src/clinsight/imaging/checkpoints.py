"""Training state that survives a restart: weight averaging and safetensors checkpoints.

A checkpoint holds the network, the best weights so far, the optimiser state and the
averaged network as tensors (no pickle), and the loop's counters as JSON.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from clinsight.files import write_bytes_atomic, write_text_atomic

__all__ = ["WeightAverage", "checkpoint_paths", "load_checkpoint", "save_checkpoint"]


class WeightAverage:
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


def checkpoint_paths(folder: Path) -> tuple[Path, Path]:
    """The weights file and the JSON state file of a checkpoint folder."""
    return folder / "checkpoint.safetensors", folder / "checkpoint.json"


def save_checkpoint(
    folder: Path,
    network: nn.Module,
    best_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
    average: WeightAverage | None,
) -> None:
    """Write the network, the best weights, the optimiser and the averaged network (if
    any) as safetensors, and `meta` as JSON, so training resumes exactly."""
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
    weights, info = checkpoint_paths(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(weights, save(tensors))
    write_text_atomic(info, json.dumps(meta, default=str))


def load_checkpoint(
    folder: Path,
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    average: WeightAverage | None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Restore what `save_checkpoint` wrote (in place); the best weights and the meta
    state, or None when the folder holds no checkpoint."""
    weights, info = checkpoint_paths(folder)
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
