"""Penultimate features of an image network: the input of its last linear layer.

`WithFeatures` wraps any network of `imaging.networks` so one forward pass returns the
logits and the features; it is what the ONNX export traces (a second graph output), so
the intended-use gate can score an image at serving time without PyTorch. In an
`Ensemble` the features are the members' penultimate features side by side.
"""

from __future__ import annotations

import torch
from torch import nn

from clinsight.errors import ModelError
from clinsight.imaging.networks import Ensemble

__all__ = ["WithFeatures", "feature_layers", "penultimate_features"]


def _last_linear(network: nn.Module) -> nn.Linear:
    linears = [module for module in network.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ModelError(f"{type(network).__name__} has no linear layer to take features from.")
    return linears[-1]


def feature_layers(network: nn.Module) -> list[nn.Linear]:
    """The last linear layer of the network (of each member, for an ensemble).

    Raises:
        ModelError: a network (or member) has no linear layer.
    """
    members = list(network.members) if isinstance(network, Ensemble) else [network]
    return [_last_linear(member) for member in members]


class WithFeatures(nn.Module):
    """`network` returning `(logits, features)`: features (N, D) are the inputs of its last
    linear layer(s), concatenated over ensemble members."""

    def __init__(self, network: nn.Module) -> None:
        """Wrap `network` (its modules are shared, not copied).

        Raises:
            ModelError: a network (or member) has no linear layer.
        """
        super().__init__()
        self.network = network
        self._layers = feature_layers(network)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and penultimate features for a batch of images."""
        captured: list[torch.Tensor] = []

        def keep(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            captured.append(inputs[0].flatten(1))

        handles = [layer.register_forward_pre_hook(keep) for layer in self._layers]
        try:
            logits = self.network(x)
        finally:
            for handle in handles:
                handle.remove()
        return logits, torch.cat(captured, dim=1)


def penultimate_features(
    network: nn.Module, batch: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """Features (N, D) of a preprocessed batch (N, C, S, S), network in eval mode, no grad.

    The network's training mode is restored afterwards.

    Raises:
        ModelError: a network (or member) has no linear layer.
    """
    wrapped = WithFeatures(network)
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            parts = [
                wrapped(batch[i : i + batch_size].to(device))[1].cpu()
                for i in range(0, len(batch), batch_size)
            ]
    finally:
        network.train(was_training)
    return torch.cat(parts) if parts else torch.zeros((0, 0))
