"""Survival selection grid, checked away from GBSG2: does selecting among the named
variants as well (`tabular.survival.SURVIVAL_CANDIDATES`) beat selecting among the five
default models (`DEFAULT_SURVIVAL_CANDIDATES`)?

Cohorts: WHAS500 (500 patients, 14 inputs, 43 % events) and the veterans' lung cancer
trial (137 patients, 6 inputs), both shipped with scikit-survival; neither is used by
`benchmarks/survival.py`. Protocol as its ``selected`` row: 5-fold CV stratified on the
event x 3 repeats (seed 0), the same folds for both grids; inside each outer training
fold `select_survival_model` (3-fold inner CV on Uno's C, rank ensembles) chooses and
refits; Uno's C (truncated at the 80th percentile of the training fold's times) on the
outer test fold. Forests and boosting: 100 trees.

Run: ``nice -n 10 .venv/bin/python benchmarks/survival_grid.py``. Writes
``benchmarks/results/survival_grid.json`` and the ``survival_grid`` section of
benchmarks/README.md.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sksurv.datasets import load_veterans_lung_cancer, load_whas500
from sksurv.metrics import concordance_index_ipcw

from clinsight.tabular.survival import (
    DEFAULT_SURVIVAL_CANDIDATES,
    SURVIVAL_CANDIDATES,
    select_survival_model,
    survival_folds,
)
from common import update_readme_section, write_results

N_SPLITS, N_REPEATS, SEED, TREES = 5, 3, 0, 100
GRIDS = {"default": DEFAULT_SURVIVAL_CANDIDATES, "grid": SURVIVAL_CANDIDATES}
COHORTS = {"whas500": load_whas500, "veterans": load_veterans_lung_cancer}


def _cohort(name: str) -> tuple[pd.DataFrame, Any, dict[str, str], dict[str, tuple[str, ...]]]:
    X, raw = COHORTS[name]()
    y = np.array([(bool(e), float(t)) for e, t in raw], dtype=[("event", "?"), ("time", "<f8")])
    types = {str(c): "numeric" if X[c].dtype.kind == "f" else "categorical" for c in X.columns}
    categories = {c: tuple(str(v) for v in X[c].cat.categories)
                  for c in types if types[c] == "categorical"}  # fmt: skip
    frame = X.copy()
    for column in categories:
        frame[column] = frame[column].astype(str)
    return frame, y, types, categories


def evaluate(name: str) -> dict[str, Any]:
    """Nested-CV Uno's C of the selection over each grid, on the same folds."""
    X, y, types, categories = _cohort(name)
    folds = survival_folds(y["event"], N_SPLITS, N_REPEATS, SEED)
    out: dict[str, Any] = {"rows": len(X), "events": int(y["event"].sum())}
    for grid, candidates in GRIDS.items():
        start, uno, chosen = time.perf_counter(), [], []
        chosen_grid = {k: {**v, "n_trees": TREES} for k, v in candidates.items()}
        for fit, held in folds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                selection = select_survival_model(
                    X.iloc[fit], y[fit], types, categories=categories, candidates=chosen_grid,
                    n_splits=3, n_repeats=1, ensembles=True, random_state=SEED,
                )  # fmt: skip
            tau = float(np.quantile(y[fit]["time"], 0.8))
            risk = selection.model.predict(X.iloc[held])
            uno.append(float(concordance_index_ipcw(y[fit], y[held], risk, tau=tau)[0]))
            chosen.append(selection.best.name)
        out[grid] = {
            "candidates": len(candidates), "uno_c": round(float(np.mean(uno)), 4),
            "uno_c_repeats": [round(float(r), 4) for r in
                              np.reshape(uno, (N_REPEATS, -1)).mean(axis=1)],
            "chosen_per_fold": chosen, "seconds": round(time.perf_counter() - start, 1),
        }  # fmt: skip
        print(f"{name}.{grid}: Uno C {out[grid]['uno_c']}", flush=True)
    return out


def readme_section(results: dict[str, Any]) -> str:
    """The Markdown table of the run."""
    lines = [
        "## Survival selection grid, away from GBSG2",
        "",
        "Nested CV as in the survival table's `selected` row (5-fold x 3 outer, 3-fold inner "
        "CV on Uno's C, rank ensembles), on two cohorts the survival benchmark does not use: "
        "the five default models against the named grid (`SURVIVAL_CANDIDATES`: the five "
        "plus log1p Cox / elastic-net Cox / DeepSurv, forest leaves 30, boosting stumps and "
        "depth 3). Uno's C on the outer test folds, mean [per repeat]. Command: "
        "`nice -n 10 .venv/bin/python benchmarks/survival_grid.py`.",
        "",
        "| cohort | rows (events) | default (5) | grid (11) |",
        "|---|---|---|---|",
    ]
    for name in COHORTS:
        entry = results[name]
        cells = []
        for grid in GRIDS:
            repeats = ", ".join(f"{r:.3f}" for r in entry[grid]["uno_c_repeats"])
            cells.append(f"{entry[grid]['uno_c']:.4f} [{repeats}]")
        lines.append(f"| {name} | {entry['rows']} ({entry['events']}) | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    """Run both cohorts, write the results and the README section."""
    start = time.perf_counter()
    results: dict[str, Any] = {"protocol": __doc__, "trees": TREES}
    for name in COHORTS:
        results[name] = evaluate(name)
    results["seconds"] = round(time.perf_counter() - start, 1)
    write_results("survival_grid", results)
    update_readme_section("survival_grid", readme_section(results))
    print(readme_section(results))


if __name__ == "__main__":
    main()
