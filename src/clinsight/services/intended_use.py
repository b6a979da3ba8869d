"""Fit the intended-use gate of an image model at training time (see `evaluation.ood`).

The feature and input-statistics gates' means and covariances come from the training split
and their limits (each at half the rejection target) from the validation split; the
header values and the image noun come from what the dataset's intended use declares
(`data.medmnist`). The test split is never read.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from clinsight.data.medmnist import MedMNISTInfo, MedMNISTSplits, Split, TaskType
from clinsight.evaluation.ood import (
    ExpectedHeaders,
    IntendedUseGate,
    fit_feature_gate,
    input_statistics,
)
from clinsight.imaging.features import penultimate_features
from clinsight.imaging.transforms import Preprocess

__all__ = ["REJECTION_TARGET", "declared_gate", "fit_intended_use_gate", "split_features"]

REJECTION_TARGET = 0.02
"""Share of validation images the gate's two score limits together let fail (at most)."""


def split_features(
    network: torch.nn.Module, data: MedMNISTSplits, preprocess: Preprocess, split: Split
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Penultimate features and input statistics of one split (preprocessed as at
    inference) and the class of each image (0 for every image of a multi-label task)."""
    images, labels = data.split(split)
    batch = preprocess.batch(images)
    features = penultimate_features(network, torch.from_numpy(batch)).numpy().astype(np.float64)
    multi_label = data.info.task is TaskType.MULTI_LABEL
    classes = np.zeros(len(labels), dtype=np.int64) if multi_label else labels[:, 0]
    return features, input_statistics(batch), classes


def declared_gate(info: MedMNISTInfo) -> IntendedUseGate:
    """The gate's declared part for a dataset: header values, noun, greyscale; no features."""
    headers = ExpectedHeaders(
        modality=info.dicom_modalities, body_part=info.body_parts,
        photometric=info.dicom_photometric, view=info.dicom_views,
    )  # fmt: skip
    noun = info.image_noun or f"{info.modality} image"
    return IntendedUseGate(noun=noun, headers=headers, greyscale=info.channels == 1)


def fit_intended_use_gate(
    network: torch.nn.Module,
    data: MedMNISTSplits,
    preprocess: Preprocess,
    *,
    rejection_target: float = REJECTION_TARGET,
) -> IntendedUseGate:
    """The declared gate of `data`'s dataset with a feature gate fitted on `network`.

    Raises:
        DataError: the features are not finite or a split is empty.
        ModelError: the network has no linear layer to take features from.
    """
    train, train_inputs, classes = split_features(network, data, preprocess, Split.TRAIN)
    val, val_inputs, _ = split_features(network, data, preprocess, Split.VAL)
    gate = declared_gate(data.info)
    share = rejection_target / 2  # each of the two scores; together at most the target
    features = fit_feature_gate(train, classes, val, rejection_target=share)
    one_class = np.zeros(len(train_inputs), dtype=np.int64)
    inputs = fit_feature_gate(train_inputs, one_class, val_inputs, rejection_target=share)
    return IntendedUseGate(gate.noun, gate.headers, features, inputs, gate.greyscale)
