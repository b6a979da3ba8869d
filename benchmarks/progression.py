"""Progression benchmark: in-hospital mortality from the first 48 h of PhysioNet 2012.

Protocol: trained on set A (80 % train / 20 % validation by `patient_split`, seed 0, the
same split for every model), tested once on set B. Per seed: the `clinsight` sequence
network (early stopping on validation AUPRC, temperature fitted on validation), logistic
regression and gradient boosting on per-variable summaries (last, min, max, mean, count,
slope + descriptors, fitted on the training part), and SAPS-I as a score (its AUROC and
AUPRC are the raw score's; its probability is a logistic fit of death on SAPS-I on the
training part). Metrics on set B: AUROC, AUPRC, Brier, ECE (15-bin), 95 % bootstrap
intervals over stays, subgroups by sex and age band. Inference: predictions per second for
one 48-h stay, one thread, PyTorch eager and ONNX Runtime.

The parsed and binned sets are cached under ``--cache`` (npz, not in git). The CPU is
shared, so ``--minutes`` bounds each seed's training and ``--seeds`` how many seeds run;
both are recorded. Run: ``nice -n 10 .venv/bin/python benchmarks/progression.py``.

The Eunomia parts (``--part eunomia.onset``, ``--part eunomia.next_visit``) are in
`progression_visits`; each part keeps its own provenance in the results file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

import progression_visits
from clinsight.config import Settings
from clinsight.data.longitudinal import patient_split
from clinsight.data.physionet2012 import load_physionet2012, load_spec, physionet2012_set
from clinsight.data.tasks import IN_HOSPITAL_MORTALITY_48H, task_samples
from clinsight.evaluation.progression import RISK_METRICS, calibrate, risk_report
from clinsight.sequence.binning import BinSpec, SequenceArrays, bin_samples
from clinsight.sequence.model import ProgressionModel, fit_progression_model
from clinsight.sequence.summaries import gradient_boosting, logistic_regression, summary_features
from clinsight.sequence.training import SequenceTrainConfig
from common import provenance, read_results, update_readme_section, write_results

MODELS = ("clinsight", "logistic", "gradient_boosting", "saps1")
TARGETS = {"auroc": 0.87, "auprc": 0.55, "ece": 0.03, "train_minutes": 20.0}
PUBLISHED = (
    "GRU-D AUROC 0.842 (Che et al. 2018); SeFT/transformers 0.85-0.86 (Horn et al. 2020); "
    "mTAND 0.858 (Shukla & Marlin 2021)"
)


def cached_set(name: str, cache: Path) -> SequenceArrays:
    """Set `name` binned for the mortality task, parsed once and cached as npz."""
    path = cache / f"physionet2012-set-{name}.npz"
    if path.exists():
        return SequenceArrays.load(path)
    folder, outcomes = physionet2012_set(Settings().resolved_data_dir, name)
    spec = load_spec()
    cohort = load_physionet2012(folder, outcomes, spec=spec)
    samples, report = task_samples(IN_HOSPITAL_MORTALITY_48H, cohort)
    arrays = bin_samples(samples, BinSpec.from_spec(spec))
    cache.mkdir(parents=True, exist_ok=True)
    arrays.save(path)
    (cache / f"physionet2012-set-{name}.report.txt").write_text("\n".join(report.lines()))
    return arrays


def _split(arrays: SequenceArrays) -> tuple[SequenceArrays, SequenceArrays]:
    parts = patient_split(list(arrays.patient_ids), {"train": 0.8, "validation": 0.2}, seed=0)
    train = np.array([i for i, p in enumerate(arrays.patient_ids) if parts[p] == "train"])
    val = np.array([i for i, p in enumerate(arrays.patient_ids) if parts[p] == "validation"])
    return arrays.take(train), arrays.take(val)


def _report(test: SequenceArrays, risk: NDArray[np.float64], replicates: int) -> dict[str, Any]:
    return risk_report(test.labels, risk, sex=test.sex, age=test.age, n_bootstrap=replicates)


def _inference_speed(
    model: ProgressionModel, one: SequenceArrays, seconds: float = 3.0
) -> dict[str, Any]:
    """Predictions per second for one stay on one thread, eager and ONNX Runtime."""
    import onnxruntime as ort

    from clinsight.registry.progression import export_progression_onnx

    inputs = model.inputs(one)
    tensors = [torch.from_numpy(a) for a in (inputs.x, inputs.mask, inputs.delta, inputs.static)]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    try:
        with torch.inference_mode():
            eager = float(model.network(*tensors)[0])
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                model.network(*tensors)
                count += 1
        out["eager_per_s"] = count / (time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.onnx"
            export_progression_onnx(model, path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            feed = {
                "x": inputs.x,
                "mask": inputs.mask,
                "delta": inputs.delta,
                "static": inputs.static,
            }
            onnx_logit = float(session.run(None, feed)[0][0])
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                session.run(None, feed)
                count += 1
            out["onnxruntime_per_s"] = count / (time.perf_counter() - start)
            out["onnx_minus_eager_logit"] = onnx_logit - eager
    finally:
        torch.set_num_threads(previous)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    set_a, set_b = cached_set("a", args.cache), cached_set("b", args.cache)
    train, val = _split(set_a)
    bins = BinSpec.from_spec(load_spec())
    per_seed: dict[str, list[dict[str, Any]]] = {m: [] for m in MODELS}
    x_train, x_test = summary_features(train), summary_features(set_b)
    saps_ok = ~np.isnan(train.saps1)
    saps_fit = LogisticRegression().fit(train.saps1[saps_ok, None], train.labels[saps_ok])
    test_saps = np.where(np.isnan(set_b.saps1), np.nanmedian(train.saps1), set_b.saps1)
    model: ProgressionModel | None = None
    for seed in range(args.seeds):
        config = SequenceTrainConfig(
            architecture=args.architecture, hidden=args.hidden, epochs=args.epochs,
            time_budget_minutes=args.minutes, seed=seed, threads=args.threads,
        )  # fmt: skip
        t0 = time.perf_counter()
        model, trained = fit_progression_model(train, val, bins, config)
        temperature = calibrate(model, val)
        minutes = (time.perf_counter() - t0) / 60
        report = _report(set_b, model.risk(set_b), args.bootstrap)
        per_seed["clinsight"].append({
            "seed": seed, "train_minutes": minutes, "epochs": len(trained.history),
            "best_epoch": trained.best_epoch, "val_auprc": trained.best_val_auprc,
            "stopped_because": trained.stopped_because, "temperature": temperature, **report,
        })  # fmt: skip
        print(f"seed {seed} clinsight {report['values']} {minutes:.1f} min", flush=True)
        for name, estimator in (("logistic", logistic_regression(seed)),
                                ("gradient_boosting", gradient_boosting(seed))):  # fmt: skip
            t0 = time.perf_counter()
            estimator.fit(x_train, train.labels)
            minutes = (time.perf_counter() - t0) / 60
            risk = estimator.predict_proba(x_test)[:, 1]
            per_seed[name].append(
                {"seed": seed, "train_minutes": minutes, **_report(set_b, risk, args.bootstrap)}
            )
            print(f"seed {seed} {name} {per_seed[name][-1]['values']}", flush=True)
        risk = saps_fit.predict_proba(test_saps[:, None])[:, 1]
        per_seed["saps1"].append(
            {"seed": seed, "train_minutes": 0.0, **_report(set_b, risk, args.bootstrap)}
        )
    results: dict[str, Any] = {}
    for name, runs in per_seed.items():
        mean = {m: statistics.fmean(r["values"][m] for r in runs) for m in RISK_METRICS}
        results[name] = {
            "mean": mean,
            "train_minutes": statistics.fmean(r["train_minutes"] for r in runs),
            "seeds": runs,
        }
    assert model is not None
    speed = _inference_speed(model, set_b.take(np.array([0])))
    clinsight, boosting = results["clinsight"]["mean"], results["gradient_boosting"]["mean"]
    targets = {
        "auroc": clinsight["auroc"] >= TARGETS["auroc"],
        "auprc": clinsight["auprc"] >= TARGETS["auprc"],
        "ece": clinsight["ece"] <= TARGETS["ece"],
        "above_gradient_boosting": clinsight["auroc"] > boosting["auroc"]
        and clinsight["auprc"] > boosting["auprc"],
        "train_minutes": results["clinsight"]["train_minutes"] <= TARGETS["train_minutes"],
    }
    return {
        "physionet2012": {"mortality": results},
        "protocol": {
            "train": "set A, 80 % (patient_split seed 0)",
            "validation": "set A, 20 %",
            "test": "set B, once",
            "stays": {
                "a": len(set_a),
                "b": len(set_b),
                "train": len(train),
                "validation": len(val),
            },
            "architecture": args.architecture,
            "hidden": args.hidden,
            "epochs": args.epochs,
            "budget": {
                "minutes_per_seed": args.minutes,
                "seeds": args.seeds,
                "threads": args.threads,
                "bootstrap": args.bootstrap,
                "reduced": args.seeds < 3 or args.bootstrap < 1000,
            },
        },
        "targets": {"values": TARGETS, "met": targets},
        "inference": speed,
        "published": PUBLISHED,
        "total_minutes": (time.perf_counter() - started) / 60,
    }


def readme_section(results: dict[str, Any]) -> str:
    mortality = results["physionet2012"]["mortality"]
    protocol = results["protocol"]
    budget = protocol["budget"]
    lines = [
        "## Disease progression (PhysioNet 2012, in-hospital mortality from the first 48 h)",
        "",
        f"`benchmarks/progression.py`: trained on set A ({protocol['stays']['train']} train / "
        f"{protocol['stays']['validation']} validation stays), tested once on set B "
        f"({protocol['stays']['b']} stays); clinsight = {protocol['architecture']} (hidden "
        f"{protocol['hidden']}), early stopping on validation AUPRC, temperature on validation; "
        f"baselines on per-variable summaries; mean of {budget['seeds']} seed(s), budget "
        f"{budget['minutes_per_seed']} min per seed, {budget['threads']} thread(s), "
        f"{budget['bootstrap']} bootstrap replicates"
        + (" (reduced budget)." if budget["reduced"] else "."),
        "",
        "| model | AUROC mean; seed 0 (95 % CI) | AUPRC | Brier | ECE | train min |",
        "|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        run = mortality[name]
        seed0 = run["seeds"][0]
        cells = []
        for metric in RISK_METRICS:
            lo, hi = seed0["intervals"].get(metric, [None, None])
            value = seed0["values"][metric]
            interval = f"; seed 0 {value:.3f} ({lo:.3f}–{hi:.3f})" if lo is not None else ""
            cells.append(f"{run['mean'][metric]:.3f}{interval}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {run['train_minutes']:.2f} |")
    met = results["targets"]["met"]
    lines += [
        "",
        "Each cell: the mean over seeds; seed 0's value and its 95 % bootstrap interval over "
        "set-B stays. Targets (AUROC ≥ 0.87, "
        "AUPRC ≥ 0.55, ECE ≤ 0.03, above gradient boosting, ≤ 20 min per seed): "
        + ", ".join(f"{k} {'met' if v else 'missed'}" for k, v in met.items())
        + ".",
        f"Published (quoted, not measured here): {results['published']}.",
        "",
        f"Inference, one 48-h stay, one thread: eager {results['inference']['eager_per_s']:.0f}/s, "
        f"ONNX Runtime {results['inference']['onnxruntime_per_s']:.0f}/s.",
    ]
    return "\n".join(lines)


def _write_visit_part(part: str, results: dict[str, Any]) -> None:
    """Store one visit part beside the others, each with its own provenance (the
    PhysioNet part's provenance moves under ``physionet2012`` when first kept); a rerun
    keeps the earlier run's test figures under ``previous_run``."""
    document = read_results("progression")
    previous = document.pop("provenance", None)
    if "physionet2012" in document and "provenance" not in document["physionet2012"]:
        document["physionet2012"]["provenance"] = previous
    source, name = part.split(".", 1)
    parts = document.setdefault(source, {})
    earlier = parts.get(name)
    if earlier is not None:  # a rerun shows the test figures the earlier run had read
        results["previous_run"] = {
            "git_revision": earlier["provenance"]["git_revision"],
            "values": {name: m["values"] for name, m in earlier["models"].items()},
        }
    parts[name] = {**results, "provenance": provenance()}
    write_results("progression", document)
    update_readme_section(f"progression-{part}", progression_visits.readme_section(part, results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="physionet2012",
                        choices=("physionet2012", *progression_visits.PARTS))  # fmt: skip
    parser.add_argument(
        "--onset-task",
        default=progression_visits.PARTS["eunomia.onset"],
        help="the onset task file of the eunomia.onset part",
    )
    parser.add_argument(
        "--visit-minutes",
        type=float,
        default=8.0,
        help="training budget of the visit-sequence network (eunomia parts)",
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per seed")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--architecture", default="gru")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "clinsight-bench")
    args = parser.parse_args()
    if args.part != "physionet2012":
        args.minutes = args.visit_minutes
        _write_visit_part(args.part, progression_visits.run_part(args.part, args))
        return
    results = run(args)
    document = read_results("progression")
    document.pop("provenance", None)
    results["physionet2012"]["provenance"] = provenance()
    write_results("progression", {**document, **results})
    update_readme_section("progression", readme_section(results))


if __name__ == "__main__":
    main()
