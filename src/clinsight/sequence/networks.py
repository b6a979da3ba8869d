"""Sequence networks over binned inputs (x, mask, delta, static) → one logit per stay.

- ``grud``: GRU-D (Che et al., Sci Rep 2018): each missing input decays from its last
  observation towards the training mean, and the hidden state decays with the time since
  the last observation, both at learned per-variable rates.
- ``gru`` / ``lstm``: a recurrent layer over [x, mask, delta] (missing values at the mean).
- ``retain``: RETAIN (Choi et al., NeurIPS 2016): two reverse-time GRUs give a weight per
  time bin (alpha) and per embedding dimension (beta); the logit is a sum over time bins
  and variables, so `RetainNetwork.contributions` splits it exactly into variables x time.

`VisitNetwork` reads visit sequences of codes instead (`sequence.visits`): each visit the
sum of its codes' embeddings and its time features, a GRU or LSTM over the visits, one
logit per label; ``gru_decay`` is a GRU whose state decays, GRU-D-style, with the time
since the previous visit (at learned per-unit rates) before each visit is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from clinsight.errors import ModelError

__all__ = [
    "ARCHITECTURES",
    "VISIT_CELLS",
    "GRUDNetwork",
    "RecurrentNetwork",
    "RetainNetwork",
    "SequenceNetworkConfig",
    "VisitNetwork",
    "VisitNetworkConfig",
    "build_sequence_network",
]

ARCHITECTURES = ("grud", "gru", "lstm", "retain")
VISIT_CELLS = ("gru", "lstm", "gru_decay")


@dataclass(frozen=True)
class SequenceNetworkConfig:
    """What it takes to rebuild a network from its weights."""

    architecture: str
    variables: int
    static: int
    hidden: int = 64
    dropout: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SequenceNetworkConfig:
        return cls(**dict(raw))


class _Head(nn.Module):
    """The last hidden state and the descriptors → one logit ((N,)), or `outputs` ((N, K))."""

    def __init__(self, hidden: int, static: int, dropout: float, outputs: int = 1) -> None:
        super().__init__()
        self.static = nn.Sequential(nn.Linear(static, hidden // 2), nn.ReLU())
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden + hidden // 2, outputs))
        self.outputs = outputs

    def forward(self, state: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        logit: torch.Tensor = self.out(torch.cat([state, self.static(static)], dim=1))
        return logit.squeeze(1) if self.outputs == 1 else logit


class GRUDNetwork(nn.Module):
    """GRU-D with input and hidden-state decay; an unrolled loop, so ONNX export traces it."""

    def __init__(self, config: SequenceNetworkConfig) -> None:
        super().__init__()
        v, h = config.variables, config.hidden
        self.input_decay = nn.Parameter(torch.linspace(1.0, 10.0, v))  # per window length
        self.input_decay_bias = nn.Parameter(torch.zeros(v))
        self.hidden_decay = nn.Linear(v, h)
        self.cell = nn.GRUCell(2 * v, h)
        self.head = _Head(h, config.static, config.dropout)
        self.hidden = h

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, delta: torch.Tensor, static: torch.Tensor
    ) -> torch.Tensor:
        n, steps, _ = x.shape
        state = x.new_zeros((n, self.hidden))
        last = x.new_zeros(x[:, 0].shape)
        for t in range(steps):
            m, d = mask[:, t], delta[:, t]
            gamma_x = torch.exp(-torch.relu(self.input_decay * d + self.input_decay_bias))
            last = m * x[:, t] + (1 - m) * last
            filled = m * x[:, t] + (1 - m) * gamma_x * last
            gamma_h = torch.exp(-torch.relu(self.hidden_decay(d)))
            state = self.cell(torch.cat([filled, m], dim=1), gamma_h * state)
        output: torch.Tensor = self.head(state, static)
        return output


class RecurrentNetwork(nn.Module):
    """One GRU or LSTM layer over [x, mask, delta] per bin."""

    def __init__(self, config: SequenceNetworkConfig) -> None:
        super().__init__()
        kind = nn.GRU if config.architecture == "gru" else nn.LSTM
        self.rnn = kind(3 * config.variables, config.hidden, batch_first=True)
        self.head = _Head(config.hidden, config.static, config.dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, delta: torch.Tensor, static: torch.Tensor
    ) -> torch.Tensor:
        outputs, _ = self.rnn(torch.cat([x, mask, delta], dim=2))
        result: torch.Tensor = self.head(outputs[:, -1], static)
        return result


class RetainNetwork(nn.Module):
    """RETAIN over [x, mask] per bin: logit = sum_t alpha_t w'(beta_t * W [x_t, m_t]) + s."""

    def __init__(self, config: SequenceNetworkConfig) -> None:
        super().__init__()
        v, h = config.variables, config.hidden
        self.embed = nn.Linear(2 * v, h, bias=False)
        self.alpha_rnn = nn.GRU(h + 1, h, batch_first=True)
        self.beta_rnn = nn.GRU(h + 1, h, batch_first=True)
        self.alpha = nn.Linear(h, 1)
        self.beta = nn.Linear(h, h)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(h, 1)
        self.static = nn.Linear(config.static, 1)

    def _weights(
        self, x: torch.Tensor, mask: torch.Tensor, delta: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        embedded = self.embed(torch.cat([x, mask], dim=2))
        since = delta.mean(dim=2, keepdim=True)
        reverse = torch.flip(torch.cat([embedded, since], dim=2), dims=[1])
        g, _ = self.alpha_rnn(reverse)
        hb, _ = self.beta_rnn(reverse)
        alpha = torch.softmax(torch.flip(self.alpha(g), dims=[1]), dim=1)  # (N, T, 1)
        beta = torch.tanh(torch.flip(self.beta(hb), dims=[1]))  # (N, T, H)
        return embedded, alpha, beta

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, delta: torch.Tensor, static: torch.Tensor
    ) -> torch.Tensor:
        embedded, alpha, beta = self._weights(x, mask, delta)
        context = (alpha * beta * embedded).sum(dim=1)
        logit: torch.Tensor = (self.out(self.dropout(context)) + self.static(static)).squeeze(1)
        return logit

    def contributions(
        self, x: torch.Tensor, mask: torch.Tensor, delta: torch.Tensor
    ) -> torch.Tensor:
        """(N, T, V) share of each variable in each bin of the logit (value and mask terms)."""
        _, alpha, beta = self._weights(x, mask, delta)
        v = x.shape[2]
        weight = self.embed.weight  # (H, 2V)
        scaled = (alpha * beta) * self.out.weight[0]  # (N, T, H)
        per_input = torch.einsum("nth,hk->ntk", scaled, weight) * torch.cat([x, mask], dim=2)
        return per_input[:, :, :v] + per_input[:, :, v:]


def build_sequence_network(config: SequenceNetworkConfig) -> nn.Module:
    """The network of `config`.

    Raises:
        ModelError: the architecture is unknown or a size is not positive.
    """
    if config.architecture not in ARCHITECTURES:
        raise ModelError(
            f"unknown sequence architecture {config.architecture!r}; use "
            f"{', '.join(ARCHITECTURES)}."
        )
    if min(config.variables, config.static, config.hidden) < 1:
        raise ModelError("a sequence network needs at least one variable, descriptor and unit.")
    if config.architecture == "grud":
        return GRUDNetwork(config)
    if config.architecture == "retain":
        return RetainNetwork(config)
    return RecurrentNetwork(config)


@dataclass(frozen=True)
class VisitNetworkConfig:
    """What it takes to rebuild a `VisitNetwork` from its weights."""

    cell: str
    vocabulary: int
    """Embedding rows: padding (0), unknown code (1) and the vocabulary's codes."""
    outputs: int
    static: int
    time_features: int
    hidden: int = 64
    dropout: float = 0.3
    wide: bool = False
    """Also a linear term over log(1 + count) of each code in the whole history (a wide
    and deep network: the bag-of-codes model inside the recurrent one)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> VisitNetworkConfig:
        return cls(**dict(raw))


class VisitNetwork(nn.Module):
    """Code embeddings summed per visit, with the visit's time features, through a GRU or
    LSTM; the state after each sequence's last visit and the descriptors → the logits (plus,
    when `wide`, a linear term over the history's log code counts)."""

    def __init__(self, config: VisitNetworkConfig) -> None:
        super().__init__()
        if config.cell not in VISIT_CELLS:
            raise ModelError(
                f"unknown visit-sequence cell {config.cell!r}; use {', '.join(VISIT_CELLS)}."
            )
        if min(config.vocabulary, config.outputs, config.static, config.hidden) < 1:
            raise ModelError("a visit network needs codes, outputs, descriptors and units.")
        self.embed = nn.Embedding(config.vocabulary, config.hidden, padding_idx=0)
        width = config.hidden + config.time_features
        self.rnn: nn.Module
        if config.cell == "gru_decay":
            self.rnn = nn.GRUCell(width, config.hidden)
            self.decay = nn.Linear(1, config.hidden)
        else:
            kind = nn.GRU if config.cell == "gru" else nn.LSTM
            self.rnn = kind(width, config.hidden, batch_first=True)
        self.head = _Head(config.hidden, config.static, config.dropout, config.outputs)
        self.hidden = config.hidden
        self.wide = nn.Linear(config.vocabulary, config.outputs) if config.wide else None

    def forward(
        self,
        codes: torch.Tensor,
        times: torch.Tensor,
        lengths: torch.Tensor,
        static: torch.Tensor,
    ) -> torch.Tensor:
        """`codes` (N, T, C) indices (0 padding), `times` (N, T, F), `lengths` (N,) >= 1."""
        visits = torch.cat([self.embed(codes).sum(dim=2), times], dim=2)
        if isinstance(self.rnn, nn.GRUCell):
            result: torch.Tensor = self.head(self._decayed(visits, times, lengths), static)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(
                visits, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            _, state = self.rnn(packed)
            last = state[0] if isinstance(state, tuple) else state
            result = self.head(last[-1], static)
        if self.wide is None:
            return result
        flat = codes.flatten(1)
        counts = flat.new_zeros((flat.shape[0], self.wide.in_features), dtype=visits.dtype)
        counts = counts.scatter_add(1, flat, torch.ones_like(flat, dtype=visits.dtype))
        counts[:, 0] = 0.0  # padding
        wide: torch.Tensor = self.wide(torch.log1p(counts))
        return result + (wide.squeeze(1) if wide.shape[1] == 1 else wide)

    def _decayed(
        self, visits: torch.Tensor, times: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """The state after each sequence's last visit, decayed by the gap before each."""
        state = visits.new_zeros((visits.shape[0], self.hidden))
        for t in range(visits.shape[1]):
            gamma = torch.exp(-torch.relu(self.decay(times[:, t, :1])))
            updated = self.rnn(visits[:, t], gamma * state)
            valid = (lengths > t).to(visits.dtype)[:, None]
            state = valid * updated + (1 - valid) * state
        return state
