"""Use case: data-parallel image training on Ray Train (`TorchTrainer`, CPU workers).

Each Ray worker runs the ordinary trainer (`imaging.training.train_image_model`) as one
`Shard` of the run: the same seeded epochs, its part of every batch, gradients averaged by
DistributedDataParallel over gloo. Rank 0 hands the trained weights (safetensors) and the
run's record (JSON) back through a Ray Train checkpoint; the driver rebuilds the
`TrainResult` the single-process trainer returns, so evaluation, calibration, the card and
registration (`services.training.train_and_register`) are the same code and the artifacts
the same files. On a cluster, the data directory and `run_dir` must be on storage every
node sees (the checkpoint folder is where a run resumes from).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from clinsight.data.medmnist import load_medmnist
from clinsight.errors import ModelError
from clinsight.imaging.networks import NetworkConfig, build_network
from clinsight.imaging.specs import TrainConfig
from clinsight.imaging.training import (
    EpochRecord,
    MemberSummary,
    Shard,
    TrainResult,
    train_image_model,
)
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.inference.cluster import ray_session

__all__ = ["train_data_parallel"]

_WEIGHTS = "network.safetensors"
_RECORD = "result.json"


def _worker(loop: dict[str, Any]) -> None:
    """One Ray Train worker: train its shard; rank 0 reports the result as a checkpoint."""
    import ray.train

    context = ray.train.get_context()
    shard = Shard(context.get_world_rank(), context.get_world_size())
    data = load_medmnist(Path(loop["data_dir"]), loop["dataset"], loop["size"])
    result = train_image_model(
        data, loop["config"], checkpoint_dir=Path(loop["checkpoint_dir"]), shard=shard
    )
    if not shard.lead:
        ray.train.report({"val_auc": result.val_auc})
        return
    with tempfile.TemporaryDirectory() as folder:
        state = {k: v.contiguous() for k, v in result.network.state_dict().items()}
        save_file(state, str(Path(folder) / _WEIGHTS))
        (Path(folder) / _RECORD).write_text(json.dumps(_record(result)))
        checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report({"val_auc": result.val_auc}, checkpoint=checkpoint)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _record(result: TrainResult) -> dict[str, Any]:
    """Everything of `result` but the network and the configuration, as JSON values."""
    return {f.name: _plain(getattr(result, f.name)) for f in fields(result)
            if f.name not in ("network", "config")}  # fmt: skip


def _rebuild(folder: Path, config: TrainConfig) -> TrainResult:
    """The `TrainResult` rank 0 wrote to `folder`."""
    record = json.loads((folder / _RECORD).read_text())
    net_config = NetworkConfig(**record.pop("network_config"))
    network = build_network(net_config)
    network.load_state_dict(load_file(str(folder / _WEIGHTS)))
    network.eval()
    return TrainResult(
        network=network, network_config=net_config,
        preprocess=PreprocessSpec(**record.pop("preprocess")), config=config,
        history=[EpochRecord(**r) for r in record.pop("history")],
        members=tuple(MemberSummary(**m) for m in record.pop("members")), **record,
    )  # fmt: skip


def train_data_parallel(
    data_dir: Path,
    dataset: str,
    config: TrainConfig,
    *,
    size: int = 28,
    workers: int = 2,
    checkpoint_dir: Path,
    address: str | None = None,
    object_store_mb: int = 256,
) -> TrainResult:
    """Train like `train_image_model` on `workers` Ray Train CPU workers (one CPU each;
    a local Ray instance of `workers` CPUs unless `address` names a cluster); the result
    as the single-process trainer returns it.

    Raises:
        ModelError: fewer than one worker, or the training failed on a worker.
        ConfigurationError: the Ray cluster cannot be reached.
    """
    if workers < 1:
        raise ModelError(f"Data-parallel training needs at least 1 worker; got {workers}.")
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    loop = {"data_dir": str(data_dir), "dataset": dataset, "size": size, "config": config,
            "checkpoint_dir": str(checkpoint_dir)}  # fmt: skip
    with ray_session(address, num_cpus=workers, object_store_mb=object_store_mb):
        trainer = TorchTrainer(
            _worker, train_loop_config=loop,
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=False,
                                         resources_per_worker={"CPU": 1}),
            torch_config=TorchConfig(backend="gloo"),
            run_config=RunConfig(storage_path=str((checkpoint_dir / "ray").resolve()),
                                 name="train"),
        )  # fmt: skip
        try:
            outcome = trainer.fit()
        except Exception as exc:  # Ray wraps the worker's error in its own types
            raise ModelError(f"Data-parallel training failed on a worker: {exc}") from exc
    if outcome.checkpoint is None:
        raise ModelError("Data-parallel training ended without a trained network.")
    with outcome.checkpoint.as_directory() as folder:
        return _rebuild(Path(folder), config)
