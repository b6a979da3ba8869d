"""A stable gene signature: the inputs an elastic-net Cox model keeps across bootstrap refits.

One fit's non-zero coefficients are partly an accident of the sample. Here the penalty is
chosen once by inner CV (`CoxnetCV`) on all rows, then the model is refitted at that
penalty on `n_bootstrap` resamples; an input is in the signature when it is kept in at
least `threshold` of the refits. Hazard ratios are per standard deviation of the input
(the pipeline scales numeric inputs), from the fit on all rows, with the 2.5-97.5
percentiles of the bootstrap refits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from clinsight.data.tabular import FeatureType
from clinsight.tabular.models import limit_threads
from clinsight.tabular.pipeline import build_preprocessor, output_sources
from clinsight.tabular.survival_estimators import CoxnetCV

__all__ = ["SignatureGene", "bootstrap_signature"]


@dataclass(frozen=True)
class SignatureGene:
    """One kept input: how often it was selected and its hazard ratio per SD."""

    feature: str
    frequency: float
    hazard_ratio: float
    hazard_ratio_interval: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        low, high = self.hazard_ratio_interval
        return {"feature": self.feature, "selection_frequency": round(self.frequency, 3),
                "hazard_ratio_per_sd": round(self.hazard_ratio, 4),
                "hazard_ratio_bootstrap_95": [round(low, 4), round(high, 4)]}  # fmt: skip


def bootstrap_signature(
    X: pd.DataFrame,
    y: NDArray[Any],
    feature_types: Mapping[str, FeatureType],
    *,
    categories: Mapping[str, tuple[str, ...]] | None = None,
    n_bootstrap: int = 200,
    threshold: float = 0.6,
    l1_ratio: float = 0.9,
    seed: int = 0,
) -> tuple[list[SignatureGene], dict[str, float], float, int]:
    """The signature (most frequent first), every input's selection frequency, the penalty
    used and the number of refits that converged (a resample whose fit diverges
    numerically is skipped; frequencies are over the converged refits)."""
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    preprocess = build_preprocessor(feature_types, categories)
    with limit_threads(1):
        design = np.asarray(preprocess.fit_transform(X[list(feature_types)], y))
        sources = output_sources(preprocess)
        tuned = CoxnetCV(l1_ratio=l1_ratio, random_state=seed).fit(design, y)
        alpha, coef = tuned.alpha_, tuned.coef_
        rng = np.random.default_rng(seed)
        kept = np.zeros((n_bootstrap, design.shape[1]), dtype=bool)
        coefs = np.zeros((n_bootstrap, design.shape[1]))
        fitted = np.zeros(n_bootstrap, dtype=bool)
        for b in range(n_bootstrap):
            rows = rng.integers(0, len(design), len(design))
            refit = CoxnetSurvivalAnalysis(l1_ratio=l1_ratio, alphas=[alpha], max_iter=5000)
            try:
                refit.fit(design[rows], y[rows])
            except ArithmeticError:
                continue
            fitted[b] = True
            coefs[b] = refit.coef_[:, 0]
            kept[b] = coefs[b] != 0
        kept, coefs = kept[fitted], coefs[fitted]
    frequency = kept.mean(axis=0)
    per_source = {name: float(frequency[[s == name for s in sources]].max())
                  for name in dict.fromkeys(sources)}  # fmt: skip
    genes = []
    for column in np.flatnonzero(frequency >= threshold):
        low, high = np.percentile(np.exp(coefs[:, column]), [2.5, 97.5])
        ratio, interval = float(np.exp(coef[column])), (float(low), float(high))
        genes.append(SignatureGene(sources[column], float(frequency[column]), ratio, interval))
    genes.sort(key=lambda g: -g.frequency)
    return genes, per_source, alpha, int(fitted.sum())
