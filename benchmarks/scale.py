"""Scale-out figures: batch inference on Ray (`ray_batch`) and a Ray Tune search (`ray_tune`).

`ray_batch`: the same `--images` PneumoniaMNIST training-split images (never the test split;
no label is read) are written as PNG files of `--size` pixels (default 128; at 28 px the
work per image, about 1.4 ms, is smaller than Ray's start-up, which then dominates any
figure) to a temporary folder and predicted by `predict_batch` with the default
architecture (resnet18, width 24; the weights are untrained, since speed does not depend
on them). Local runs: one process with 1 ONNX Runtime thread and with every
core (the best of them is the "local best"); Ray runs: a local Ray instance of 2 CPUs,
with 1 and with 2 actors. Each figure is the whole run (model load and actor start
included) and the steady rate after the first result batch. The load average is recorded:
on a shared machine the figures are depressed and the speedup understated.

`ray_tune`: for Pima and Cleveland, a stratified quarter of the rows is set aside as a test
part (read once, at the end). On the rest, the default risk recipe (`train_risk_model`: the
default candidates compared by 5-fold x 3 repeated CV) and a Ray Tune ASHA search
(`tune_risk`: sampled families and regularisation, ASHA over the CV repeats, the same
folds) each pick a model by validation (out-of-fold) AUC; both chosen models are then scored
on the test part. Trials run, trials ASHA stopped, and CV fits are recorded.

`replicas`: two `clinsight serve` replicas (1 worker, 1 thread each) on one PostgreSQL
schema behind HAProxy (the replica test's set-up, `tests/support/replicas.py`, with its tiny
registered model, so the figures are the service path's, not a network's): diagnoses per
second through a proxy over one replica, then over both (on 2 cores the ratio shows
overhead, not scaling), then replica 0 killed with SIGKILL mid-load: acknowledged
predictions missing from the database (`replicas.lost`) and the audit chain's check.

    python benchmarks/scale.py --part ray_batch --images 2000
    python benchmarks/scale.py --part ray_tune --trials 16
    python benchmarks/scale.py --part replicas --seconds 20
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from clinsight.config import Settings
from clinsight.data.medmnist import Split, TaskType, load_medmnist
from clinsight.data.tabular import TabularDataset, load_pima, load_uci_heart
from clinsight.files import sha256_file
from clinsight.imaging.networks import NetworkConfig, build_network
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.inference.cluster import ray_session
from clinsight.registry.image import register_model
from clinsight.services.batch_predict import predict_batch
from clinsight.services.risk_training import RiskTrainingOutcome, train_risk_model
from clinsight.services.tuning import SearchSettings, tune_risk
from common import provenance, read_results, update_readme_section, write_results

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("ray_batch", "ray_tune", "replicas")


def _write_images(data_dir: Path, folder: Path, count: int, size: int) -> int:
    images, _ = load_medmnist(data_dir, "pneumoniamnist", 28).split(Split.TRAIN)
    for index, pixels in enumerate(images[:count]):
        image = Image.fromarray(np.asarray(pixels, dtype=np.uint8).squeeze())
        image.resize((size, size), Image.Resampling.BILINEAR).save(folder / f"{index:05d}.png")
    return min(count, len(images))


def _register(registry: Path, data_dir: Path, size: int) -> None:
    config = NetworkConfig("resnet18", 1, 2, width=24)
    register_model(
        registry, name="scale", network=build_network(config).eval(), network_config=config,
        preprocess=PreprocessSpec(image_size=size, channels=1), labels=["normal", "pneumonia"],
        task=TaskType.BINARY, positive_index=1, temperature=1.0,
        metrics={}, training={"dataset": "pneumoniamnist", "note": "untrained, speed only",
                  "data_sha256": sha256_file(data_dir / "medmnist" / "pneumoniamnist.npz")},
    )  # fmt: skip


def _run(folder: Path, registry: Path, out: Path, **options: Any) -> dict[str, Any]:
    stamps: list[tuple[float, int]] = []
    outcome = predict_batch(
        folder, out, registry_dir=registry, model_name="scale", batch_size=64,
        progress=lambda done, total: stamps.append((time.perf_counter(), done)), **options,
    )  # fmt: skip
    first_t, first_n = stamps[0]
    last_t, last_n = stamps[-1]
    steady = (last_n - first_n) / (last_t - first_t) if last_t > first_t else None
    out.unlink()
    return {
        "images": outcome.predicted, "seconds": round(outcome.seconds, 2),
        "images_per_second": round(outcome.predicted / outcome.seconds, 1),
        "steady_images_per_second": None if steady is None else round(steady, 1),
        "load_average_after": os.getloadavg()[0],
    }  # fmt: skip


def ray_batch(data_dir: Path, images: int, size: int) -> dict[str, Any]:
    """Batch inference over `images` PNGs: local with 1 thread and all cores, Ray 1 and 2."""
    load_before = os.getloadavg()
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        count = _write_images(data_dir, root / "in", images, size)
        _register(root / "reg", data_dir, size)
        out = root / "out.parquet"
        runs["local_1_thread"] = _run(root / "in", root / "reg", out, threads=1)
        runs["local_all_cores"] = _run(root / "in", root / "reg", out, threads=0)
        with ray_session(None, num_cpus=2, object_store_mb=256):
            for workers in (1, 2):
                runs[f"ray_{workers}_workers"] = _run(
                    root / "in", root / "reg", out, backend="ray", workers=workers
                )
    return summary(runs, count, load_before, size)


def _test_auc(model: Any, part: TabularDataset) -> float:
    return round(float(roc_auc_score(part.y.to_numpy(), model.predict_proba(part.X)[:, 1])), 4)


def _tune_one(dataset: TabularDataset, trials: int, seed: int, root: Path) -> dict[str, Any]:
    dev, test = _split(dataset, seed)
    started = time.perf_counter()
    default = train_risk_model(dev, registry_dir=root / "reg", name="default", seed=seed)
    default_seconds = time.perf_counter() - started
    search = SearchSettings(trials=trials, workers=2, seed=seed, object_store_mb=256)
    tuned = tune_risk(dev, registry_dir=root / "reg", name="tuned", storage=root / "tune",
                      search=search)  # fmt: skip
    assert isinstance(tuned.registered, RiskTrainingOutcome)
    n_repeats, n_splits = 3, 5
    chosen = default.selection.best
    return {
        "rows": {"development": len(dev.y), "test": len(test.y)},
        "default": {
            "chosen": chosen.name, "val_auc": round(chosen.auc_mean, 4),
            "test_auc": _test_auc(default.selection.model, test),
            "cv_fits": len(default.selection.scores) * n_splits * n_repeats,
            "seconds": round(default_seconds, 1),
        },
        "tuned": {
            "chosen": tuned.best.config, "val_auc": round(tuned.best.val_auc, 4),
            "test_auc": _test_auc(tuned.registered.selection.model, test),
            "trials": len(tuned.trials), "stopped_by_asha": tuned.stopped_early,
            "cv_fits": sum(t.steps for t in tuned.trials) * n_splits,
            "search_seconds": round(tuned.search_seconds, 1),
        },
        "tuned_val_minus_default_val": round(tuned.best.val_auc - chosen.auc_mean, 4),
    }  # fmt: skip


def _split(dataset: TabularDataset, seed: int) -> tuple[TabularDataset, TabularDataset]:
    """A stratified 75 / 25 development / test split of the rows."""
    dev_idx, test_idx = train_test_split(
        np.arange(len(dataset.y)), test_size=0.25, stratify=dataset.y, random_state=seed
    )

    def part(index: np.ndarray) -> TabularDataset:
        return replace(dataset, X=dataset.X.iloc[index].reset_index(drop=True),
                       y=dataset.y.iloc[index].reset_index(drop=True))  # fmt: skip

    return part(dev_idx), part(test_idx)


def ray_tune(data_dir: Path, trials: int, seed: int, names: list[str]) -> dict[str, Any]:
    """The default risk recipe against an ASHA search, on Pima and / or Cleveland."""
    load_before = os.getloadavg()
    loaders = {"pima": lambda: load_pima(data_dir),
               "cleveland": lambda: load_uci_heart("cleveland", data_dir)}  # fmt: skip
    datasets = {name: loaders[name]() for name in names}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, dataset in datasets.items():
            results[name] = _tune_one(dataset, trials, seed, Path(tmp) / name)
    return {
        "datasets": results, "trials": trials, "seed": seed, "scheduler": "ASHA",
        "selection": "validation (out-of-fold AUC, 5-fold x 3 repeats) only; test read once",
        "target": "tuned val_auc >= default val_auc",
        "met": all(r["tuned_val_minus_default_val"] >= 0 for r in results.values()),
        "load_average_before": list(load_before), "cores": os.cpu_count(),
    }  # fmt: skip


def _phase(cluster: Any, backends: list[int], clients: int, seconds: float) -> dict[str, Any]:
    from tests.support.replicas import Load, token

    base = cluster.proxy(backends)
    load = Load(base, cluster.patient_id, token(base))
    load.start(clients)
    time.sleep(seconds)
    load.finish()
    latencies = np.asarray(load.latencies) * 1000
    return {
        "replicas": len(backends), "clients": clients, "seconds": seconds,
        "acknowledged": len(load.acked), "errors": load.errors,
        "per_second": round(len(load.acked) / seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1), "acked": load.acked,
    }  # fmt: skip


def replicas(clients: int, seconds: float) -> dict[str, Any]:
    """Throughput through the proxy with 1 and 2 replicas, then the kill test."""
    sys.path.insert(0, str(ROOT))  # the replica set-up lives with the tests' support code
    from tests.support.replicas import Load, check_durability, fresh_schema, running_cluster
    from tests.support.replicas import token as login
    from tests.support.store import POSTGRES_URL

    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_schema(POSTGRES_URL) as url,
        running_cluster(Path(tmp), url, replicas=2) as cluster,
    ):
        one = _phase(cluster, [0], clients, seconds)
        two = _phase(cluster, [0, 1], clients, seconds)
        base = cluster.proxy([0, 1])
        load = Load(base, cluster.patient_id, login(base))
        load.start(clients)
        time.sleep(seconds / 2)
        cluster.kill(0)
        killed_at = len(load.acked)
        time.sleep(seconds / 2)
        load.finish()
        survivor_ready = cluster_ready(base)
        acked = one.pop("acked") + two.pop("acked") + load.acked
        durability = check_durability(url, acked)
    return {
        "one_replica": one, "two_replicas": two,
        "ratio_two_over_one": round(two["per_second"] / one["per_second"], 2),
        "kill": {"acknowledged": len(load.acked), "after_kill": len(load.acked) - killed_at,
                 "errors": load.errors, "survivor_ready": survivor_ready},
        "lost": len(durability.lost), "audit_chain_ok": durability.audit_ok,
        "stored_predictions": durability.stored, "target": {"lost": 0},
        "model": "the replica test's tiny registered model (service path, not a network)",
        "load_average_before": list(load_before), "cores": os.cpu_count(),
    }  # fmt: skip


def cluster_ready(base: str) -> bool:
    """Whether the proxy still answers `/ready` with 200."""
    import httpx

    try:
        return httpx.get(f"{base}/ready", verify=False, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=PARTS, action="append")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--datasets", nargs="+", choices=("pima", "cleveland"),
                        default=["pima", "cleveland"], help="ray_tune: data sets")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=8, help="replicas: client threads")
    parser.add_argument("--seconds", type=float, default=20, help="replicas: per phase")
    parser.add_argument("--data-dir", type=Path, default=Settings().resolved_data_dir)
    args = parser.parse_args()
    parts = args.part or list(PARTS)
    results = read_results("scale")
    results.pop("provenance", None)
    if "ray_batch" in parts:
        results["ray_batch"] = ray_batch(args.data_dir, args.images, args.size)
        results["ray_batch"]["provenance"] = provenance()
        results.pop("budget", None)
    if "ray_tune" in parts:
        results["ray_tune"] = ray_tune(args.data_dir, args.trials, args.seed, args.datasets)
        results["ray_tune"]["provenance"] = provenance()
    if "replicas" in parts:
        results["replicas"] = replicas(args.clients, args.seconds)
        results["replicas"]["provenance"] = provenance()
    path = write_results("scale", results)
    update_readme_section("scale", _table(results))
    print(path)


def summary(
    runs: dict[str, Any], count: int, load_before: tuple[float, ...], size: int
) -> dict[str, Any]:
    """The headline figures from the runs: whole-run rates (model load and actor start
    included). The steady rate (after the first result batch) is kept per run as a
    diagnostic only: Ray Data hands results back in bursts, so for Ray it overstates."""
    rate = "images_per_second"
    local_best = max(runs["local_1_thread"][rate], runs["local_all_cores"][rate])
    return {
        "images": count, "model": f"resnet18 width 24, {size} px (untrained), batch 64",
        "runs": runs,
        "rate": "whole run (model load and actor start included)",
        "local_best_images_per_second": local_best,
        "speedup_2_workers": round(runs["ray_2_workers"][rate] / runs["ray_1_workers"][rate], 2),
        "ray_2_workers_vs_local_best": round(runs["ray_2_workers"][rate] / local_best, 2),
        "targets": {"speedup_2_workers": 1.7, "ray_2_workers_vs_local_best": 0.9},
        "load_average_before": list(load_before), "cores": os.cpu_count(),
        "shared_machine": load_before[0] > 1.0,
    }  # fmt: skip


def _load_word(result: dict[str, Any]) -> str:
    return "shared machine: figures depressed" if result["shared_machine"] else "quiet"


def _replicas_table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"`replicas`: {result['model']}; {result['one_replica']['clients']} clients through "
        f"HAProxy, {result['one_replica']['seconds']} s per phase; load average "
        f"{result['load_average_before'][0]:.1f} on {result['cores']} cores at the start.",
        "",
        "| replicas | predictions/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|",
    ]
    for row in (result["one_replica"], result["two_replicas"]):
        lines.append(f"| {row['replicas']} | {row['per_second']} | {row['p50_ms']} | "
                     f"{row['p99_ms']} | {row['errors']} |")  # fmt: skip
    kill = result["kill"]
    return [
        *lines,
        "",
        f"2 / 1 replicas: {result['ratio_two_over_one']} (2 cores: overhead, not scaling). "
        f"Kill test: replica 0 SIGKILLed mid-load, {kill['acknowledged']} acknowledged "
        f"({kill['after_kill']} after the kill, {kill['errors']} failed requests); "
        f"`replicas.lost` = {result['lost']} (target 0); audit chain "
        f"{'verifies' if result['audit_chain_ok'] else 'BROKEN'}; survivor ready "
        f"{kill['survivor_ready']}.",
    ]


def _batch_table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"`ray_batch`: batch inference over {result['images']} PNGs ({result['model']}); "
        f"load average {result['load_average_before'][0]:.1f} on {result['cores']} cores at "
        f"the start ({_load_word(result)}).",
        "",
        "| run | images/s (whole run) | after the first batch (diagnostic; bursty on Ray) |",
        "|---|---|---|",
    ]
    for name, run in result["runs"].items():
        lines.append(f"| {name} | {run['images_per_second']} | {run['steady_images_per_second']} |")
    return [
        *lines,
        "",
        f"`ray_batch.speedup_2_workers` {result['speedup_2_workers']} (target >= 1.7); Ray 2 "
        f"workers / local best {result['ray_2_workers_vs_local_best']} (target >= 0.9).",
    ]


def _tune_table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"`ray_tune`: the default risk recipe against a Ray Tune ASHA search of "
        f"{result['trials']} trials (seed {result['seed']}); {result['selection']}; load "
        f"average {result['load_average_before'][0]:.1f} at the start.",
        "",
        "| dataset | recipe | chosen | val AUC | test AUC | CV fits | trials (stopped by ASHA) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in result["datasets"].items():
        default, tuned = row["default"], row["tuned"]
        lines.append(f"| {name} | default | {default['chosen']} | {default['val_auc']} | "
                     f"{default['test_auc']} | {default['cv_fits']} | |")  # fmt: skip
        lines.append(f"| {name} | ASHA search | {tuned['chosen']['family']} | "
                     f"{tuned['val_auc']} | {tuned['test_auc']} | {tuned['cv_fits']} | "
                     f"{tuned['trials']} ({tuned['stopped_by_asha']}) |")  # fmt: skip
    verdict = "met" if result["met"] else "MISSED"
    return [*lines, "", f"Tuned validation AUC >= the default's on every dataset: {verdict}."]


def _table(results: dict[str, Any]) -> str:
    lines = ["## Scale-out: batch inference and tuning on Ray, replicas", ""]
    lines.append("`python benchmarks/scale.py --part ray_batch|ray_tune|replicas` (each part "
                 "keeps its own provenance in `results/scale.json`).")  # fmt: skip
    renderers = (("ray_batch", _batch_table), ("ray_tune", _tune_table),
                 ("replicas", _replicas_table))  # fmt: skip
    for key, render in renderers:
        if key in results:
            lines += ["", *render(results[key])]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
