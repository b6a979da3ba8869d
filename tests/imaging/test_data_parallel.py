"""Data-parallel training (`Shard`): two gloo workers in two processes, no Ray."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.multiprocessing.spawn import spawn

from clinsight.data.medmnist import TaskType
from clinsight.imaging.specs import TrainConfig
from clinsight.imaging.training import Shard, train_image_model
from tests.support.synthetic import synthetic_splits

CONFIG = TrainConfig(architecture="cnn", width=8, epochs=3, batch_size=16, seed=5,
                     class_weighting="none", threads=1)  # fmt: skip


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        data = synthetic_splits(TaskType.BINARY, n=64)
        result = train_image_model(data, CONFIG, shard=Shard(rank, world))
        state = {k: v.contiguous() for k, v in result.network.state_dict().items()}
        save_file(state, str(Path(out) / f"rank{rank}.safetensors"))
        losses = torch.tensor([r.train_loss for r in result.history])
        save_file({"losses": losses}, str(Path(out) / f"history{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    spawn(_worker, args=(2, _port(), str(out)), nprocs=2, join=True)  # type: ignore[no-untyped-call]
    return out


def test_both_workers_end_with_the_same_network_and_history(two_workers: Path) -> None:
    first, second = (load_file(str(two_workers / f"rank{r}.safetensors")) for r in (0, 1))
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    losses = [load_file(str(two_workers / f"history{r}.safetensors"))["losses"] for r in (0, 1)]
    assert torch.equal(losses[0], losses[1])


def test_the_data_parallel_run_learns_like_a_single_process(two_workers: Path) -> None:
    data = synthetic_splits(TaskType.BINARY, n=64)
    single = train_image_model(data, CONFIG)
    parallel = load_file(str(two_workers / "history0.safetensors"))["losses"]
    alone = torch.tensor([r.train_loss for r in single.history])
    # Same seeded batches, gradients averaged over the halves: the losses follow the
    # single process closely (batch normalisation sees half batches, so not exactly).
    assert parallel[-1] < parallel[0]
    assert torch.allclose(parallel, alone, atol=0.15)
    single_state = single.network.state_dict()
    shared = load_file(str(two_workers / "rank0.safetensors"))
    assert shared.keys() == {k for k, v in single_state.items()}
    assert all(shared[k].shape == single_state[k].shape for k in shared)
