"""Segmentation benchmark: Kvasir-SEG polyps, lung fields on adult chest radiographs, and
inference speed at 256 x 256.

- `kvasir_seg`: a fixed, seeded 800 / 100 split of the 900 frames here (the 100 test ids
  are stored in the results); 80 of the 800 are validation (epoch selection), the rest
  training; the network is trained for at most `--minutes` per seed and scored once on the
  100 test frames at their own resolution (Dice, IoU, HD95 in pixels, boundary precision).
  The published PraNet-split rows are quoted beside it, not measured here.
- `cxr_lungs_recipe`: the lung recipe is chosen on fold 0's training part only (its 35
  images split, seeded, into 23 training, 4 epoch-picking and 8 selection images): each
  `--cxr-candidates` recipe (input size, width, epoch limit) is trained there and its 8
  selection images scored at their own resolution, with and without `keep_largest` (the two
  largest lung pieces, holes filled). No CV test image of fold 0 is read; the selection
  images are test images of folds 1-4, so only fold 0's figure is untouched by the choice.
- `cxr_lungs`: left and right lung as one label, 5-fold image-disjoint cross-validation
  over the 44 radiographs (4 validation images carved from each training part, which pick
  the epoch), with the recipe of `--cxr-size`, `--cxr-width`, `--cxr-epochs` and
  `--cxr-cleanup` (recorded as chosen by `cxr_lungs_recipe` when it matches its pick).
  Flips off (a mirrored chest is not a chest radiograph: the heart would sit on the right);
  the affine and intensity augmentation of `AugmentSpec`; batch 4; an epoch limit rather
  than a time budget, so a loaded machine does not cut training short. Scored at each
  radiograph's own resolution. Each held-out image's predicted lungs are kept in
  `LUNG_MASKS` (git-ignored) for the next part.
- `gradcam_in_lung_share`: the chest classifier of `explanation.py` (its small
  PneumoniaMNIST model, trained there if absent) on the 44 radiographs: the share of each
  Grad-CAM map inside the lungs predicted by the fold model that held the image out, beside
  the same figure with the radiologists' lungs (`explanation.gradcam_in_lung_share`).
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

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
from clinsight.imaging.mask_cleanup import keep_largest
from clinsight.imaging.segmentation import (
    PairArrays,
    SegmentationEpoch,
    SegmentationTrainResult,
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
from clinsight.tabular.models import limit_threads
from common import provenance, read_results, update_readme_section, write_results
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
LUNG_MASKS = Path(__file__).resolve().parent / "runs" / "segmentation" / "cxr_lungs_cv_masks.npz"
"""Each radiograph's lungs as predicted by the CV fold model that held it out (git-ignored)."""
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


@dataclass(frozen=True)
class CxrRecipe:
    """What the lung recipe varies: network input size, width, epoch limit, clean-up."""

    size: int
    width: int
    epochs: int
    cleanup: bool = False

    @classmethod
    def parse(cls, text: str) -> CxrRecipe:
        """``SIZE:WIDTH:EPOCHS`` (a candidate of `--cxr-candidates`)."""
        size, width, epochs = (int(v) for v in text.split(":"))
        return cls(size, width, epochs)

    def name(self) -> str:
        """Short label, e.g. ``128px w16 40ep +cleanup``."""
        return (f"{self.size}px w{self.width} {self.epochs}ep"
                + (" +cleanup" if self.cleanup else ""))  # fmt: skip


def _cxr_config(args: argparse.Namespace, recipe: CxrRecipe) -> TrainConfig:
    return TrainConfig(
        architecture=args.architecture, width=recipe.width, epochs=recipe.epochs,
        batch_size=args.cxr_batch_size, learning_rate=args.learning_rate, weight_decay=1e-4,
        dropout=0.0, patience=10, min_epochs=5, time_budget_minutes=args.cxr_minutes,
        seed=0, threads=1, augment=AugmentSpec(flip_prob=args.cxr_flip_prob),
    )  # fmt: skip


def _predicted(
    network: torch.nn.Module,
    dataset: SegmentationDataset,
    cases: tuple[SegmentationCase, ...],
    spec: PreprocessSpec,
    cleanup: bool = False,
) -> tuple[list[NDArray[np.uint8]], list[NDArray[np.uint8]]]:
    """Predicted and expert masks at each image's own resolution (`keep_largest` applied
    to the prediction when `cleanup`: both lungs, holes filled)."""
    predicted, truth = [], []
    for case in cases:
        sample = read_case(dataset, case)
        mask = predict_mask(network, sample.image, spec)
        predicted.append(keep_largest(mask, 2) if cleanup else mask)
        truth.append(sample.mask)
    return predicted, truth


def _report(cases: tuple[SegmentationCase, ...], predicted: list[NDArray[np.uint8]],
            truth: list[NDArray[np.uint8]], labels: tuple[str, ...]) -> dict[str, Any]:  # fmt: skip
    report = segmentation_report(
        [c.case_id for c in cases], predicted, truth, labels, n_bootstrap=1000
    )
    return report.to_dict(with_images=False)


def _score(
    network: torch.nn.Module,
    dataset: SegmentationDataset,
    cases: tuple[SegmentationCase, ...],
    spec: PreprocessSpec,
) -> dict[str, Any]:
    return _report(cases, *_predicted(network, dataset, cases, spec), dataset.labels)


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


def _cxr_recipe(args: argparse.Namespace) -> CxrRecipe:
    return CxrRecipe(args.cxr_size, args.cxr_width, args.cxr_epochs, args.cxr_cleanup)


def _cxr_summary(rows: list[dict[str, Any]], labels: tuple[str, ...],
                 args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    mean = {m: statistics.fmean(r["test"]["values"][m] for r in rows)
            for m in ("dice", "iou", "hd95", "boundary_precision")}  # fmt: skip
    recipe = _cxr_recipe(args)
    return {
        "folds": rows, "mean": mean, "labels": list(labels),
        "folds_done": len(rows), "complete": len(rows) == 5,
        "budget": {"minutes_per_fold": args.cxr_minutes, "image_size": recipe.size,
                   "max_epochs": recipe.epochs},
        "recipe": {"architecture": args.architecture, "width": recipe.width,
                   "depth": args.depth, "image_size": recipe.size,
                   "batch_size": args.cxr_batch_size, "learning_rate": args.learning_rate,
                   "flip_prob": args.cxr_flip_prob, "loss": "Dice + cross-entropy (MONAI)",
                   "augment": "affine (rotation 15 deg, scale 0.15, shift 0.1) + contrast, "
                   "intensity, noise (AugmentSpec defaults, flips off)",
                   "cleanup": "two largest components, holes filled" if recipe.cleanup
                   else "none", "chosen": "beforehand, not tuned on any fold",
                   "pretrained": False,
                   "evaluated_at": "each radiograph's own resolution"},
        "target": {"dice": 0.95, "met": len(rows) == 5 and mean["dice"] >= 0.95},
        "published": {"note": "quoted, not measured here: U-Net lung fields, Dice about "
                      "0.95-0.97 in the literature (other datasets)"},
    }  # fmt: skip


class _CxrData:
    """The 44 radiographs, read once per network size; folds index into them."""

    def __init__(self, args: argparse.Namespace) -> None:
        root = Path(args.data) / "segmentation" / "covid19-cxr-segmentations"
        self.dataset = load_cxr_lungs(root)
        self.folds = kfold_ids(self.dataset.ids, 5, seed=args.split_seed)
        self._sized: dict[int, PairArrays] = {}

    def pick(self, ids: tuple[str, ...], size: int) -> PairArrays:
        if size not in self._sized:
            self._sized[size] = _pairs(self.dataset, self.dataset.cases, PreprocessSpec(size, 1))
        every = self._sized[size]
        rows = [every.ids.index(i) for i in ids]
        return PairArrays(ids, every.images[rows], every.masks[rows])

    def train(self, args: argparse.Namespace, recipe: CxrRecipe, train: tuple[str, ...],
              val: tuple[str, ...], what: str) -> SegmentationTrainResult:  # fmt: skip
        net = SegmentationNetworkConfig(args.architecture, 1, 2, recipe.width, args.depth)
        return train_segmentation_model(
            self.pick(train, recipe.size), self.pick(val, recipe.size),
            _cxr_config(args, recipe), net, PreprocessSpec(recipe.size, 1),
            progress=_printer(what),
        )  # fmt: skip


def cxr_recipe(
    args: argparse.Namespace, save: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Choose the lung recipe on fold 0's training part only: its 35 images split into 23
    training, 4 epoch-picking and 8 selection images (seeded); each candidate of
    `--cxr-candidates` is trained there and its 8 selection images scored at their own
    resolution, with and without `keep_largest`. The CV folds' test images are never read."""
    data = _CxrData(args)
    rest = [i for i in data.dataset.ids if i not in data.folds[0]]
    inner = seeded_split(rest, val=4, test=8, seed=args.split_seed + 100)
    cases = data.dataset.subset(inner.test)
    rows: list[dict[str, Any]] = []

    def summary() -> dict[str, Any]:
        best = max(rows, key=lambda r: r["dice"])
        return {"inner_split": {"of": "fold 0's training part", "train": list(inner.train),
                                "epoch_val": list(inner.val), "selection": list(inner.test)},
                "candidates": rows, "chosen": best["recipe"], "chosen_name": best["name"],
                "scored_at": "each radiograph's own resolution"}  # fmt: skip

    for text in args.cxr_candidates:
        recipe = CxrRecipe.parse(text)
        result = data.train(args, recipe, inner.train, inner.val, f"recipe {recipe.name()}")
        spec = PreprocessSpec(recipe.size, 1)
        for cleanup in (False, True):
            scored = _report(cases, *_predicted(result.network, data.dataset, cases, spec,
                                                cleanup), data.dataset.labels)  # fmt: skip
            rows.append({"recipe": asdict(CxrRecipe(recipe.size, recipe.width, recipe.epochs,
                                                    cleanup)),
                         "name": CxrRecipe(recipe.size, recipe.width, recipe.epochs,
                                           cleanup).name(),
                         "epochs": result.epochs_run, "best_epoch": result.best_epoch,
                         "train_minutes": result.seconds / 60,
                         "dice": scored["values"]["dice"],
                         "hd95": scored["values"]["hd95"]})  # fmt: skip
            print(f"recipe {rows[-1]['name']}: selection Dice {rows[-1]['dice']:.3f}", flush=True)
        if save is not None:
            save(summary())
    return summary()


def cxr(
    args: argparse.Namespace, save: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """5-fold image-disjoint CV over the 44 radiographs, both lungs as one label; `save`
    gets the summary after each fold, so a run stopped early keeps the folds it finished.
    Each held-out image's predicted lungs are kept in `LUNG_MASKS` (for the Grad-CAM part)."""
    data = _CxrData(args)
    recipe = _cxr_recipe(args)
    spec = PreprocessSpec(recipe.size, 1)
    rows: list[dict[str, Any]] = []
    kept: dict[str, NDArray[np.bool_]] = {}
    for index, test_ids in enumerate(data.folds[: args.cxr_folds]):
        rest = [i for i in data.dataset.ids if i not in test_ids]
        inner = seeded_split(rest, val=4, seed=args.split_seed + index)
        result = data.train(args, recipe, inner.train, inner.val, f"cxr fold {index}")
        cases = data.dataset.subset(test_ids)
        predicted, truth = _predicted(result.network, data.dataset, cases, spec, recipe.cleanup)
        kept |= {c.case_id: m > 0 for c, m in zip(cases, predicted, strict=True)}
        test = _report(cases, predicted, truth, data.dataset.labels)
        rows.append({"fold": index, "test_ids": list(test_ids), "epochs": result.epochs_run,
                     "best_epoch": result.best_epoch, "val_dice": result.best_val_dice,
                     "stopped_because": result.stopped_because,
                     "train_minutes": result.seconds / 60, "test": test})  # fmt: skip
        print(f"cxr fold {index}: Dice {test['values']['dice']:.3f}", flush=True)
        LUNG_MASKS.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(LUNG_MASKS, **kept)  # type: ignore[arg-type]  # names are ids
        if save is not None:
            save(_cxr_summary(rows, data.dataset.labels, args))
    return _cxr_summary(rows, data.dataset.labels, args)


def _share_summary(found: dict[str, Any]) -> dict[str, Any]:
    keys = ("images", "explained", "zero_maps", "share_inside_quantiles", "share_inside_mean",
            "flagged_mostly_outside", "flag_threshold", "peak_inside_lungs",
            "lung_area_share_median")  # fmt: skip
    return {key: found[key] for key in keys}


def gradcam(args: argparse.Namespace) -> dict[str, Any]:
    """The chest classifier's Grad-CAM share inside the lungs of each of the 44 radiographs,
    the lungs predicted by the CV fold model that held the image out (`LUNG_MASKS`, written
    by the `cxr_lungs` part), beside the same figure with the radiologists' lungs; both by
    `explanation.gradcam_in_lung_share`, with the same classifier."""
    from explanation import chest_classifier, gradcam_in_lung_share

    if not LUNG_MASKS.is_file():
        raise SystemExit("run the cxr_lungs part first: it writes the predicted lung masks")
    folder = Path(args.data) / "segmentation" / "covid19-cxr-segmentations"
    with np.load(LUNG_MASKS) as stored:
        predicted = {name: stored[name] for name in stored.files}
    missing = sorted(p.stem for p in (folder / "images").iterdir() if p.stem not in predicted)
    if missing:
        raise SystemExit(f"no held-out lung mask for {len(missing)} image(s): run all 5 folds")
    with limit_threads(1):
        classifier, model = chest_classifier(None, None, args.explain_budget_minutes)
        mine = gradcam_in_lung_share(
            classifier, folder, masks=lambda name, _image: predicted[Path(name).stem]
        )
        expert = gradcam_in_lung_share(classifier, folder)
    pairs = list(zip(mine["per_image"], expert["per_image"], strict=True))
    both = [(m, e) for m, e in pairs if m["share_inside"] is not None
            and e["share_inside"] is not None]  # fmt: skip
    return {
        "classifier": model,
        "predicted_lungs": {**_share_summary(mine), "masks": "each radiograph's lungs as "
                            "predicted by the cxr_lungs CV fold model that held it out"},
        "expert_lungs": {**_share_summary(expert),
                         "masks": "radiologists' left and right lung masks"},
        "agreement": {
            "images": len(both),
            "flag_agrees": float(np.mean([m["mostly_outside"] == e["mostly_outside"]
                                          for m, e in both])),
            "share_abs_difference_median": float(np.median(
                [abs(m["share_inside"] - e["share_inside"]) for m, e in both])),
        },
        "per_image": [{"image": m["image"], "predicted": m["predicted"],
                       "share_inside_predicted_lungs": m["share_inside"],
                       "share_inside_expert_lungs": e["share_inside"]} for m, e in pairs],
        "lungs_from": {"cxr_lungs_recipe": asdict(_cxr_recipe(args))},
    }  # fmt: skip


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


def _recipe_lines(selection: dict[str, Any] | None) -> list[str]:
    """The lung recipe candidates, scored on the selection images of fold 0's training part."""
    if not selection:
        return []
    split = selection["inner_split"]
    lines = ["", f"CXR lungs recipe selection (`cxr_lungs_recipe`), on {split['of']} only: "
             f"{len(split['train'])} training, {len(split['epoch_val'])} epoch-picking and "
             f"{len(split['selection'])} selection images; mean Dice of the selection images "
             f"at their own resolution. Chosen: {selection['chosen_name']}.", "",
             "| candidate | epochs run (best) | train min | selection Dice | HD95 (px) |",
             "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['name']} | {r['epochs']} ({r['best_epoch']}) | {r['train_minutes']:.1f} | "
              f"{r['dice']:.3f} | {r['hd95']:.1f} |" for r in selection["candidates"]]  # fmt: skip
    return lines


def _gradcam_lines(found: dict[str, Any] | None) -> list[str]:
    """The Grad-CAM share inside predicted and expert lungs, side by side."""
    if not found:
        return []
    model = found["classifier"]
    lines = ["", f"Grad-CAM share inside the lungs (`gradcam_in_lung_share`): chest classifier "
             f"{model['name']} v{model['version']} ({model['source']}; paediatric "
             "PneumoniaMNIST, so these adult radiographs are outside its intended population) "
             f"on the {found['expert_lungs']['images']} radiographs; centred square, map "
             "resized bilinearly to it (`explanation.gradcam_in_lung_share`).", "",
             "| lungs | min | q25 | median | q75 | max | mean | flagged (share < 0.5) | "
             "peak inside | lung area share (median) |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, key in (("predicted (held-out CV fold model)", "predicted_lungs"),
                      ("radiologists' masks", "expert_lungs")):  # fmt: skip
        part = found[key]
        q = part["share_inside_quantiles"]
        lines.append(f"| {name} | {q['q00']:.2f} | {q['q25']:.2f} | {q['q50']:.2f} | "
                     f"{q['q75']:.2f} | {q['q100']:.2f} | {part['share_inside_mean']:.2f} | "
                     f"{part['flagged_mostly_outside']:.0%} | {part['peak_inside_lungs']:.0%} | "
                     f"{part['lung_area_share_median']:.2f} |")  # fmt: skip
    agree = found["agreement"]
    lines += ["", f"The mostly-outside flag agrees between predicted and expert lungs on "
              f"{agree['flag_agrees']:.0%} of {agree['images']} images; median absolute "
              f"difference of the share {agree['share_abs_difference_median']:.3f}."]  # fmt: skip
    return lines


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
                      f"{f['test']['values']['dice']:.3f}" for f in c["folds"]) + ". "
                  f"Post-processing: {r.get('cleanup', 'none')}; Dice, IoU and HD95 scored at "
                  "each radiograph's own resolution (softmax resized back)."]  # fmt: skip
    lines += _recipe_lines(results.get("cxr_lungs_recipe"))
    lines += _gradcam_lines(results.get("gradcam_in_lung_share"))
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


def _stored_recipe(summary: dict[str, Any]) -> CxrRecipe:
    """The recipe a stored `cxr_lungs` summary ran."""
    recipe = summary["recipe"]
    return CxrRecipe(recipe["image_size"], recipe["width"], summary["budget"]["max_epochs"],
                     recipe.get("cleanup", "none") != "none")  # fmt: skip


def _chosen(results: dict[str, Any], recipe: CxrRecipe) -> str:
    """How the CV's recipe was chosen: the selection's pick, or not tuned at all."""
    selection = results.get("cxr_lungs_recipe", {})
    if selection.get("chosen") == asdict(recipe):
        return ("on an inner split of fold 0's training part (cxr_lungs_recipe: "
                f"{selection['chosen_name']}): no test image of fold 0 was read; the "
                f"{len(selection['inner_split']['selection'])} selection images are test "
                "images of folds 1-4")  # fmt: skip
    return "beforehand, not tuned on any fold"


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
    parser.add_argument(
        "--cxr-cleanup",
        action="store_true",
        help="Keep the two largest lung components, holes filled.",
    )
    parser.add_argument(
        "--explain-budget-minutes",
        type=float,
        default=4.0,
        help="Training minutes of the small chest classifier, if trained.",
    )
    parser.add_argument("--cxr-folds", type=int, default=5, help="Run the first k folds.")
    parser.add_argument(
        "--cxr-candidates",
        nargs="+",
        default=["128:16:40", "160:16:40"],
        help="SIZE:WIDTH:EPOCHS recipes tried by the cxr_lungs_recipe part.",
    )
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
    runners = {"kvasir_seg": kvasir, "inference": inference,
               "gradcam_in_lung_share": gradcam}  # fmt: skip
    produced: dict[str, Any] = {}

    def save(part: str, value: dict[str, Any]) -> None:
        """Merge this run's parts into the file as it is now (another run may write too)."""
        merged = read_results("segmentation")
        merged.pop("provenance", None)
        if part == "cxr_lungs":
            value["recipe"]["chosen"] = _chosen(merged, _cxr_recipe(args))
        produced[part] = {**value, "provenance": provenance()}  # each part's own run
        write_results("segmentation", {**merged, **produced})

    def saver(part: str) -> Callable[[dict[str, Any]], None]:
        return lambda found: save(part, found)

    for part in args.parts:
        if part in ("cxr_lungs", "cxr_lungs_recipe"):
            runner = cxr if part == "cxr_lungs" else cxr_recipe
            save(part, runner(args, saver(part)))
        else:
            save(part, runners[part](args))
    results = read_results("segmentation")
    results.pop("provenance", None)
    if "cxr_lungs" in results:  # the selection may have been written after the CV
        cv = results["cxr_lungs"]
        cv["recipe"]["chosen"] = _chosen(results, _stored_recipe(cv))
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
