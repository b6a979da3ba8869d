"""Scale-out figures: batch inference images/s, local and on Ray with 1 and 2 workers.

The same `--images` PneumoniaMNIST training-split images (never the test split; no label is
read) are written as PNG files to a temporary folder and predicted by `predict_batch` with
the default architecture (resnet18, width 24, 28 px; the weights are untrained, since speed
does not depend on them). Local runs: one process with 1 ONNX Runtime thread and with every
core (the best of them is the "local best"); Ray runs: a local Ray instance of 2 CPUs,
with 1 and with 2 actors. Each figure is the whole run (model load and actor start
included) and the steady rate after the first result batch. The load average is recorded:
on a shared machine the figures are depressed and the speedup understated.

    python benchmarks/scale.py --images 2000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clinsight.config import Settings
from clinsight.data.medmnist import Split, TaskType, load_medmnist
from clinsight.files import sha256_file
from clinsight.imaging.networks import NetworkConfig, build_network
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.inference.cluster import ray_session
from clinsight.registry.image import register_model
from clinsight.services.batch_predict import predict_batch
from common import update_readme_section, write_results


def _write_images(data_dir: Path, folder: Path, count: int) -> int:
    images, _ = load_medmnist(data_dir, "pneumoniamnist", 28).split(Split.TRAIN)
    for index, pixels in enumerate(images[:count]):
        Image.fromarray(np.asarray(pixels, dtype=np.uint8).squeeze()).save(
            folder / f"{index:05d}.png"
        )
    return min(count, len(images))


def _register(registry: Path, data_dir: Path) -> None:
    config = NetworkConfig("resnet18", 1, 2, width=24)
    register_model(
        registry, name="scale", network=build_network(config).eval(), network_config=config,
        preprocess=PreprocessSpec(image_size=28, channels=1), labels=["normal", "pneumonia"],
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--data-dir", type=Path, default=Settings().resolved_data_dir)
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        count = _write_images(args.data_dir, root / "in", args.images)
        _register(root / "reg", args.data_dir)
        out = root / "out.parquet"
        runs["local_1_thread"] = _run(root / "in", root / "reg", out, threads=1)
        runs["local_all_cores"] = _run(root / "in", root / "reg", out, threads=0)
        with ray_session(None, num_cpus=2, object_store_mb=256):
            for workers in (1, 2):
                runs[f"ray_{workers}_workers"] = _run(
                    root / "in", root / "reg", out, backend="ray", workers=workers
                )
    ray_batch = summary(runs, count, load_before)
    path = write_results("scale", {"ray_batch": ray_batch, "budget": {"images": count}})
    update_readme_section("scale", _table(ray_batch))
    print(path)


def summary(runs: dict[str, Any], count: int, load_before: tuple[float, ...]) -> dict[str, Any]:
    """The headline figures from the runs: whole-run rates (model load and actor start
    included). The steady rate (after the first result batch) is kept per run as a
    diagnostic only: Ray Data hands results back in bursts, so for Ray it overstates."""
    rate = "images_per_second"
    local_best = max(runs["local_1_thread"][rate], runs["local_all_cores"][rate])
    return {
        "images": count, "model": "resnet18 width 24, 28 px (untrained), batch 64", "runs": runs,
        "rate": "whole run (model load and actor start included)",
        "local_best_images_per_second": local_best,
        "speedup_2_workers": round(runs["ray_2_workers"][rate] / runs["ray_1_workers"][rate], 2),
        "ray_2_workers_vs_local_best": round(runs["ray_2_workers"][rate] / local_best, 2),
        "targets": {"speedup_2_workers": 1.7, "ray_2_workers_vs_local_best": 0.9},
        "load_average_before": list(load_before), "cores": os.cpu_count(),
        "shared_machine": load_before[0] > 1.0,
    }  # fmt: skip


def _table(result: dict[str, Any]) -> str:
    lines = [
        "## Scale-out: batch inference on Ray",
        "",
        "`python benchmarks/scale.py --images 2000` (`ray_batch`; `ray_tune` not measured yet).",
        f"Batch inference over {result['images']} PNGs ({result['model']}); load average "
        f"{result['load_average_before'][0]:.1f} on {result['cores']} cores at the start "
        f"({'shared machine: figures depressed' if result['shared_machine'] else 'quiet'}).",
        "",
        "| run | images/s (whole run) | after the first batch (diagnostic; bursty on Ray) |",
        "|---|---|---|",
    ]
    for name, run in result["runs"].items():
        lines.append(f"| {name} | {run['images_per_second']} | {run['steady_images_per_second']} |")
    lines += [
        "",
        f"`ray_batch.speedup_2_workers` {result['speedup_2_workers']} (target >= 1.7); Ray 2 "
        f"workers / local best {result['ray_2_workers_vs_local_best']} (target >= 0.9).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
