"""Explanation benchmarks; one part per ``--part``.

``gradcam_in_lung_share``: does the chest classifier's Grad-CAM look at the lungs? For
each of the 44 adult radiographs of ``segmentation/covid19-cxr-segmentations``, the
classifier predicts the image (read as an upload is: `read_image`) and Grad-CAM explains
its predicted class exactly as the service does (`grad_cam` on the network's
``cam_layer``). The map covers the centred square the preprocessing keeps, so it is
compared with the centred square of the lung mask; the map (the network's 28 x 28 input
grid) is resized bilinearly to that square (`evaluation.explanation_overlap`). Reported:
the quantiles of the share of the map's mass inside the lungs, the share of images whose
map lies mostly outside them (`MOSTLY_OUTSIDE_SHARE`), the share whose peak lies inside,
and, as the baseline a map spread evenly would score, the lungs' share of the square.

The lungs come from a mask provider: by default the radiologists' left and right lung
masks (`data.cxr_masks.cxr_lung_masks`); a segmentation model's predicted lungs can be
passed instead (`gradcam_in_lung_share(..., masks=...)`).

The classifier is a registered model named with ``--registry`` and ``--model``; else the
intended-use benchmark's PneumoniaMNIST model (``benchmarks/runs/registry``,
``pneumoniamnist-gate``) when `ood.py` has trained it; else a small PneumoniaMNIST model
trained here (`SMALL`: CompactCNN width 8, at most 4 epochs and `--budget-minutes` of
training on 2,000 training images, class weighting fixed, 100 bootstrap draws), registered
as ``pneumoniamnist-explain`` in the same registry and reused. PneumoniaMNIST is paediatric
and 28 x 28: these adult radiographs are outside its intended population, which is what the
figure is meant to expose, not a measure of the model on its own data.

Run: ``.venv/bin/python benchmarks/explanation.py --part gradcam_in_lung_share``
(a minute once a model exists; a few CPU minutes to train the small one the first time).
Writes the part's key of ``benchmarks/results/explanation.json`` and the
``explanation-<part>`` section of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from clinsight.config import get_settings
from clinsight.data.cxr_masks import cxr_lung_masks
from clinsight.data.images import read_image
from clinsight.data.source import SourceImage
from clinsight.errors import ModelNotFoundError
from clinsight.evaluation.explanation_overlap import MOSTLY_OUTSIDE_SHARE, heat_share_inside
from clinsight.imaging.explain import grad_cam
from clinsight.imaging.specs import TrainConfig
from clinsight.inference.predictors import ImagePredictor, load_torch_model
from clinsight.registry.image import get_model
from clinsight.services.diagnosis import centre_square
from clinsight.services.training import train_and_register
from clinsight.tabular.models import limit_threads
from common import provenance, read_results, update_readme_section, write_results
from ood import RUNS

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CXR = Path("segmentation") / "covid19-cxr-segmentations"
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
SMALL = TrainConfig(architecture="cnn", width=8, epochs=4, patience=4, min_epochs=1,
                    class_weighting="none", train_subset=2000, seed=0, threads=0)  # fmt: skip

MaskProvider = Callable[[str, SourceImage], NDArray[np.bool_]]
"""The lungs of one radiograph (file name, decoded image) as an H x W mask of the image."""


def _data_dir() -> Path:
    configured = get_settings().resolved_data_dir
    return configured if (configured / CXR).is_dir() else SHARED_DATA


def expert_lungs(folder: Path) -> MaskProvider:
    """The radiologists' left and right lung masks of the folder, united."""
    masks = cxr_lung_masks(folder)
    return lambda name, _image: masks[name]


def _peak_inside(cam: NDArray[np.float32], mask: NDArray[np.bool_]) -> bool:
    """Whether the map's highest cell, taken at its centre in the mask's grid, is lung."""
    row, column = np.unravel_index(int(np.argmax(cam)), cam.shape)
    height, width = mask.shape
    return bool(
        mask[
            min(int((row + 0.5) * height / cam.shape[0]), height - 1),
            min(int((column + 0.5) * width / cam.shape[1]), width - 1),
        ]
    )


def gradcam_in_lung_share(
    predictor: ImagePredictor, folder: Path, masks: MaskProvider | None = None
) -> dict[str, Any]:
    """Per-image and summary figures of the Grad-CAM mass inside the lungs (module doc)."""
    provider = masks or expert_lungs(folder)
    network = load_torch_model(predictor.model)
    layer = predictor.model.network_config.cam_layer
    rows: list[dict[str, Any]] = []
    for path in sorted((folder / "images").iterdir()):
        image = read_image(path)
        prediction = predictor.predict(image.pixels)
        network_input = torch.from_numpy(predictor.preprocess(image.pixels))[None]
        cam = grad_cam(network, layer, network_input)
        lungs = centre_square(provider(path.name, image))
        overlap = heat_share_inside(cam, lungs)
        rows.append(
            {
                "image": path.name,
                "predicted": prediction.label,
                "probability": prediction.probability,
                **overlap.to_dict(),
                "peak_inside": _peak_inside(cam, lungs)
                if overlap.share_inside is not None
                else None,
            }
        )
    explained = [r for r in rows if r["share_inside"] is not None]
    shares = np.array([r["share_inside"] for r in explained])
    areas = np.array([r["mask_area_share"] for r in rows])
    return {
        "images": len(rows),
        "explained": len(explained),
        "zero_maps": len(rows) - len(explained),
        "share_inside_quantiles": {
            f"q{int(q * 100):02d}": float(np.quantile(shares, q)) for q in QUANTILES
        },
        "share_inside_mean": float(shares.mean()),
        "flagged_mostly_outside": float(np.mean([r["mostly_outside"] for r in explained])),
        "flag_threshold": MOSTLY_OUTSIDE_SHARE,
        "peak_inside_lungs": float(np.mean([r["peak_inside"] for r in explained])),
        "lung_area_share_median": float(np.median(areas)),
        "predicted": dict(Counter(r["predicted"] for r in rows)),
        "per_image": rows,
    }


def chest_classifier(
    registry: Path | None, model: str | None, budget_minutes: float
) -> tuple[ImagePredictor, dict[str, Any]]:
    """The chest classifier (see the module doc) and where it comes from."""
    if registry is not None and model is not None:
        version = get_model(registry, model)
        return ImagePredictor(version), {"source": "registered", "name": model,
                                         "version": version.version}  # fmt: skip
    runs = RUNS / "registry"
    for name, source in (("pneumoniamnist-gate", "ood.py's model"),
                         ("pneumoniamnist-explain", "small model of this benchmark")):  # fmt: skip
        try:
            version = get_model(runs, name)
        except ModelNotFoundError:
            continue
        return ImagePredictor(version), {"source": source, "name": name,
                                         "version": version.version,
                                         "training": version.training}  # fmt: skip
    config = replace(SMALL, time_budget_minutes=budget_minutes)
    train_and_register(_data_dir(), runs, "pneumoniamnist", config, name="pneumoniamnist-explain",
                       run_dir=RUNS / "pneumoniamnist-explain", n_bootstrap=100)  # fmt: skip
    version = get_model(runs, "pneumoniamnist-explain")
    return ImagePredictor(version), {
        "source": "small model of this benchmark (trained in this run)",
        "name": version.name, "version": version.version, "training": version.training,
        "budget": {"architecture": config.architecture, "width": config.width,
                   "epochs": config.epochs, "train_subset": config.train_subset,
                   "time_budget_minutes": budget_minutes},
    }  # fmt: skip


def readme_section(results: dict[str, Any]) -> str:
    """The README table of the part."""
    q = results["share_inside_quantiles"]
    model = results["model"]
    return "\n".join(
        [
            "### Grad-CAM mass inside the lungs (`explanation.py --part gradcam_in_lung_share`)",
            "",
            f"Chest classifier {model['name']} v{model['version']} ({model['source']}) on the "
            f"{results['images']} adult radiographs of covid19-cxr-segmentations; lungs: "
            f"{results['masks']}. Share of each Grad-CAM map's mass inside the lungs (centred "
            "square, map resized bilinearly to it):",
            "",
            "| min | q10 | q25 | median | q75 | q90 | max | mean | flagged (share < "
            f"{results['flag_threshold']}) | peak inside lungs | lung area share (median) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {q['q00']:.2f} | {q['q10']:.2f} | {q['q25']:.2f} | {q['q50']:.2f} | "
            f"{q['q75']:.2f} | {q['q90']:.2f} | {q['q100']:.2f} | "
            f"{results['share_inside_mean']:.2f} | {results['flagged_mostly_outside']:.0%} | "
            f"{results['peak_inside_lungs']:.0%} | {results['lung_area_share_median']:.2f} |",
            "",
            f"{_training_text(model)}A map spread evenly over the square would score the lung "
            "area share. "
            f"{results['zero_maps']} map(s) were all zero (no evidence) and are left out of the "
            "shares. The model is paediatric (PneumoniaMNIST): these adult images are outside "
            "its intended population.",
        ]
    )


def _training_text(model: dict[str, Any]) -> str:
    training = model.get("training") or {}
    if "epochs_run" not in training:
        return ""
    return (
        f"The classifier ran {training['epochs_run']} epoch(s) (stopped because "
        f"{training.get('stopped_because', 'n/a')}; validation AUC "
        f"{training.get('val_auc', float('nan')):.3f}). "
    )


PARTS = ("gradcam_in_lung_share",)


def main() -> None:
    """Run one part, update its key of explanation.json and its README section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=PARTS, required=True)
    parser.add_argument("--registry", type=Path, help="a registry holding the chest model")
    parser.add_argument("--model", help="the chest model's name in --registry")
    parser.add_argument("--budget-minutes", type=float, default=4.0,
                        help="training minutes of the small model, if trained")  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    with limit_threads(1):
        predictor, model = chest_classifier(args.registry, args.model, args.budget_minutes)
        results = gradcam_in_lung_share(predictor, _data_dir() / CXR)
    results["model"] = model
    results["masks"] = "radiologists' left and right lung masks (expert)"
    results["seconds"] = time.perf_counter() - started
    markdown = readme_section(results)
    document = read_results("explanation")
    document.pop("provenance", None)
    document[args.part] = {**results, "provenance": provenance()}
    write_results("explanation", document)
    update_readme_section(f"explanation-{args.part}", markdown)
    sys.stdout.write(markdown + "\n")


if __name__ == "__main__":
    main()
