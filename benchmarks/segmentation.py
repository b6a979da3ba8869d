"""Segmentation benchmark: Kvasir-SEG polyps, lung fields on adult chest radiographs, and
inference speed at 256 x 256.

- `kvasir_seg`: a fixed, seeded 800 / 100 split of the 900 frames here (the 100 test ids
  are stored in the results); 80 of the 800 are validation (epoch selection), the rest
  training; the network is trained for at most `--minutes` per seed and scored once on the
  100 test frames at their own resolution (Dice, IoU, HD95 in pixels, boundary precision).
  The published PraNet-split rows are quoted beside it, not measured here.
- `cxr_lungs`: left and right lung as one label, 5-fold image-disjoint cross-validation
  over the 44 radiographs (4 validation images carved from each training part, which pick
  the epoch). The recipe is fixed beforehand, not tuned on any fold: lungs are large,
  smooth structures, so 96-128 px is enough (`--cxr-size`, default 128); flips off (a
  mirrored chest is not a chest radiograph: the heart would sit on the right); batch 4
  (about 9 steps an epoch on 35 images); an epoch limit (`--cxr-epochs`) rather than a
  time budget, so a loaded machine does not cut training short.
- `inference`: images per second at 256 x 256 for ONNX Runtime and PyTorch eager on one
  thread, beside the single-thread SGEMM ceiling measured in the same run.

Run from the repository root: ``python benchmarks/segmentation.py --minutes 8 --seeds 0``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clinsight.config import get_settings
from clinsight.data.segmentation import (
    SegmentationCase,
    SegmentationDataset,
    kfold_ids,
    load_cxr_lungs,
    load_kvasir,
    read_case,
    seeded_split,
)
from clinsight.evaluation.segmentation import segmentation_report
from clinsight.imaging.segmentation import (
    PairArrays,
    SegmentationEpoch,
    predict_mask,
    prepare_pairs,
    train_segmentation_model,
)
from clinsight.imaging.segmentation_networks import (
    SegmentationNetworkConfig,
    build_segmentation_network,
)
from clinsight.imaging.specs import AugmentSpec, TrainConfig
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.registry.export import export_onnx
from common import read_results, update_readme_section, write_results
from imaging import _rate, sgemm_gflops  # the classification benchmark's timing and ceiling

PUBLISHED = [
    {"method": "U-Net", "dice": 0.818, "iou": 0.746},
    {"method": "U-Net++", "dice": 0.821, "iou": 0.743},
    {"method": "ResUNet++", "dice": 0.813, "iou": 0.793},
    {"method": "PraNet", "dice": 0.898, "iou": 0.840},
]
PUBLISHED_NOTE = (
    "quoted, not measured here: PraNet paper (Fan et al., MICCAI 2020), Kvasir-SEG 900/100 "
    "split, ImageNet-pretrained encoders trained on GPUs; a different test split"
)
TARGETS = {"kvasir_seg.mean.dice": 0.85, "kvasir_seg.mean.iou": 0.78, "cxr_lungs.mean.dice": 0.95}


def _pairs(dataset: SegmentationDataset, cases: tuple[SegmentationCase, ...],
           spec: PreprocessSpec) -> PairArrays:  # fmt: skip
    """Read and resize in chunks, so the full-size frames never sit in memory together."""
    parts = [prepare_pairs([read_case(dataset, c) for c in cases[i : i + 25]], spec)
             for i in range(0, len(cases), 25)]  # fmt: skip
    return PairArrays(
        tuple(i for p in parts for i in p.ids),
        np.concatenate([p.images for p in parts]), np.concatenate([p.masks for p in parts]),
    )  # fmt: skip


def _config(args: argparse.Namespace, seed: int, minutes: float, size: int) -> TrainConfig:
    return TrainConfig(
        architecture=args.architecture, width=args.width, epochs=args.max_epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, weight_decay=1e-4,
        dropout=0.0, patience=10, min_epochs=5, time_budget_minutes=minutes, seed=seed,
        threads=1,
    )  # fmt: skip


def _cxr_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        architecture=args.architecture, width=args.cxr_width, epochs=args.cxr_epochs,
        batch_size=args.cxr_batch_size, learning_rate=args.learning_rate, weight_decay=1e-4,
        dropout=0.0, patience=10, min_epochs=5, time_budget_minutes=args.cxr_minutes,
        seed=0, threads=1, augment=AugmentSpec(flip_prob=args.cxr_flip_prob),
    )  # fmt: skip


def _score(
    network: torch.nn.Module,
    dataset: SegmentationDataset,
    cases: tuple[SegmentationCase, ...],
    spec: PreprocessSpec,
) -> dict[str, Any]:
    predicted, truth = [], []
    for case in cases:
        sample = read_case(dataset, case)
        predicted.append(predict_mask(network, sample.image, spec))
        truth.append(sample.mask)
    report = segmentation_report(
        [c.case_id for c in cases], predicted, truth, dataset.labels, n_bootstrap=1000
    )
    return report.to_dict(with_images=False)


def _printer(what: str) -> Callable[[SegmentationEpoch, int], None]:
    def show(record: SegmentationEpoch, planned: int) -> None:
        print(f"{what} epoch {record.epoch}/{planned} val Dice {record.val_dice:.3f} "
              f"{record.seconds:.0f}s", flush=True)  # fmt: skip

    return show


def kvasir(args: argparse.Namespace) -> dict[str, Any]:
    """Seeded 800/100 split; train per seed within the budget; score the 100 test frames."""
    dataset = load_kvasir(Path(args.data) / "segmentation" / "kvasir-seg")
    outer = seeded_split(dataset.ids, val=80, test=100, seed=args.split_seed)
    spec = PreprocessSpec(args.size, 3)
    started = time.perf_counter()
    train = _pairs(dataset, dataset.subset(outer.train), spec)
    val = _pairs(dataset, dataset.subset(outer.val), spec)
    prepared = time.perf_counter() - started
    seeds: list[dict[str, Any]] = []
    for seed in args.seeds:
        net = SegmentationNetworkConfig(args.architecture, 3, 2, args.width, args.depth)
        result = train_segmentation_model(
            train, val, _config(args, seed, args.minutes, args.size), net, spec,
            progress=_printer(f"kvasir seed {seed}"),
        )  # fmt: skip
        test = _score(result.network, dataset, dataset.subset(outer.test), spec)
        seeds.append({
            "seed": seed, "epochs": result.epochs_run, "best_epoch": result.best_epoch,
            "train_minutes": result.seconds / 60, "stopped_because": result.stopped_because,
            "val_dice": result.best_val_dice, "test": test,
        })  # fmt: skip
        print(f"kvasir seed {seed}: test Dice {test['values']['dice']:.3f}", flush=True)
    mean = {m: statistics.fmean(s["test"]["values"][m] for s in seeds)
            for m in ("dice", "iou", "hd95", "boundary_precision")}  # fmt: skip
    return {
        "split": {"seed": args.split_seed, "train": len(outer.train), "val": len(outer.val),
                  "test": len(outer.test), "test_ids": list(outer.test)},
        "budget": {"minutes_per_seed": args.minutes, "seeds": list(args.seeds),
                   "full_budget": "30 minutes x 3 seeds", "reduced": args.minutes < 30
                   or len(args.seeds) < 3, "threads": 1, "prepare_seconds": prepared},
        "recipe": {"architecture": args.architecture, "width": args.width, "depth": args.depth,
                   "image_size": args.size, "batch_size": args.batch_size,
                   "learning_rate": args.learning_rate, "loss": "Dice + cross-entropy (MONAI)",
                   "pretrained": False, "evaluated_at": "each frame's own resolution"},
        "seeds": seeds, "mean": mean,
        "targets": {"dice": 0.85, "iou": 0.78,
                    "met": mean["dice"] >= 0.85 and mean["iou"] >= 0.78},
        "published": {"note": PUBLISHED_NOTE, "rows": PUBLISHED},
    }  # fmt: skip


def _cxr_summary(rows: list[dict[str, Any]], labels: tuple[str, ...],
                 args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    mean = {m: statistics.fmean(r["test"]["values"][m] for r in rows)
            for m in ("dice", "iou", "hd95", "boundary_precision")}  # fmt: skip
    return {
        "folds": rows, "mean": mean, "labels": list(labels),
        "folds_done": len(rows), "complete": len(rows) == 5,
        "budget": {"minutes_per_fold": args.cxr_minutes, "image_size": args.cxr_size,
                   "max_epochs": args.cxr_epochs},
        "recipe": {"architecture": args.architecture, "width": args.cxr_width,
                   "depth": args.depth, "image_size": args.cxr_size,
                   "batch_size": args.cxr_batch_size, "learning_rate": args.learning_rate,
                   "flip_prob": args.cxr_flip_prob, "loss": "Dice + cross-entropy (MONAI)",
                   "chosen": "beforehand, not tuned on any fold", "pretrained": False},
        "target": {"dice": 0.95, "met": len(rows) == 5 and mean["dice"] >= 0.95},
        "published": {"note": "quoted, not measured here: U-Net lung fields, Dice about "
                      "0.95-0.97 in the literature (other datasets)"},
    }  # fmt: skip


def cxr(
    args: argparse.Namespace, save: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """5-fold image-disjoint CV over the 44 radiographs, both lungs as one label; `save`
    gets the summary after each fold, so a run stopped early keeps the folds it finished."""
    dataset = load_cxr_lungs(Path(args.data) / "segmentation" / "covid19-cxr-segmentations")
    spec = PreprocessSpec(args.cxr_size, 1)
    folds = kfold_ids(dataset.ids, 5, seed=args.split_seed)
    every = _pairs(dataset, dataset.cases, spec)  # read once; folds index into it
    position = {case_id: i for i, case_id in enumerate(every.ids)}

    def pick(ids: tuple[str, ...]) -> PairArrays:
        rows = [position[i] for i in ids]
        return PairArrays(ids, every.images[rows], every.masks[rows])

    rows: list[dict[str, Any]] = []
    for index, test_ids in enumerate(folds):
        rest = [i for i in dataset.ids if i not in test_ids]
        inner = seeded_split(rest, val=4, seed=args.split_seed + index)
        train, val = pick(inner.train), pick(inner.val)
        net = SegmentationNetworkConfig(args.architecture, 1, 2, args.cxr_width, args.depth)
        result = train_segmentation_model(train, val, _cxr_config(args), net, spec,
                                          progress=_printer(f"cxr fold {index}"))  # fmt: skip
        test = _score(result.network, dataset, dataset.subset(test_ids), spec)
        rows.append({"fold": index, "test_ids": list(test_ids), "epochs": result.epochs_run,
                     "best_epoch": result.best_epoch, "val_dice": result.best_val_dice,
                     "stopped_because": result.stopped_because,
                     "train_minutes": result.seconds / 60, "test": test})  # fmt: skip
        print(f"cxr fold {index}: Dice {test['values']['dice']:.3f}", flush=True)
        if save is not None:
            save(_cxr_summary(rows, dataset.labels, args))
    return _cxr_summary(rows, dataset.labels, args)


def inference(args: argparse.Namespace) -> dict[str, Any]:
    """Images per second at 256 x 256, one thread: ONNX Runtime and PyTorch eager."""
    import onnxruntime as ort

    torch.set_num_threads(1)
    spec = PreprocessSpec(256, 3)
    config = SegmentationNetworkConfig(args.architecture, 3, 2, args.width, args.depth)
    network = build_segmentation_network(config).eval()
    ceiling = sgemm_gflops()
    x = np.random.default_rng(0).standard_normal((1, 3, 256, 256), dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(network, spec, path, spatial=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        onnx_rate = _rate(lambda: session.run(None, {"image": x}), 1, min_seconds=5.0)
    tensor = torch.from_numpy(x)
    with torch.inference_mode():
        torch_rate = _rate(lambda: network(tensor), 1, min_seconds=5.0)
    return {
        "image_size": 256, "batch": 1, "threads": 1, "network": config.to_dict(),
        "onnxruntime_images_per_s": onnx_rate, "torch_eager_images_per_s": torch_rate,
        "sgemm_gflops_one_thread": ceiling,
        "note": "a shared CPU: other jobs ran beside this one, so rates are lower bounds",
    }  # fmt: skip


def _table(results: dict[str, Any]) -> str:
    lines = ["## Segmentation", "",
             "`benchmarks/segmentation.py` (see its docstring). Reduced budget on a shared "
             "2-core CPU where noted; targets from issue 15.", "",
             "| part | figure | measured | target | met |", "|---|---|---|---|---|"]  # fmt: skip
    k, c = results.get("kvasir_seg"), results.get("cxr_lungs")
    if k:
        budget = k["budget"]
        note = f"{budget['minutes_per_seed']:g} min x {len(budget['seeds'])} seed(s)"
        for metric, target in (("dice", 0.85), ("iou", 0.78)):
            value = k["mean"][metric]
            lines.append(f"| kvasir_seg ({note}) | mean {metric} | {value:.3f} | >= {target} | "
                         f"{'yes' if value >= target else 'no'} |")  # fmt: skip
        lines.append(f"| kvasir_seg | mean HD95 (pixels) | {k['mean']['hd95']:.1f} | reported | |")
        lines.append(f"| kvasir_seg | mean boundary precision (2 px) | "
                     f"{k['mean']['boundary_precision']:.3f} | reported | |")  # fmt: skip
    if c:
        value = c["mean"]["dice"]
        budget = c["budget"]
        limit = (f"<= {budget['max_epochs']} epochs" if "max_epochs" in budget
                 else f"{budget['minutes_per_fold']:g} min")  # fmt: skip
        folds, met = c.get("folds_done", 5), c["target"]["met"]
        lines.append(
            f"| cxr_lungs ({folds} of 5 CV folds, {budget['image_size']} px, {limit}/fold) | "
            f"mean Dice | {value:.3f} | >= 0.95 | {'yes' if met else 'no'} |"
        )
    if results.get("inference"):
        i = results["inference"]
        lines.append(f"| inference 256x256, 1 thread | ONNX Runtime / PyTorch eager images/s | "
                     f"{i['onnxruntime_images_per_s']:.1f} / {i['torch_eager_images_per_s']:.1f}"
                     f" (SGEMM {i['sgemm_gflops_one_thread']:.0f} GFLOP/s) | | |")  # fmt: skip
    if c and "recipe" in c:
        r, b = c["recipe"], c["budget"]
        lines += ["", f"CXR lungs recipe: {r['architecture']} width {r['width']} depth "
                  f"{r['depth']} at {r['image_size']}x{r['image_size']}, flip probability "
                  f"{r['flip_prob']:g}, batch {r['batch_size']}, at most {b['max_epochs']} "
                  "epochs per fold (the epoch picked on 4 validation images of the fold's "
                  f"training part), {c.get('folds_done', 5)} of 5 folds; chosen {r['chosen']}. "
                  "Per-fold test Dice: " + ", ".join(
                      f"{f['test']['values']['dice']:.3f}" for f in c["folds"]) + "."]  # fmt: skip
    earlier = [p for p in ("kvasir_seg", "inference") if results.get(p, {}).get("from_run")]
    if earlier:
        lines += ["", f"Not re-run in the latest run ({', '.join(earlier)}): those rows "
                  "come from the earlier run named in their `from_run` results entry."]  # fmt: skip
    if k:
        recipe, epochs = k["recipe"], [s["epochs"] for s in k["seeds"]]
        lines += ["", f"Kvasir recipe: {recipe['architecture']} width {recipe['width']} at "
                  f"{recipe['image_size']}x{recipe['image_size']}, {epochs} epoch(s) in the "
                  "budget (one thread; the CPU was shared with other jobs), scored at each "
                  "frame's own resolution on the 100 test frames."]  # fmt: skip
    if k:
        lines += ["", "Published Kvasir-SEG rows (" + PUBLISHED_NOTE + "):", "",
                  "| method | Dice | IoU |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {r['method']} | {r['dice']:.3f} | {r['iou']:.3f} |" for r in PUBLISHED]
    return "\n".join(lines)


def main() -> None:
    """Run the chosen parts, merge them into the results file and the README table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["kvasir_seg", "cxr_lungs", "inference"])
    parser.add_argument("--minutes", type=float, default=30.0, help="Kvasir budget per seed.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cxr-minutes", type=float, default=60.0, help="Budget per CV fold.")
    parser.add_argument("--cxr-epochs", type=int, default=60)
    parser.add_argument("--cxr-width", type=int, default=16)
    parser.add_argument("--cxr-batch-size", type=int, default=4)
    parser.add_argument("--cxr-flip-prob", type=float, default=0.0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--cxr-size", type=int, default=128)
    parser.add_argument("--architecture", default="unet")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--data", default=str(get_settings().resolved_data_dir))
    args = parser.parse_args()
    results = read_results("segmentation")
    results.pop("provenance", None)
    runners = {"kvasir_seg": kvasir, "cxr_lungs": cxr, "inference": inference}

    def save_cxr(summary: dict[str, Any]) -> None:
        results["cxr_lungs"] = summary
        write_results("segmentation", results)

    for part in args.parts:
        results[part] = cxr(args, save_cxr) if part == "cxr_lungs" else runners[part](args)
        write_results("segmentation", results)
    flat = {
        "kvasir_seg.mean.dice": results.get("kvasir_seg", {}).get("mean", {}).get("dice"),
        "kvasir_seg.mean.iou": results.get("kvasir_seg", {}).get("mean", {}).get("iou"),
        "cxr_lungs.mean.dice": results.get("cxr_lungs", {}).get("mean", {}).get("dice"),
    }
    complete = {"cxr_lungs.mean.dice": results.get("cxr_lungs", {}).get("complete", True)}
    results["targets"] = {k: {"target": t, "measured": flat[k],
                              "met": flat[k] is not None and flat[k] >= t
                              and complete.get(k, True)}
                          for k, t in TARGETS.items()}  # fmt: skip
    write_results("segmentation", results)
    update_readme_section("segmentation", _table(results))


if __name__ == "__main__":
    main()
