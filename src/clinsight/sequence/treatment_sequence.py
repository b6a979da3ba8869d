"""A sequence treatment recommender on the progression models' visit encoder.

``visit_gru`` reads the patient's coded visits (`PatientContext.visits`: conditions and
treatments per visit, with the time features of `sequence.visits`) through the same
`VisitNetwork` (GRU cell) and `train_network` trainer as the progression tasks, and scores
every treatment by its probability of being newly started within the horizon (multi-label,
one output per treatment). It learns from the training episodes
(`TreatmentData.index_samples`); the epoch is chosen on the validation queries'
AUPRC when `fit_validated` is given them, else on a fifth of the training patients.
Candidates are drawn for the active conditions by `recommend.models.rank`, as for every
recommender, and the score may be blended with the per-condition prior (`prior_weight`).

The history vocabulary is the training data's conditions then treatments, so the artifact
needs only the network's weights (safetensors, via the registry) to be rebuilt.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import NDArray

from clinsight.data.visit_tasks import VisitSample
from clinsight.errors import ModelError
from clinsight.recommend.matrix import PatientContext, TreatmentData
from clinsight.recommend.models import MODELS, BlendedRecommender, Recommender, make_recommender
from clinsight.recommend.split import Query
from clinsight.sequence.networks import VisitNetwork, VisitNetworkConfig
from clinsight.sequence.training import SequenceTrainConfig
from clinsight.sequence.visits import (
    STATIC_VISIT_FEATURES,
    TIME_FEATURES,
    CodeVocabulary,
    encode_visits,
    fit_visit_network,
)

__all__ = ["SEQUENCE_MODELS", "VisitGruRecommender", "make_treatment_recommender"]

_CONFIG = "config"
_NET = "net."


def _vocabularies(data: TreatmentData) -> tuple[CodeVocabulary, CodeVocabulary]:
    """Histories over the conditions and treatments of `data`; labels over its treatments."""
    return CodeVocabulary((*data.conditions, *data.items)), CodeVocabulary(tuple(data.items))


def _held_out(patient_id: str) -> bool:
    """One training patient in five stops training when no validation queries are given."""
    return zlib.crc32(patient_id.encode()) % 5 == 0


class VisitGruRecommender(BlendedRecommender):
    name = "visit_gru"
    defaults: ClassVar[dict[str, float]] = {
        "prior_weight": 0.0, "hidden": 64.0, "dropout": 0.3, "epochs": 25.0,
        "patience": 4.0, "learning_rate": 3e-3, "seed": 0.0,
    }  # fmt: skip
    network_: VisitNetwork | None = None

    def _train_config(self) -> SequenceTrainConfig:
        p = self.params
        return SequenceTrainConfig(
            architecture="gru", hidden=int(p["hidden"]), dropout=p["dropout"],
            epochs=int(p["epochs"]), batch_size=128, learning_rate=p["learning_rate"],
            patience=int(p["patience"]), min_epochs=2, seed=int(p["seed"]),
        )  # fmt: skip

    def fit(self, data: TreatmentData) -> Recommender:
        return self._train(data, None)

    def fit_validated(self, data: TreatmentData, validation: Sequence[Query]) -> Recommender:
        return self._train(data, [q.context.sample(q.truth) for q in validation] or None)

    def _train(self, data: TreatmentData, validation: list[VisitSample] | None) -> Recommender:
        if data.index_samples is None:
            raise ModelError(
                "visit_gru needs the training episodes (recommend.split.training_episodes); "
                "these treatment data hold none."
            )
        samples = [s for s in data.index_samples if s.visits]
        if validation is None:
            validation = [s for s in samples if _held_out(s.patient_id)]
            samples = [s for s in samples if not _held_out(s.patient_id)]
        validation = [s for s in validation if s.visits]
        history, labels = _vocabularies(data)
        _, run = fit_visit_network(
            encode_visits(samples, history, labels), encode_visits(validation, history, labels),
            history, self._train_config(),
        )  # fmt: skip
        if not isinstance(run.network, VisitNetwork):
            raise ModelError("fit_visit_network returned another kind of network.")
        self.network_ = run.network
        self.training_ = {"best_epoch": run.best_epoch, "best_val_auprc": run.best_val_auprc,
                          "epochs_run": len(run.history), "stopped": run.stopped_because,
                          "seconds": round(run.seconds, 1)}  # fmt: skip
        return self

    def collaborative(self, context: PatientContext, data: TreatmentData) -> NDArray[np.float64]:
        if self.network_ is None:
            raise ModelError("visit_gru is not fitted; fit it or load its state first.")
        if not context.visits:
            return np.zeros(len(data.items))
        arrays = encode_visits([context.sample()], *_vocabularies(data))
        self.network_.eval()
        with torch.inference_mode():
            logits = self.network_(*arrays.batch(np.arange(1)))
        return np.asarray(torch.sigmoid(logits)[0].double().numpy(), dtype=np.float64)

    def explain(self, context: PatientContext, data: TreatmentData, item: int) -> list[str]:
        name = data.names.get(data.items[item], data.items[item])
        chance = float(self.collaborative(context, data)[item])
        return [
            f"a GRU over the patient's last {len(context.visits)} visits (conditions, "
            f"treatments, time gaps) gives {name} a {chance:.0%} chance of being started, "
            "as learned from the training patients' episodes"
        ]

    def state(self) -> dict[str, NDArray[Any]]:
        if self.network_ is None:
            raise ModelError("visit_gru is not fitted; nothing to store.")
        embed = self.network_.embed.weight
        outputs = self.network_.head.outputs
        arrays = {f"{_NET}{k}": v.detach().numpy().copy()
                  for k, v in self.network_.state_dict().items()}  # fmt: skip
        arrays[_CONFIG] = np.asarray([embed.shape[0], outputs, embed.shape[1]], dtype=np.int64)
        return arrays

    def load_state(self, state: Mapping[str, NDArray[Any]]) -> Recommender:
        vocabulary, outputs, hidden = (int(n) for n in state[_CONFIG])
        config = VisitNetworkConfig(
            cell="gru", vocabulary=vocabulary, outputs=outputs,
            static=len(STATIC_VISIT_FEATURES), time_features=len(TIME_FEATURES),
            hidden=hidden, dropout=self.params["dropout"],
        )  # fmt: skip
        network = VisitNetwork(config)
        weights = {k[len(_NET) :]: torch.from_numpy(np.asarray(v))
                   for k, v in state.items() if k.startswith(_NET)}  # fmt: skip
        network.load_state_dict(weights)
        self.network_ = network.eval()
        return self


SEQUENCE_MODELS: dict[str, type[Recommender]] = {VisitGruRecommender.name: VisitGruRecommender}


def make_treatment_recommender(name: str, **params: float) -> Recommender:
    """A recommender by name, the sequence recommenders included.

    Raises:
        ModelError: unknown name or parameter.
    """
    if name in SEQUENCE_MODELS:
        return SEQUENCE_MODELS[name](**params)
    if name not in MODELS:
        known = sorted({*MODELS, *SEQUENCE_MODELS})
        raise ModelError(f"No recommender named {name!r}; choose one of {known}.")
    return make_recommender(name, **params)
