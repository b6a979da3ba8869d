"""Intended-use gate figures: does the gate refuse images that are not what a model is for?

For each image model (chest = PneumoniaMNIST, breast = BreastMNIST), trained with the
project's training loop within a small fixed budget (`BUDGETS`: CompactCNN width 16, 6 and
20 epochs; a model already trained by this benchmark in `benchmarks/runs/registry` is
reused), the gate fitted at registration (train
split: means and covariance; validation split: the limit) is applied to:

- in-distribution: the model's own test split (read once, here);
- far OOD, each source reported on its own, DICOM headers stripped (the gate sees pixels
  alone, so only the colour and feature checks can refuse):
  - ``dicom-<modality>``: the CT, MR, US and NM images of the pydicom test files in
    ``shared/data/dicom`` (frame 0; files that do not decode are skipped), and ``dicom-OT``
    (modality "other"): the colour secondary captures and test patterns and the face
    photograph (OT-PAL-8-face);
  - ``endoscopy``: the first `N_ENDOSCOPY` Kvasir-SEG colonoscopy frames (sorted by name);
  - ``screenshot``: `N_SYNTHETIC` renderings of the service's login page made with PIL
    (the page's words "Clinsight", "Sign in", "Username", "Password" and a button, dark
    text on a light background with input boxes, at seeded sizes, offsets and greys);
  - ``photo``: `N_SYNTHETIC` synthetic natural-image-like colour pictures: seeded 1/f
    ("pink") noise per channel with random filled ellipses, as a stand-in for photographs;
- near OOD (chest only, no bar): the adult chest radiographs of covid19-cxr-segmentations.

``far_auroc`` ranks the gate's combined score (the larger of feature score / its limit and
input-statistics score / its limit; +inf where the colour check fails) of in-distribution
test images against all far-OOD images; ``far_auroc_features`` and ``far_auroc_inputs``
use one score alone. Rejection rates are those of the full gate (refused or
not). Bars: chest ``far_auroc`` >= 0.99 and ``in_distribution_rejected`` <= 0.05.

The choice of score is checked on validation data only (``selection``): Mahalanobis
against the energy score, each model's validation split against the other model's
validation split (a different modality) as the out-of-distribution stand-in.

Part ``indeterminate``: per model, the share of test cases inside the stored band and the
accuracy of the cases outside it.

Run through ``benchmarks/safety.py --part ood`` / ``--part indeterminate``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from scipy.special import logsumexp

from clinsight.config import get_settings
from clinsight.data.images import read_image
from clinsight.data.medmnist import Split, load_medmnist
from clinsight.errors import ClinsightError, ModelNotFoundError
from clinsight.evaluation.metrics import roc_auc
from clinsight.evaluation.ood import assess_intended_use
from clinsight.evaluation.thresholds import INDETERMINATE
from clinsight.imaging.specs import TrainConfig
from clinsight.inference.predictors import ImagePredictor
from clinsight.registry.image import get_model
from clinsight.services.training import train_and_register

__all__ = [
    "gated_predictor", "indeterminate_figures", "ood_figures", "readme_indeterminate", "readme_ood",
]  # fmt: skip

RUNS = Path(__file__).resolve().parent / "runs"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS = {"chest": "pneumoniamnist", "breast": "breastmnist"}
# The project's training loop, augmentation and optimiser settings with a smaller network
# and a fixed epoch budget (capped in wall time), so the part fits a shared 2-core machine.
BUDGETS = {
    "pneumoniamnist": TrainConfig(architecture="cnn", width=16, epochs=6, patience=6,
                                  time_budget_minutes=10.0),
    "breastmnist": TrainConfig(architecture="cnn", width=16, epochs=20, patience=20,
                               time_budget_minutes=5.0, ema_decay=0.99),
}  # fmt: skip
DICOM_MODALITIES = ("CT", "MR", "US", "NM", "OT")
N_ENDOSCOPY = 100
N_SYNTHETIC = 50
BARS = {"chest": {"far_auroc": 0.99, "in_distribution_rejected": 0.05}}


def _data_dir() -> Path:
    configured = get_settings().resolved_data_dir
    return configured if (configured / "medmnist").is_dir() else SHARED_DATA


def gated_predictor(dataset: str) -> ImagePredictor:
    """The benchmark's gated model of `dataset`, trained within its budget if absent."""
    registry, name = RUNS / "registry", f"{dataset}-gate"
    try:
        model = get_model(registry, name)
        if model.intended_use_gate is not None:
            return ImagePredictor(model)
    except ModelNotFoundError:
        pass
    config = replace(BUDGETS[dataset], seed=0, threads=0)
    train_and_register(_data_dir(), registry, dataset, config, name=name,
                       run_dir=RUNS / name, n_bootstrap=200)  # fmt: skip
    return ImagePredictor(get_model(registry, name))


def _scores(predictor: ImagePredictor, images: list[NDArray[Any]]) -> dict[str, NDArray[Any]]:
    """Feature and input-statistics scores, the gate's combined score (the larger score /
    limit ratio; +inf where the colour check fails), full-gate refusal and logits."""
    gate = predictor.model.intended_use_gate
    assert gate is not None
    assert gate.features is not None
    assert gate.inputs is not None
    batch = np.stack([predictor.preprocess(image) for image in images]).astype(np.float32)
    logits = np.concatenate([predictor.session.logits(batch[i : i + 256])
                             for i in range(0, len(batch), 256)])  # fmt: skip
    scores = np.concatenate([predictor.ood_scores(batch[i : i + 256])
                             for i in range(0, len(batch), 256)])  # fmt: skip
    inputs = predictor.input_scores(batch)
    assert inputs is not None
    checks = [assess_intended_use(gate, score=float(s), pixels=image, source={},
                                  input_score=float(i))
              for s, i, image in zip(scores, inputs, images, strict=True)]  # fmt: skip
    colour = np.array([any("colour" in r for r in c.reasons) for c in checks])
    ratio = np.maximum(scores / gate.features.limit, inputs / gate.inputs.limit)
    return {
        "score": scores, "input_score": inputs, "gate_score": np.where(colour, np.inf, ratio),
        "refused": np.array([c.refused for c in checks]), "logits": logits,
    }  # fmt: skip


def _medmnist_images(data_dir: Path, dataset: str, split: Split) -> list[NDArray[Any]]:
    """A MedMNIST split as source images: float pixels in [0, 1], as a decoded upload."""
    return list(load_medmnist(data_dir, dataset).split(split)[0].astype(np.float32) / 255.0)


def _dicom_images(root: Path) -> dict[str, list[NDArray[Any]]]:
    found: dict[str, list[NDArray[Any]]] = {f"dicom-{m}": [] for m in DICOM_MODALITIES}
    for path in sorted(root.rglob("*.dcm")):
        try:
            image = read_image(path)
        except ClinsightError:
            continue
        modality = image.metadata.get("modality", "")
        if modality in DICOM_MODALITIES:
            found[f"dicom-{modality}"].append(image.pixels)
    return {key: value for key, value in found.items() if value}


def _folder_images(folder: Path, limit: int | None = None) -> list[NDArray[Any]]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [read_image(path).pixels for path in paths[:limit]]


def _screenshot(rng: np.random.Generator) -> NDArray[np.float32]:
    width, height = int(rng.integers(480, 1280)), int(rng.integers(360, 900))
    background = int(rng.integers(225, 256))
    canvas = Image.new("RGB", (width, height), (background,) * 3)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=int(rng.integers(14, 28)))
    x, y = int(rng.integers(20, width // 3)), int(rng.integers(20, height // 4))
    draw.rectangle((0, 0, width, 48), fill=(int(rng.integers(20, 80)),) * 3)
    draw.text((16, 12), "Clinsight", fill=(255, 255, 255), font=font)
    draw.text((x, y + 40), "Sign in", fill=(20, 20, 20), font=font)
    for row, label in enumerate(("Username", "Password")):
        top = y + 90 + 70 * row
        draw.text((x, top), label, fill=(40, 40, 40), font=font)
        draw.rectangle((x, top + 26, x + 260, top + 56), outline=(120, 120, 120), width=2)
    draw.rectangle((x, y + 240, x + 120, y + 276), fill=(int(rng.integers(0, 60)), 90, 160))
    draw.text((x + 20, y + 248), "Sign in", fill=(255, 255, 255), font=font)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _photo(rng: np.random.Generator, size: int = 256) -> NDArray[np.float32]:
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    falloff = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / size)
    channels = []
    for _ in range(3):
        spectrum = falloff * np.exp(2j * np.pi * rng.random((size, size)))
        field = np.real(np.fft.ifft2(spectrum))
        channels.append((field - field.min()) / (np.ptp(field) + 1e-12))
    picture = Image.fromarray((np.stack(channels, axis=2) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = rng.integers(0, size, 2)
        box = (int(x0), int(y0), int(x0 + rng.integers(20, 120)), int(y0 + rng.integers(20, 120)))
        draw.ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return np.asarray(picture, dtype=np.float32) / 255.0


def _sources(data_dir: Path) -> dict[str, list[NDArray[Any]]]:
    rng = np.random.default_rng(0)
    sources = _dicom_images(data_dir / "dicom")
    sources["endoscopy"] = _folder_images(
        data_dir / "segmentation" / "kvasir-seg" / "images", N_ENDOSCOPY
    )
    sources["screenshot"] = [_screenshot(rng) for _ in range(N_SYNTHETIC)]
    sources["photo"] = [_photo(rng) for _ in range(N_SYNTHETIC)]
    return sources


def _auroc(inside: NDArray[Any], outside: NDArray[Any]) -> float:
    values = np.concatenate([inside, outside])
    finite_top = np.max(values[np.isfinite(values)]) + 1.0
    values = np.where(np.isfinite(values), values, finite_top)
    labels = np.concatenate([np.zeros(len(inside)), np.ones(len(outside))])
    return roc_auc(labels, values)


def _energy(predictor: ImagePredictor, logits: NDArray[Any]) -> NDArray[Any]:
    return np.asarray(-logsumexp(logits / predictor.model.temperature, axis=1))


def _selection(predictors: dict[str, ImagePredictor], data_dir: Path) -> dict[str, Any]:
    """Mahalanobis against energy on validation splits only (the other model's = OOD)."""
    val = {ds: _medmnist_images(data_dir, ds, Split.VAL) for ds in MODELS.values()}
    out: dict[str, Any] = {}
    for key, predictor in predictors.items():
        own = MODELS[key]
        other = next(ds for ds in MODELS.values() if ds != own)
        inside = _scores(predictor, val[own])
        outside = _scores(predictor, val[other])
        out[key] = {
            "ood_stand_in": f"{other} validation split",
            "mahalanobis_auroc": _auroc(inside["score"], outside["score"]),
            "input_statistics_auroc": _auroc(inside["input_score"], outside["input_score"]),
            "energy_auroc": _auroc(
                _energy(predictor, inside["logits"]), _energy(predictor, outside["logits"])
            ),
        }
    return out


def ood_figures() -> dict[str, Any]:
    """Per model: far/near AUROC, in-distribution and per-source rejection (module doc)."""
    data_dir = _data_dir()
    torch.set_num_threads(2)
    predictors = {key: gated_predictor(dataset) for key, dataset in MODELS.items()}
    sources = _sources(data_dir)
    near = _folder_images(data_dir / "segmentation" / "covid19-cxr-segmentations" / "images")
    results: dict[str, Any] = {"selection": _selection(predictors, data_dir)}
    for key, predictor in predictors.items():
        gate = predictor.model.intended_use_gate
        assert gate is not None
        assert gate.features is not None
        test = _scores(predictor, _medmnist_images(data_dir, MODELS[key], Split.TEST))
        per_source = {name: _scores(predictor, images) for name, images in sources.items()}

        def far(key: str, per_source: dict[str, Any] = per_source) -> NDArray[Any]:
            return np.concatenate([s[key] for s in per_source.values()])

        far_score = far("score")
        assert gate.inputs is not None
        entry: dict[str, Any] = {
            "model": f"{predictor.model.name} v{predictor.model.version}",
            "limit": gate.features.limit,
            "input_limit": gate.inputs.limit,
            "validation_rejected": gate.features.validation_rejected,
            "input_validation_rejected": gate.inputs.validation_rejected,
            "in_distribution_n": len(test["score"]),
            "in_distribution_rejected": float(np.mean(test["refused"])),
            "far_auroc": _auroc(test["gate_score"], far("gate_score")),
            "far_auroc_features": _auroc(test["score"], far_score),
            "far_auroc_inputs": _auroc(test["input_score"], far("input_score")),
            "far_n": len(far_score),
            "far_rejected": float(np.mean(np.concatenate(
                [s["refused"] for s in per_source.values()]))),
            "sources": {name: {"n": len(s["refused"]), "rejected": float(np.mean(s["refused"])),
                               "median_score": float(np.median(s["score"])),
                               "median_input_score": float(np.median(s["input_score"]))}
                        for name, s in per_source.items()},
        }  # fmt: skip
        if key == "chest":
            adult = _scores(predictor, near)
            entry["near_auroc"] = _auroc(test["gate_score"], adult["gate_score"])
            entry["near_rejected"] = float(np.mean(adult["refused"]))
            entry["near_n"] = len(near)
        for figure, bar in BARS.get(key, {}).items():
            value = entry[figure]
            entry.setdefault("bars", {})[figure] = {
                "bar": bar,
                "met": bool(value >= bar if figure.endswith("auroc") else value <= bar),
            }
        results[key] = entry
    return results


def readme_ood(results: dict[str, Any]) -> str:
    """The ``safety-ood`` README section."""
    lines = [
        "## Safety: intended-use gate (out-of-distribution inputs)",
        "",
        "`benchmarks/safety.py --part ood`: each model (trained here within a fixed budget) "
        "with its gate fitted at registration (train: means and shared covariance of the "
        "penultimate features and of 5 input statistics; validation: each limit at 1 % "
        "rejected); in-distribution = its test split; far OOD = "
        "header-stripped CT/MR/US/NM/OT DICOM pixels, Kvasir-SEG endoscopy frames, PIL "
        "renderings of the login page, synthetic pink-noise colour pictures; near OOD = "
        "adult chest radiographs (covid19-cxr-segmentations). See `benchmarks/ood.py`.",
        "",
        "| model | far AUROC (gate / features / inputs) | test rejected | far rejected "
        "| near AUROC | bars |",
        "|---|---|---|---|---|---|",
    ]
    for key in MODELS:
        e = results[key]
        bars = ", ".join(f"{k} {'met' if v['met'] else 'MISSED'}"
                         for k, v in e.get("bars", {}).items()) or "reported"  # fmt: skip
        near = f"{e['near_auroc']:.3f}" if "near_auroc" in e else "n/a"
        lines.append(
            f"| {key} ({e['model']}) | {e['far_auroc']:.3f} / {e['far_auroc_features']:.3f} / "
            f"{e['far_auroc_inputs']:.3f} | "
            f"{e['in_distribution_rejected']:.1%} of {e['in_distribution_n']} | "
            f"{e['far_rejected']:.1%} of {e['far_n']} | {near} | {bars} |"
        )
    lines += ["", "| model | source | n | rejected | median feature / input score |",
              "|---|---|---|---|---|"]  # fmt: skip
    for key in MODELS:
        for name, s in results[key]["sources"].items():
            lines.append(f"| {key} | {name} | {s['n']} | {s['rejected']:.1%} | "
                         f"{s['median_score']:.1f} / {s['median_input_score']:.1f} |")  # fmt: skip
    lines += ["", "Score choice on validation only (other model's validation split as OOD):"]
    for key, s in results["selection"].items():
        lines.append(f"- {key}: Mahalanobis (features) AUROC {s['mahalanobis_auroc']:.3f}, "
                     f"input statistics {s['input_statistics_auroc']:.3f}, energy "
                     f"{s['energy_auroc']:.3f} ({s['ood_stand_in']}).")  # fmt: skip
    return "\n".join(lines)


def indeterminate_figures() -> dict[str, Any]:
    """Per model: share of test cases in the stored band, accuracy outside it."""
    data_dir = _data_dir()
    torch.set_num_threads(2)
    results: dict[str, Any] = {}
    for key, dataset in MODELS.items():
        predictor = gated_predictor(dataset)
        band = predictor.model.decision_thresholds
        if band is None:
            results[key] = {"model": predictor.model.name, "band": None}
            continue
        images, labels = load_medmnist(data_dir, dataset).split(Split.TEST)
        probs = predictor.predict_batch(predictor.preprocess.batch(images))
        positive_index = predictor.model.positive_index
        names = predictor.model.labels
        decided = [band.decide(float(p), names[positive_index], names[1 - positive_index])
                   for p in probs[:, positive_index]]  # fmt: skip
        truth = [names[int(y)] for y in labels[:, 0]]
        outside = [(d, t) for d, t in zip(decided, truth, strict=True) if d != INDETERMINATE]
        results[key] = {
            "model": f"{predictor.model.name} v{predictor.model.version}",
            "band": band.to_dict(),
            "n": len(decided),
            "indeterminate_share": 1.0 - len(outside) / len(decided),
            "accuracy_outside": (sum(d == t for d, t in outside) / len(outside)
                                 if outside else math.nan),
            "accuracy_argmax": float(np.mean(np.argmax(probs, axis=1) == labels[:, 0])),
        }  # fmt: skip
    return results


def readme_indeterminate(results: dict[str, Any]) -> str:
    """The ``safety-indeterminate`` README section."""
    lines = [
        "## Safety: indeterminate band on the test split",
        "",
        "`benchmarks/safety.py --part indeterminate`: the band stored with each model "
        "(chosen on validation, sensitivity and specificity targets 0.95) applied to its "
        "test split, same models as the `ood` part.",
        "",
        "| model | test n | in band | accuracy outside band | accuracy (argmax, all) |",
        "|---|---|---|---|---|",
    ]
    for key, e in results.items():
        if e.get("band") is None:
            lines.append(f"| {key} | – | no band | – | – |")
            continue
        lines.append(f"| {key} ({e['model']}) | {e['n']} | {e['indeterminate_share']:.1%} | "
                     f"{e['accuracy_outside']:.3f} | {e['accuracy_argmax']:.3f} |")  # fmt: skip
    return "\n".join(lines)
