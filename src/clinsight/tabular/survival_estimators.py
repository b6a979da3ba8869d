"""Three survival estimators scikit-survival lacks in the form the pipeline needs.

- `CoxnetCV`: elastic-net Cox whose penalty is chosen on the training rows alone (inner
  K-fold CV on Harrell's C over the regularisation path), refitted at that penalty.
- `NeuralCoxSurvival`: a DeepSurv-style network (Katzman et al. 2018): a small MLP whose
  output is the log relative hazard, trained on the Cox partial likelihood (Breslow ties)
  with weight decay and early stopping on 20 % of the training rows, plus the Breslow
  baseline hazard for survival curves. Its weights are kept as NumPy arrays
  (``weights_``), so the registry stores them as safetensors and loading builds no code;
  PyTorch is imported only to train and predict.
- `RankEnsembleSurvival`: several of these models fitted on the same rows; its risk is the
  mean of each member's risk read as a percentile of that member's training-row risks (so
  members on different scales weigh alike, and one patient is scored on their own), its
  survival the mean of the members' curves.

Both expose what the pipeline uses of a scikit-survival model: ``predict`` (a risk score,
higher is worse), ``predict_survival_function(X, return_array=True)`` at ``unique_times_``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from clinsight.data.survival import outcome_fields

__all__ = [
    "CoxnetCV", "NeuralCoxSurvival", "RankEnsembleSurvival", "breslow_baseline",
    "percentile_of", "step_values",
]  # fmt: skip


def step_values(
    grid: NDArray[np.float64], values: NDArray[np.float64], times: ArrayLike
) -> NDArray[np.float64]:
    """A right-continuous step function given at `grid` (ascending), read at `times`
    (value 1 before the first grid time): columns of ``values`` (n, len(grid))."""
    at = np.searchsorted(grid, np.asarray(times, dtype=np.float64), side="right") - 1
    padded = np.column_stack([np.ones(len(values)), values])
    return np.asarray(padded[:, at + 1], dtype=np.float64)


def percentile_of(reference: NDArray[np.float64], values: ArrayLike) -> NDArray[np.float64]:
    """Where each of `values` falls among the sorted `reference` (mid-rank of ties), in [0, 1]."""
    points = np.asarray(values, dtype=np.float64)
    below = np.searchsorted(reference, points, side="left")
    upto = np.searchsorted(reference, points, side="right")
    return np.asarray((below + upto) / (2.0 * len(reference)), dtype=np.float64)


def breslow_baseline(
    risk: NDArray[np.float64], time: NDArray[np.float64], event: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The unique times and the Breslow cumulative baseline hazard at each, for log relative
    hazards `risk` (centred so the baseline is that of an average patient)."""
    times = np.unique(time)
    hazard = np.exp(risk - risk.mean())
    at_risk = np.array([hazard[time >= t].sum() for t in times])
    deaths = np.array([np.sum(event & (time == t)) for t in times], dtype=np.float64)
    return times, np.cumsum(deaths / at_risk)


class CoxnetCV(BaseEstimator):  # type: ignore[misc]
    """Elastic-net Cox (`sksurv.linear_model.CoxnetSurvivalAnalysis`) at the penalty that
    maximises inner-CV Harrell's C on the training data."""

    def __init__(
        self, l1_ratio: float = 0.5, n_alphas: int = 30, cv: int = 3, random_state: int = 0
    ) -> None:
        self.l1_ratio = l1_ratio
        self.n_alphas = n_alphas
        self.cv = cv
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: NDArray[Any]) -> CoxnetCV:
        """Choose the penalty by inner CV, then refit at it (with the baseline model)."""
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        data = np.asarray(X, dtype=np.float64)
        event = y[outcome_fields(y)[0]]
        path = _path(data, y, self.l1_ratio, n_alphas=self.n_alphas)
        alphas = path.alphas_
        scores = np.zeros(len(alphas))
        folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
        for fit, held in folds.split(data, event):
            inner = _path(data[fit], y[fit], self.l1_ratio, alphas=alphas)
            for i, alpha in enumerate(inner.alphas_):
                risk = inner.predict(data[held], alpha=alpha)
                scores[i] += _harrell(y[held], risk)
            scores[len(inner.alphas_) :] = -np.inf
        best = int(np.argmax(scores))
        self.alpha_ = float(alphas[best])
        # Down the path to the chosen penalty (warm starts): a cold fit at one weak
        # penalty can diverge where the path converges.
        self.estimator_ = CoxnetSurvivalAnalysis(
            l1_ratio=self.l1_ratio, alphas=alphas[: best + 1], fit_baseline_model=True,
            max_iter=5000,
        ).fit(data, y)  # fmt: skip
        self.coef_: NDArray[np.float64] = np.asarray(self.estimator_.coef_[:, -1])
        self.unique_times_ = self.estimator_.unique_times_
        self.n_features_in_ = data.shape[1]
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """The linear predictor (log relative hazard)."""
        check_is_fitted(self)
        data = np.asarray(X, dtype=np.float64)
        return np.asarray(self.estimator_.predict(data, alpha=self.alpha_))

    def predict_survival_function(self, X: ArrayLike, return_array: bool = True) -> Any:
        """Survival probabilities at ``unique_times_``, shape (n, times)."""
        check_is_fitted(self)
        return self.estimator_.predict_survival_function(
            np.asarray(X, dtype=np.float64), alpha=self.alpha_, return_array=return_array
        )


def _path(
    data: NDArray[np.float64],
    y: NDArray[Any],
    l1_ratio: float,
    *,
    n_alphas: int = 30,
    alphas: NDArray[np.float64] | None = None,
) -> Any:
    """The elastic-net path (from the largest useful penalty down to 1 % of it, or over
    `alphas`); where its weakest penalties diverge numerically (more inputs than the
    events support), the weakest third is dropped and the path fitted again.

    Raises:
        ArithmeticError: even the strongest penalty diverges.
    """
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    def fit(grid: NDArray[np.float64] | None) -> Any:
        model = CoxnetSurvivalAnalysis(l1_ratio=l1_ratio, alphas=grid, n_alphas=n_alphas,
                                       alpha_min_ratio=0.01, max_iter=5000)  # fmt: skip
        return model.fit(data, y)

    try:
        return fit(alphas)
    except ArithmeticError:
        if alphas is None:
            top = CoxnetSurvivalAnalysis(l1_ratio=l1_ratio, n_alphas=2, alpha_min_ratio=0.5)
            alphas = top.fit(data, y).alphas_[0] * np.logspace(0, -2, n_alphas)
    grid = np.asarray(alphas)
    while len(grid) > 1:
        grid = grid[: max(1, 2 * len(grid) // 3)]
        try:
            return fit(grid)
        except ArithmeticError:
            continue
    return fit(grid)


def _harrell(y: NDArray[Any], risk: NDArray[np.float64]) -> float:
    from sksurv.metrics import concordance_index_censored

    event_field, time_field = outcome_fields(y)
    event, time = y[event_field], y[time_field]
    if not event.any():
        return 0.5
    return float(concordance_index_censored(event, time, risk)[0])


class NeuralCoxSurvival(BaseEstimator):  # type: ignore[misc]
    """DeepSurv: an MLP log-hazard trained on the Cox partial likelihood (see module doc)."""

    def __init__(
        self,
        hidden: int = 32,
        dropout: float = 0.2,
        weight_decay: float = 1e-3,
        learning_rate: float = 1e-2,
        max_epochs: int = 300,
        patience: int = 30,
        random_state: int = 0,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.patience = patience
        self.random_state = random_state

    def _network(self, n_in: int) -> Any:
        import torch

        return torch.nn.Sequential(
            torch.nn.Linear(n_in, self.hidden), torch.nn.ReLU(),
            torch.nn.Dropout(self.dropout), torch.nn.Linear(self.hidden, 1),
        )  # fmt: skip

    def fit(self, X: ArrayLike, y: NDArray[Any]) -> NeuralCoxSurvival:
        """Train with early stopping on a stratified 20 % of the rows; Breslow baseline on all.

        Raises:
            ValueError: fewer than 10 rows or no event in the training part.
        """
        import torch

        data = np.asarray(X, dtype=np.float32)
        event = np.asarray(y[outcome_fields(y)[0]], dtype=bool)
        time = np.asarray(y[outcome_fields(y)[1]], dtype=np.float64)
        if len(data) < 10 or not event.any():
            raise ValueError("NeuralCoxSurvival needs at least 10 rows and one event.")
        rng = np.random.default_rng(self.random_state)
        held = np.zeros(len(data), dtype=bool)
        for flag in (True, False):
            rows = np.flatnonzero(event == flag)
            held[rng.choice(rows, size=len(rows) // 5, replace=False)] = True
        torch.manual_seed(self.random_state)
        net = self._network(data.shape[1])
        optimiser = torch.optim.Adam(
            net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        train_part = _partial_likelihood_data(data[~held], time[~held], event[~held])
        check_part = _partial_likelihood_data(data[held], time[held], event[held])
        best, best_state, waited = np.inf, None, 0
        for _ in range(self.max_epochs):
            net.train()
            optimiser.zero_grad()
            loss = _cox_loss(net, *train_part)
            loss.backward()
            optimiser.step()
            net.eval()
            with torch.no_grad():
                check = float(_cox_loss(net, *check_part)) if event[held].any() else float(loss)
            if check < best - 1e-4:
                best, waited = check, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                waited += 1
                if waited >= self.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        self.weights_: dict[str, NDArray[np.float32]] = {
            k: v.detach().numpy().copy() for k, v in net.state_dict().items()
        }
        self.n_features_in_ = data.shape[1]
        risk = self.predict(data)
        self.unique_times_, self.cumulative_baseline_hazard_ = breslow_baseline(risk, time, event)
        self.risk_mean_ = float(risk.mean())
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """The network's log relative hazard."""
        import torch

        check_is_fitted(self, "weights_")
        net = self._network(self.n_features_in_)
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in self.weights_.items()})
        net.eval()
        with torch.no_grad():
            out = net(torch.from_numpy(np.asarray(X, dtype=np.float32)))
        return np.asarray(out.numpy()[:, 0], dtype=np.float64)

    def predict_survival_function(self, X: ArrayLike, return_array: bool = True) -> Any:
        """Survival probabilities at ``unique_times_``: ``exp(-H0(t) exp(f(x) - mean f))``."""
        del return_array
        risk = np.exp(self.predict(X) - self.risk_mean_)
        return np.exp(-np.outer(risk, self.cumulative_baseline_hazard_))


def _partial_likelihood_data(
    data: NDArray[np.float32], time: NDArray[np.float64], event: NDArray[np.bool_]
) -> tuple[Any, Any]:
    import torch

    order = np.argsort(-time, kind="stable")
    return torch.from_numpy(data[order]), torch.from_numpy(event[order].astype(np.float32))


def _cox_loss(net: Any, data: Any, event: Any) -> Any:
    """Negative Cox partial log-likelihood per event (rows sorted by time, descending)."""
    import torch

    log_hazard = net(data)[:, 0]
    log_risk_set = torch.logcumsumexp(log_hazard, dim=0)
    return -torch.sum((log_hazard - log_risk_set) * event) / torch.clamp(event.sum(), min=1.0)


class RankEnsembleSurvival(BaseEstimator):  # type: ignore[misc]
    """Rank-averaged survival models fitted on the same rows (see module doc).

    ``estimators`` is a list of (name, unfitted estimator) pairs; each is cloned and fitted.
    """

    def __init__(self, estimators: list[tuple[str, Any]] | None = None) -> None:
        self.estimators = estimators

    def fit(self, X: ArrayLike, y: NDArray[Any]) -> RankEnsembleSurvival:
        """Fit every member and keep its sorted training-row risks.

        Raises:
            ValueError: fewer than two members.
        """
        if not self.estimators or len(self.estimators) < 2:
            raise ValueError("RankEnsembleSurvival needs at least two member estimators.")
        data = np.asarray(X, dtype=np.float64)
        self.estimators_: list[tuple[str, Any]] = [
            (name, clone(estimator).fit(data, y)) for name, estimator in self.estimators
        ]
        self.train_risks_: list[NDArray[np.float64]] = [
            np.sort(np.asarray(member.predict(data), dtype=np.float64))
            for _, member in self.estimators_
        ]
        self.unique_times_ = np.unique(
            np.concatenate([np.asarray(m.unique_times_, dtype=np.float64)
                            for _, m in self.estimators_])
        )  # fmt: skip
        self.n_features_in_ = data.shape[1]
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """The mean over members of each member's risk as a training-risk percentile."""
        check_is_fitted(self)
        data = np.asarray(X, dtype=np.float64)
        ranks = [percentile_of(reference, member.predict(data))
                 for reference, (_, member) in zip(self.train_risks_, self.estimators_,
                                                   strict=True)]  # fmt: skip
        return np.asarray(np.mean(ranks, axis=0), dtype=np.float64)

    def predict_survival_function(self, X: ArrayLike, return_array: bool = True) -> Any:
        """The members' mean survival at ``unique_times_``, shape (n, times)."""
        del return_array
        check_is_fitted(self)
        data = np.asarray(X, dtype=np.float64)
        curves = []
        for _, member in self.estimators_:
            values = np.asarray(member.predict_survival_function(data, return_array=True))
            grid = np.asarray(member.unique_times_, dtype=np.float64)
            curves.append(step_values(grid, values, self.unique_times_))
        return np.mean(curves, axis=0)
