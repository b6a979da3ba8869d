"""Turn a trained PyTorch network into registry artifacts: ONNX graph and safetensors weights.

The ONNX graph takes "image" (N, C, S, S) float32 and returns "logits" (N, K) with a
dynamic batch dimension; exported `with_features`, it also returns "features" (N, D), the
penultimate features the intended-use gate scores (`imaging.features`). A segmentation
network (`spatial`) returns "logits" (N, K, S, S) instead. Every export is
checked against PyTorch on a random batch with ONNX Runtime before it is accepted; weights
are saved as safetensors (never pickle) so Grad-CAM can rebuild the PyTorch module.
"""

from __future__ import annotations

import copy
import logging
import threading
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from safetensors.torch import save_file
from torch import nn

from clinsight.errors import ModelError
from clinsight.imaging.features import WithFeatures
from clinsight.imaging.transforms import PreprocessSpec

__all__ = [
    "EXPORT_TOLERANCE",
    "FEATURES_NAME",
    "INPUT_NAME",
    "ONNX_OPSET",
    "OUTPUT_NAME",
    "export_onnx",
    "save_weights",
]

ONNX_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
FEATURES_NAME = "features"
EXPORT_TOLERANCE = 1e-4

_log = logging.getLogger(__name__)
# The TorchScript exporter keeps global state; serialise exports within a process.
_EXPORT_LOCK = threading.Lock()


def _outputs(network: nn.Module) -> list[str]:
    return [OUTPUT_NAME, FEATURES_NAME] if isinstance(network, WithFeatures) else [OUTPUT_NAME]


def _export_torchscript(network: nn.Module, example: torch.Tensor, opset: int, path: Path) -> None:
    outputs = _outputs(network)
    torch.onnx.export(
        network,
        (example,),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=outputs,
        dynamic_axes={INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in outputs}},
    )


def _export_dynamo(network: nn.Module, example: torch.Tensor, opset: int, path: Path) -> None:
    program = torch.onnx.export(
        network,
        (example,),
        dynamo=True,
        opset_version=max(opset, 18),
        input_names=[INPUT_NAME],
        output_names=_outputs(network),
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
    if program is None:
        raise ModelError("The dynamo ONNX exporter returned no program.")
    program.save(str(path))


def _max_difference(network: nn.Module, path: Path, batch: torch.Tensor) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    onnx_outputs = session.run(_outputs(network), {INPUT_NAME: batch.numpy()})
    with torch.no_grad():
        torch_output = network(batch)
    torch_outputs = torch_output if isinstance(torch_output, tuple) else (torch_output,)
    difference = 0.0
    for name, ours, theirs in zip(_outputs(network), onnx_outputs, torch_outputs, strict=True):
        if ours.shape != tuple(theirs.shape):
            raise ModelError(
                f"The ONNX graph returns {name} shaped {ours.shape}, PyTorch "
                f"{tuple(theirs.shape)}; the export is broken."
            )
        difference = max(difference, float(np.max(np.abs(ours - theirs.numpy()))))
    return difference


def export_onnx(
    network: nn.Module,
    preprocess: PreprocessSpec,
    path: Path,
    *,
    opset: int = ONNX_OPSET,
    tolerance: float = EXPORT_TOLERANCE,
    seed: int = 0,
    with_features: bool = False,
    spatial: bool = False,
) -> float:
    """Export `network` (in eval mode) to ONNX at `path` and check it against PyTorch.

    The caller's module is left untouched (a CPU copy is exported). The check runs a seeded
    random batch of 3 images shaped by `preprocess` through both and compares logits (and,
    `with_features`, the penultimate features of the second output). `spatial` networks
    (segmentation) return per-pixel logits (N, K, S, S). Returns the largest absolute
    difference.

    Raises:
        ModelError: the network rejects the spec's input shape or does not return (N, K)
            logits, neither exporter can export it, or ONNX Runtime's logits differ from
            PyTorch's by more than `tolerance`.
    """
    if opset < ONNX_OPSET:
        raise ModelError(f"ONNX opset {opset} is too old; use {ONNX_OPSET} or newer.")
    model = copy.deepcopy(network).cpu().eval()
    shape = (preprocess.channels, preprocess.image_size, preprocess.image_size)
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn((2, *shape), generator=generator)
    check = torch.randn((3, *shape), generator=generator)
    try:
        with torch.no_grad():
            output = model(example)
    except RuntimeError as exc:
        raise ModelError(
            f"{type(network).__name__} does not accept images shaped {shape} from the "
            f"preprocessing spec: {exc}"
        ) from exc
    if spatial and (output.ndim != 4 or tuple(output.shape[2:]) != shape[1:]):
        raise ModelError(
            f"{type(network).__name__} returns {tuple(output.shape)}, not (N, K, "
            f"{shape[1]}, {shape[2]}) per-pixel logits."
        )
    if not spatial and output.ndim != 2:
        raise ModelError(f"{type(network).__name__} returns {tuple(output.shape)}, not (N, K).")
    if with_features:
        model = WithFeatures(model).eval()
    with _EXPORT_LOCK, warnings.catch_warnings():
        # The exporters warn about their own deprecations, which callers cannot act on.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        try:
            _export_torchscript(model, example, opset, path)
        except Exception as legacy_error:  # any failure of the legacy exporter: try dynamo
            _log.info("TorchScript ONNX export failed (%s); trying dynamo", legacy_error)
            try:
                _export_dynamo(model, example, opset, path)
            except Exception as dynamo_error:
                raise ModelError(
                    f"Cannot export {type(network).__name__} to ONNX: the TorchScript exporter "
                    f"failed ({legacy_error}) and so did the dynamo exporter ({dynamo_error})."
                ) from dynamo_error
    difference = _max_difference(model, path, check)
    if not difference <= tolerance:
        path.unlink()
        raise ModelError(
            f"ONNX Runtime and PyTorch logits differ by up to {difference:.3g} (allowed "
            f"{tolerance:g}); the network uses an operation ONNX does not reproduce. Check "
            f"custom layers or export with a newer opset."
        )
    return difference


def save_weights(network: nn.Module, path: Path) -> None:
    """Save the network's state_dict as safetensors (a CPU copy; no pickle).

    Raises:
        ModelError: the state_dict cannot be written as safetensors (e.g. shared tensors).
    """
    tensors = {
        key: value.detach().cpu().contiguous() for key, value in network.state_dict().items()
    }
    try:
        save_file(tensors, str(path), metadata={"format": "pt"})
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"Cannot save the weights of {type(network).__name__}: {exc}") from exc
