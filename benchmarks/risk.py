"""Risk prediction benchmark: baselines vs Clinsight's selected pipeline, same folds, one run.

5-fold stratified CV repeated 3 times (seed 0) on UCI heart (Cleveland), Pima and WDBC.
Baselines follow the issue's reference protocol: median imputation, scaling for logistic
regression, default scikit-learn estimators, threshold 0.5. Clinsight's pipeline is chosen
inside each outer training fold (nested: `select_model` with 5-fold inner CV over the default
candidates) and calibrated (sigmoid), so its scores are honest out-of-fold estimates.
AUC and Brier are means over the 15 test folds; ECE (the project's 15-bin top-class ECE) is
computed on the pooled out-of-fold predictions of each repeat and averaged over repeats.
Then: subgroup metrics of the pipeline, and external validation of a Cleveland-trained
model on every other ``processed.<site>.data`` file in the data directory, before and after
recalibration on a stratified 20 % sample.

Run: ``.venv/bin/python benchmarks/risk.py`` (single-threaded; about 10-15 minutes).
Writes ``benchmarks/results/risk.json``, the ``risk`` section of ``benchmarks/README.md``,
and prints the Markdown table.
"""

from __future__ import annotations

import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info

from clinsight.config import get_settings
from clinsight.data.medmnist import TaskType
from clinsight.data.tabular import TabularDataset, load_dataset, load_uci_heart, uci_heart_sites
from clinsight.evaluation.calibration import brier_score, expected_calibration_error
from clinsight.evaluation.external import external_validation
from clinsight.evaluation.metrics import roc_auc
from clinsight.evaluation.subgroups import subgroup_reports
from clinsight.tabular.models import limit_threads, select_model
from common import machine, update_readme_section, write_results

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEED = 0
N_SPLITS, N_REPEATS = 5, 3
REFERENCE_AUC = {
    "cleveland": {"logistic_regression": 0.902, "random_forest": 0.903},
    "pima": {"logistic_regression": 0.837, "random_forest": 0.830},
    "wdbc": {"logistic_regression": 0.995, "random_forest": 0.991},
}
BASELINES: dict[str, BaseEstimator] = {
    "logistic_regression": make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=1000)
    ),
    "random_forest": make_pipeline(
        SimpleImputer(strategy="median"), RandomForestClassifier(random_state=SEED, n_jobs=1)
    ),
    "gradient_boosting": make_pipeline(
        SimpleImputer(strategy="median"), HistGradientBoostingClassifier(random_state=SEED)
    ),
}


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Baselines see every column as a number (categorical codes as in the source file)."""
    numeric: pd.DataFrame = frame.apply(pd.to_numeric, errors="coerce").astype(float)
    return numeric


def _summary(y: np.ndarray, oof: np.ndarray, folds: list[tuple[int, np.ndarray]]) -> dict[str, Any]:
    aucs, briers = [], []
    for repeat, test in folds:
        p = oof[repeat, test]
        aucs.append(roc_auc(y[test], p))
        briers.append(brier_score(y[test], np.column_stack([1 - p, p]), TaskType.BINARY))
    eces = [
        expected_calibration_error(y, np.column_stack([1 - p, p]), TaskType.BINARY) for p in oof
    ]
    flagged = oof >= 0.5
    return {
        "auc_mean": float(np.mean(aucs)),
        "auc_std": float(np.std(aucs)),
        "brier_mean": float(np.mean(briers)),
        "ece_mean": float(np.mean(eces)),
        "ece_per_repeat": [float(e) for e in eces],
        "sensitivity_at_0.5": float(flagged[:, y == 1].mean()),
        "specificity_at_0.5": float((~flagged[:, y == 0]).mean()),
    }


def benchmark_dataset(data: TabularDataset) -> dict[str, Any]:
    """Run every baseline and the nested Clinsight pipeline on the same folds."""
    X, y = data.X, data.y.to_numpy()
    categories = {f.name: f.categories for f in data.spec.features if f.categories}
    cv = RepeatedStratifiedKFold(n_splits=N_SPLITS, n_repeats=N_REPEATS, random_state=SEED)
    splits = list(cv.split(X, y))
    folds = [(i // N_SPLITS, test) for i, (_, test) in enumerate(splits)]
    oof = {name: np.zeros((N_REPEATS, len(y))) for name in [*BASELINES, "clinsight"]}
    seconds = dict.fromkeys(oof, 0.0)
    winners: Counter[str] = Counter()
    numeric = _numeric(X)
    for i, (train, test) in enumerate(splits):
        repeat = i // N_SPLITS
        for name, template in BASELINES.items():
            start = time.perf_counter()
            model = clone(template).fit(numeric.iloc[train], y[train])
            oof[name][repeat, test] = model.predict_proba(numeric.iloc[test])[:, 1]
            seconds[name] += time.perf_counter() - start
        start = time.perf_counter()
        selection = select_model(
            X.iloc[train], y[train], data.feature_types, categories=categories,
            n_splits=N_SPLITS, n_repeats=1, random_state=SEED,
        )  # fmt: skip
        oof["clinsight"][repeat, test] = selection.model.predict_proba(X.iloc[test])[:, 1]
        seconds["clinsight"] += time.perf_counter() - start
        winners[selection.best.name] += 1
    methods = {name: {**_summary(y, oof[name], folds), "seconds": seconds[name]} for name in oof}
    best_baseline = max(BASELINES, key=lambda n: methods[n]["auc_mean"])
    clinsight = methods["clinsight"]
    spec = data.spec
    subgroups = subgroup_reports(
        y, oof["clinsight"][0],
        sex=X[spec.sex_column].to_numpy() if spec.sex_column else None,
        sex_labels={1.0: "male", 0.0: "female"},
        age=X[spec.age_column].to_numpy() if spec.age_column else None,
    )  # fmt: skip
    return {
        "n": len(y),
        "prevalence": float(y.mean()),
        "sha256": data.sha256,
        "notes": list(data.notes),
        "methods": methods,
        "reference_auc": REFERENCE_AUC[data.spec.name.removeprefix("uci_heart_")],
        "selected_per_outer_fold": dict(winners),
        "best_baseline": best_baseline,
        "clinsight_matches_best_auc": clinsight["auc_mean"] >= methods[best_baseline]["auc_mean"],
        "clinsight_ece_at_most_0.05": clinsight["ece_mean"] <= 0.05,
        "subgroups_repeat_1": {k: r.to_dict() for k, r in subgroups.items()},
    }


def data_dir() -> Path:
    """The configured data directory, or the team's shared one when it holds no tables."""
    configured = get_settings().resolved_data_dir
    return configured if (configured / "tabular").is_dir() else SHARED_DATA


def external_sites(train: TabularDataset, folder: Path) -> dict[str, Any]:
    """Cleveland-trained selected pipeline on every other UCI heart site present."""
    others = [s for s in uci_heart_sites(folder) if s != "cleveland"]
    if not others:
        return {
            "status": "skipped: no other-site file (tabular/uci_heart/processed.<site>.data) "
            "in the data directory"
        }
    categories = {f.name: f.categories for f in train.spec.features if f.categories}
    selection = select_model(
        train.X, train.y, train.feature_types, categories=categories, random_state=SEED
    )
    out: dict[str, Any] = {"model": selection.best.name, "sites": {}}
    for site in others:
        data = load_uci_heart(site, folder)
        report = external_validation(selection.model, data.X, data.y, site=site)
        out["sites"][site] = report.to_dict()
    return out


def readme_section(results: dict[str, Any]) -> str:
    """The ``## Risk prediction`` section of benchmarks/README.md."""
    lines = [
        "## Risk prediction",
        "",
        f"`benchmarks/risk.py`: {results['protocol']}. Same folds for every method; baselines",
        "are median imputation (+ scaling for LR) and default scikit-learn estimators; ECE is",
        "the project's 15-bin top-class ECE on pooled out-of-fold predictions, mean of repeats.",
        "",
        *_table(results),
        "",
        f"External validation: {results['external_validation'].get('status', 'see risk.json')}.",
    ]
    return "\n".join(lines)


def _table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| dataset | method | AUC (mean ± sd) | reference AUC (quoted, not measured here) "
        "| Brier | ECE | sens@0.5 | spec@0.5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, res in results["datasets"].items():
        for method, m in res["methods"].items():
            ref = res["reference_auc"].get(method)
            lines.append(
                f"| {dataset} | {method} | {m['auc_mean']:.3f} ± {m['auc_std']:.3f} | "
                f"{'' if ref is None else f'{ref:.3f}'} | {m['brier_mean']:.3f} | "
                f"{m['ece_mean']:.3f} | {m['sensitivity_at_0.5']:.3f} | "
                f"{m['specificity_at_0.5']:.3f} |"
            )
    return lines


def main() -> None:
    """Run the benchmark single-threaded, write the JSON and print the table."""
    started = time.perf_counter()
    with limit_threads(1):
        openmp_threads = sorted(
            {p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"}
        )
        folder = data_dir()
        datasets = {name: load_dataset(name, folder) for name in ("cleveland", "pima", "wdbc")}
        results: dict[str, Any] = {
            "protocol": f"{N_SPLITS}-fold stratified CV x {N_REPEATS} repeats, seed {SEED}; "
            "clinsight = nested selection (inner 5-fold) + sigmoid calibration on log-odds",
            "environment": {
                **machine(),
                "scikit-learn": sklearn.__version__,
                "platform": platform.platform(),
                "openmp_threads_during_run": openmp_threads,
            },
            "datasets": {name: benchmark_dataset(data) for name, data in datasets.items()},
            "external_validation": external_sites(datasets["cleveland"], folder),
        }
    results["seconds_total"] = time.perf_counter() - started
    write_results("risk", results)
    update_readme_section("risk", readme_section(results))
    sys.stdout.write("\n".join(_table(results)) + "\n")


if __name__ == "__main__":
    main()
