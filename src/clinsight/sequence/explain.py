"""Per-prediction explanation over variables x time bins.

Integrated gradients (Sundararajan et al., ICML 2017) of the logit with respect to the
observed values and their masks, from the baseline "nothing observed" (x = 0, the training
mean, mask 0) to the stay's inputs, summed per variable and bin: the attributions add up
to the logit minus the baseline's logit (up to the Riemann error of `steps`). A RETAIN
network's own decomposition (`RetainNetwork.contributions`) is exact and is used for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from clinsight.sequence.binning import ModelInputs
from clinsight.sequence.networks import RetainNetwork

__all__ = ["Attribution", "explain_stay"]


@dataclass(frozen=True)
class Attribution:
    """(T, V) contributions to one stay's logit, the method, and the baseline's logit."""

    values: NDArray[np.float64]
    method: str
    baseline_logit: float
    logit: float


def explain_stay(network: nn.Module, inputs: ModelInputs, steps: int = 32) -> Attribution:
    """The attribution of the first stay in `inputs` (one stay: pass it alone)."""
    x, mask, delta, static = (
        torch.from_numpy(np.ascontiguousarray(a[:1]))
        for a in (inputs.x, inputs.mask, inputs.delta, inputs.static)
    )
    network.eval()
    with torch.no_grad():
        logit = float(network(x, mask, delta, static)[0])
        baseline = float(network(torch.zeros_like(x), torch.zeros_like(mask), delta, static)[0])
    if isinstance(network, RetainNetwork):
        with torch.no_grad():
            values = network.contributions(x, mask, delta)[0].double().numpy()
        return Attribution(values, "retain contributions", baseline, logit)
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    scaled_x = (alphas[:, None, None] * x[0]).requires_grad_(True)
    scaled_m = (alphas[:, None, None] * mask[0]).requires_grad_(True)
    out = network(scaled_x, scaled_m, delta.expand(steps, -1, -1), static.expand(steps, -1))
    grad_x, grad_m = torch.autograd.grad(out.sum(), [scaled_x, scaled_m])
    values = (grad_x.mean(0) * x[0] + grad_m.mean(0) * mask[0]).double().numpy()
    return Attribution(values, "integrated gradients", baseline, logit)
