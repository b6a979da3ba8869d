"""Seeded, resumable training of image classifiers on MedMNIST-style splits.

AdamW with a cosine schedule sized to the epoch or time budget, class weighting for
imbalance (chosen on validation by short pilot runs), MONAI augmentation, early stopping on
validation AUC with patience and an epoch floor in proportion to the run, checkpoints in
safetensors (no pickle) so a run can resume where it stopped. A deep ensemble trains its
member networks one after another, each as an independent seeded run.

Data-parallel training (`Shard`, driven by `services.distributed_training` on Ray Train):
every worker runs this same loop on the same seeded epoch order and takes its contiguous
part of each batch; DistributedDataParallel averages the gradients, so the weights stay
identical on every worker and every decision (epoch, early stopping, best state) is the
same. Times that steer a budget are agreed across workers (the slowest counts). Only rank 0
writes checkpoints and reports progress. Batch normalisation sees each worker's part of the
batch (PyTorch's SyncBatchNorm needs GPUs), so results match a single process in format,
not to the bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose
from monai.utils import set_determinism
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score
from torch import nn

from clinsight.data.medmnist import MedMNISTSplits, Split, TaskType
from clinsight.errors import ModelError
from clinsight.files import write_text_atomic
from clinsight.imaging.checkpoints import (
    WeightAverage,
    load_checkpoint,
    save_checkpoint,
)
from clinsight.imaging.networks import Ensemble, NetworkConfig, build_network
from clinsight.imaging.specs import CLASS_WEIGHTINGS, TrainConfig, early_stop_due
from clinsight.imaging.transforms import Preprocess, PreprocessSpec, build_augmentation

__all__ = [
    "EpochRecord",
    "MemberSummary",
    "Shard",
    "TrainResult",
    "class_weights",
    "cosine_lr",
    "data_fingerprint",
    "member_seed",
    "predict_logits",
    "seed_everything",
    "train_image_model",
]


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch of one network did: losses, validation AUC and timing.

    `member` is the network's index in an ensemble (0 for a single network).
    """

    epoch: int
    train_loss: float
    val_loss: float
    val_auc: float
    learning_rate: float
    seconds: float
    member: int = 0


@dataclass(frozen=True)
class MemberSummary:
    """How one network of a run trained: its seed, selected epoch and why it stopped."""

    member: int
    seed: int
    best_epoch: int
    best_val_auc: float
    epochs_run: int
    seconds: float
    stopped_because: str


@dataclass
class TrainResult:
    """A trained network with everything needed to evaluate and register it.

    `history` holds every epoch of every member in training order. For an ensemble,
    `epochs_run` and `seconds` are totals over its members, `best_epoch` is the members'
    mean selected epoch (rounded) and `stopped_because` names each member's reason;
    `members` has the per-network figures. `val_auc` is the returned network's
    validation AUC (the ensemble's own, for an ensemble). `class_weighting` is the loss
    weighting trained with and how it was chosen (pilot validation AUCs for "auto").
    """

    network: nn.Module
    network_config: NetworkConfig
    preprocess: PreprocessSpec
    config: TrainConfig
    history: list[EpochRecord]
    best_epoch: int
    epochs_run: int
    seconds: float
    data_sha256: str
    stopped_because: str
    members: tuple[MemberSummary, ...] = ()
    val_auc: float = math.nan
    class_weighting: dict[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[EpochRecord, int], None]
_MEMBER_SEED_STRIDE = 10_000


@dataclass(frozen=True)
class Shard:
    """This process's place in a data-parallel run: worker `rank` of `world` (a
    `torch.distributed` process group is initialised)."""

    rank: int
    world: int

    @property
    def lead(self) -> bool:
        """Whether this worker writes checkpoints and reports progress (rank 0)."""
        return self.rank == 0


def _agreed(value: float, shard: Shard | None) -> float:
    """`value` as every worker sees it: the largest over the workers (the slowest time)."""
    if shard is None or shard.world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    return float(tensor.item())


def _share_buffers(modules: list[nn.Module], shard: Shard | None) -> None:
    """Give every worker rank 0's buffers (batch-norm running statistics, which each
    worker updates from its own part of the batch), so validation and the saved state are
    the same everywhere."""
    if shard is None or shard.world == 1:
        return
    for module in modules:
        for buffer in module.buffers():
            torch.distributed.broadcast(buffer, src=0)


def _summed(value: float, shard: Shard | None) -> float:
    """The sum of `value` over the workers."""
    if shard is None or shard.world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(tensor)
    return float(tensor.item())


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """Run a block on `count` intra-op threads (small per-image ops are fastest on one)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _augmented_epoch(
    images: torch.Tensor, augment: Compose, preprocess: Preprocess
) -> torch.Tensor:
    """One epoch's augmented, normalised copy of the (N, C, S, S) training images in [0, 1].

    Done up front on one thread: per-image MONAI transforms are small operations that
    several threads (or a loader process beside the training threads) only slow down.
    """
    with _torch_threads(1):
        augmented = torch.stack([torch.as_tensor(augment(image)) for image in images])
    return torch.from_numpy(preprocess.normalize(augmented.clamp_(0.0, 1.0)))


def _targets(labels: NDArray[np.int64], task: TaskType) -> torch.Tensor:
    if task == TaskType.MULTI_LABEL:
        return torch.from_numpy(labels.astype(np.float32))
    return torch.from_numpy(labels[:, 0].astype(np.int64))


_EFFECTIVE_BETA = 0.999
_IMBALANCE_RATIO = 1.5  # largest / smallest class count from which weightings are piloted
_WEIGHTING_FILE = "class_weighting.json"


def class_weights(labels: NDArray[np.int64], k: int, scheme: str) -> NDArray[np.float64]:
    """Loss weight of each of `k` classes (single-label) or labels' positives (multi-label).

    "inverse": N / (K n_c) (multi-label: negatives / positives); "effective":
    (1 - beta) / (1 - beta^n_c), scaled to sum to K; "none": ones.

    Raises:
        ModelError: the scheme is unknown (or "auto", which must be resolved first).
    """
    if scheme not in CLASS_WEIGHTINGS[1:]:
        raise ModelError(f"Unknown class weighting {scheme!r}; use {', '.join(CLASS_WEIGHTINGS)}.")
    multi_label = labels.ndim == 2 and labels.shape[1] == k and k > 1 and labels.max() <= 1
    counts = labels.sum(axis=0) if multi_label else np.bincount(labels[:, 0], minlength=k)
    counts = counts.clip(min=1).astype(np.float64)
    if scheme == "none":
        return np.ones(k)
    if scheme == "inverse":
        return (len(labels) - counts) / counts if multi_label else len(labels) / (k * counts)
    weights = (1 - _EFFECTIVE_BETA) / (1 - _EFFECTIVE_BETA**counts)
    return np.asarray(weights * k / weights.sum(), dtype=np.float64)


def _loss_fn(task: TaskType, labels: NDArray[np.int64], scheme: str, k: int,
             smoothing: float) -> nn.Module:  # fmt: skip
    weights = torch.tensor(class_weights(labels, k, scheme), dtype=torch.float32)
    if task == TaskType.MULTI_LABEL:
        return nn.BCEWithLogitsLoss(pos_weight=weights)
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=smoothing)


def _auc(task: TaskType, labels: NDArray[np.int64], logits: NDArray[np.float32]) -> float:
    """Validation AUC used for early stopping (macro one-vs-rest; mean per label)."""
    if task == TaskType.MULTI_LABEL:
        aucs = [
            roc_auc_score(labels[:, j], logits[:, j])
            for j in range(labels.shape[1])
            if 0 < labels[:, j].sum() < len(labels)
        ]
        return float(np.mean(aucs)) if aucs else float("nan")
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    y = labels[:, 0]
    if probs.shape[1] == 2:
        return float(roc_auc_score(y, probs[:, 1]))
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    return float(
        roc_auc_score(y, probs[:, present] / probs[:, present].sum(1, keepdims=True),
                      multi_class="ovr", labels=present)
    )  # fmt: skip


def predict_logits(
    network: nn.Module, inputs: torch.Tensor, batch_size: int = 256
) -> NDArray[np.float32]:
    """Logits for already normalised inputs (N, C, S, S), in eval mode without gradients."""
    network.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            outputs.append(network(inputs[start : start + batch_size]).float().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy (MONAI draws from its global state), PyTorch and MONAI."""
    random.seed(seed)
    np.random.seed(seed)  # MONAI draws from the global state
    torch.manual_seed(seed)
    set_determinism(seed=seed)


def data_fingerprint(data: MedMNISTSplits) -> str:
    """sha256 over the training and validation arrays actually used."""
    digest = hashlib.sha256()
    for split in (Split.TRAIN, Split.VAL):
        images, labels = data.split(split)
        digest.update(np.ascontiguousarray(images).tobytes())
        digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def member_seed(seed: int, member: int) -> int:
    """The seed of an ensemble's `member`: member 0 keeps the run's seed, so a single network
    trains exactly as before ensembles existed; the others are spaced apart so the members
    of runs with nearby seeds (0, 1, 2) never coincide."""
    return seed + _MEMBER_SEED_STRIDE * member


@dataclass(frozen=True)
class _Inputs:
    """What every member trains and validates on, prepared once per run."""

    task: TaskType
    train: torch.Tensor
    train_targets: torch.Tensor
    val: torch.Tensor
    val_labels: NDArray[np.int64]
    val_targets: torch.Tensor
    loss_fn: nn.Module
    augment: Compose
    preprocess: Preprocess


def train_image_model(
    data: MedMNISTSplits,
    config: TrainConfig,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    shard: Shard | None = None,
) -> TrainResult:
    """Train a classifier on the train split, selecting the epoch on validation AUC.

    The test split is never touched here. With `checkpoint_dir`, state is saved after
    every epoch and a later call with the same directory resumes from it. With
    `config.ensemble` = K > 1, K networks are trained one after another, network k seeded
    by `member_seed(config.seed, k)`, each with its own early stopping and 1/K of the time
    budget, and returned as one `Ensemble`. Resume works for ensembles too: each network
    keeps its checkpoint in `checkpoint_dir / "member-k"`, so finished networks are
    reloaded as they were and the interrupted one continues. With `shard`, this process is
    one worker of a data-parallel run (see the module's docstring); every worker returns
    the same network.

    Raises:
        ModelError: the configuration cannot be trained (bad sizes, empty data).
    """
    if config.ensemble < 1:
        raise ModelError(f"ensemble must be 1 or more networks; got {config.ensemble}.")
    info = data.info
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    spec = PreprocessSpec(image_size=data.size, channels=info.channels)
    preprocess = Preprocess(spec)
    train_images, train_labels = data.split(Split.TRAIN)
    if config.train_subset is not None:
        order = np.random.default_rng(config.seed).permutation(len(train_images))
        keep = np.sort(order[: config.train_subset])
        train_images, train_labels = train_images[keep], train_labels[keep]
    val_images, val_labels = data.split(Split.VAL)
    if len(train_images) == 0 or len(val_images) == 0:
        raise ModelError("Training needs a non-empty train and validation split.")

    net_config = NetworkConfig(
        config.architecture, info.channels, info.num_classes, config.width, config.dropout
    )
    inputs = _Inputs(
        task=info.task,
        train=torch.from_numpy(preprocess.geometry_batch(train_images)),
        train_targets=_targets(train_labels, info.task),
        val=torch.from_numpy(preprocess.batch(val_images)),
        val_labels=val_labels,
        val_targets=_targets(val_labels, info.task),
        loss_fn=_loss_fn(info.task, train_labels, "none", info.num_classes, 0.0),
        augment=build_augmentation(config.augment, data.size),
        preprocess=preprocess,
    )
    lead = shard is None or shard.lead
    weighting = _resolve_weighting(
        inputs, train_labels, net_config, config, checkpoint_dir, save=lead
    )
    loss_fn = _loss_fn(
        info.task, train_labels, weighting["scheme"], info.num_classes, config.label_smoothing
    )
    inputs = replace(inputs, loss_fn=loss_fn)
    budget = None
    if config.time_budget_minutes is not None:
        pilot_seconds = _agreed(weighting.get("pilot_seconds", 0.0), shard)
        left = config.time_budget_minutes * 60.0 - pilot_seconds
        budget = max(left, 0.0) / config.ensemble
    networks: list[nn.Module] = []
    history: list[EpochRecord] = []
    summaries: list[MemberSummary] = []
    for member in range(config.ensemble):
        folder = checkpoint_dir
        if checkpoint_dir is not None and config.ensemble > 1:
            folder = checkpoint_dir / f"member-{member}"
        network, records, summary = _train_member(
            inputs,
            net_config,
            config,
            member,
            folder,
            progress if lead else None,
            budget,
            shard,
        )
        networks.append(network)
        history.extend(records)
        summaries.append(summary)
    network = networks[0] if config.ensemble == 1 else Ensemble(networks).eval()
    if config.ensemble > 1:
        net_config = replace(net_config, members=config.ensemble)
    return TrainResult(
        network=network,
        network_config=net_config,
        preprocess=spec,
        config=config,
        history=history,
        best_epoch=round(statistics.fmean(s.best_epoch for s in summaries)),
        epochs_run=len(history),
        seconds=sum(s.seconds for s in summaries),
        data_sha256=data_fingerprint(data),
        stopped_because=_stopped_because(summaries),
        members=tuple(summaries),
        val_auc=_auc(info.task, val_labels, predict_logits(network, inputs.val)),
        class_weighting=weighting,
    )


def _resolve_weighting(
    inputs: _Inputs,
    train_labels: NDArray[np.int64],
    net_config: NetworkConfig,
    config: TrainConfig,
    checkpoint_dir: Path | None,
    *,
    save: bool = True,
) -> dict[str, Any]:
    """The class weighting to train with and why: the configured one, or for "auto" the
    best validation AUC of `pilot_epochs`-epoch pilot runs of every weighting (skipped for a
    balanced single-label split: "none"; multi-label: "inverse"). A resumed run reuses it.
    Pilot runs are epoch-budgeted single-process runs, so every data-parallel worker that
    runs them chooses the same; only a worker with `save` writes the choice."""
    saved = None if checkpoint_dir is None else checkpoint_dir / _WEIGHTING_FILE
    if saved is not None and saved.is_file():
        stored: dict[str, Any] = json.loads(saved.read_text())
        return stored
    k = net_config.num_classes
    if config.class_weighting != "auto":
        class_weights(train_labels, k, config.class_weighting)  # refuses an unknown scheme
        return {"scheme": config.class_weighting, "chosen_by": "configuration"}
    if inputs.task == TaskType.MULTI_LABEL:
        return {"scheme": "inverse", "chosen_by": "multi-label default (positive weights)"}
    counts = np.bincount(train_labels[:, 0], minlength=k)
    ratio = float(counts.max() / max(counts.min(), 1))
    choice: dict[str, Any] = {"scheme": "none", "imbalance_ratio": ratio}
    if ratio < _IMBALANCE_RATIO:
        choice["chosen_by"] = f"balanced training split (largest/smallest < {_IMBALANCE_RATIO})"
    else:
        pilot = replace(config, epochs=config.pilot_epochs, time_budget_minutes=None)
        aucs: dict[str, float] = {}
        started = time.perf_counter()
        for scheme in CLASS_WEIGHTINGS[1:]:
            loss = _loss_fn(inputs.task, train_labels, scheme, k, config.label_smoothing)
            _, _, summary = _train_member(
                replace(inputs, loss_fn=loss), net_config, pilot, 0, None, None, None
            )
            aucs[scheme] = summary.best_val_auc
        best = max(aucs, key=lambda s: aucs[s] if math.isfinite(aucs[s]) else -math.inf)
        choice.update(
            scheme=best, validation_auc=aucs, pilot_epochs=config.pilot_epochs,
            pilot_seconds=time.perf_counter() - started,
            chosen_by="best validation AUC of the pilot runs",
        )  # fmt: skip
    if saved is not None and save:
        saved.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(saved, json.dumps(choice))
    return choice


def _stopped_because(summaries: list[MemberSummary]) -> str:
    """The shared reason the networks stopped, or each network's reason (numbered from 1)."""
    reasons = [s.stopped_because for s in summaries]
    if len(set(reasons)) == 1:
        return reasons[0]
    return "; ".join(f"network {s.member + 1}: {s.stopped_because}" for s in summaries)


def _train_member(
    inputs: _Inputs,
    net_config: NetworkConfig,
    config: TrainConfig,
    member: int,
    checkpoint_dir: Path | None,
    progress: ProgressCallback | None,
    budget: float | None,
    shard: Shard | None = None,
) -> tuple[nn.Module, list[EpochRecord], MemberSummary]:
    """Train one network with its own seed, early stopping and `budget` seconds (or none);
    with `shard`, as one worker of a data-parallel run."""
    seed = member_seed(config.seed, member)
    seed_everything(seed)
    network = build_network(net_config)
    parallel = shard is not None and shard.world > 1
    trained: nn.Module = torch.nn.parallel.DistributedDataParallel(network) if parallel else network
    lead = shard is None or shard.lead
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    average = None if config.ema_decay is None else WeightAverage(network, config.ema_decay)
    evaluated = network if average is None else average.network
    best_state = {k: v.detach().clone() for k, v in evaluated.state_dict().items()}
    history: list[EpochRecord] = []
    best_auc, best_epoch, start_epoch, elapsed = -math.inf, 0, 0, 0.0
    planned = config.epochs
    loaded = (
        None
        if checkpoint_dir is None
        else load_checkpoint(checkpoint_dir, network, optimizer, average)
    )
    if loaded is not None:
        best_state, meta = loaded
        history = [EpochRecord(**record) for record in meta["history"]]
        best_auc, best_epoch = meta["best_auc"], meta["best_epoch"]
        start_epoch, elapsed, planned = len(history), meta["seconds"], meta["planned"]

    stopped = "epochs"
    for epoch in range(start_epoch, config.epochs):
        over_budget = budget is not None and history and elapsed + history[-1].seconds > budget
        if epoch >= planned or over_budget:
            stopped = "time budget"
            break
        if history and early_stop_due(config, epoch, best_epoch, planned, elapsed, budget):
            stopped = "early stopping"
            break
        started = time.perf_counter()
        lr = cosine_lr(config.learning_rate, epoch, planned)
        for group in optimizer.param_groups:
            group["lr"] = lr
        seed_everything(seed * 1000 + epoch)
        inputs.augment.set_random_state(seed=seed * 1000 + epoch)
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        epoch_inputs = _augmented_epoch(inputs.train, inputs.augment, inputs.preprocess)
        shuffled = torch.randperm(len(epoch_inputs), generator=generator)
        size = config.batch_size
        stop = len(shuffled) - len(shuffled) % size if len(shuffled) > size else len(shuffled)
        network.train()
        total, count = 0.0, 0
        for start in range(0, stop, size):
            batch = shuffled[start : start + size]
            if parallel:
                assert shard is not None
                batch = batch.tensor_split(shard.world)[shard.rank]
            batch_inputs, targets = epoch_inputs[batch], inputs.train_targets[batch]
            optimizer.zero_grad(set_to_none=True)
            loss = inputs.loss_fn(trained(batch_inputs), targets)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(network)
            total += float(loss.detach()) * len(batch_inputs)
            count += len(batch_inputs)
        _share_buffers([network, evaluated], shard)
        val_logits = predict_logits(evaluated, inputs.val)
        val_loss = float(inputs.loss_fn(torch.from_numpy(val_logits), inputs.val_targets))
        val_auc = _auc(inputs.task, inputs.val_labels, val_logits)
        seconds = _agreed(time.perf_counter() - started, shard)
        elapsed += seconds
        train_loss = _summed(total, shard) / max(_summed(count, shard), 1)
        record = EpochRecord(epoch + 1, train_loss, val_loss, val_auc, lr, seconds, member)
        history.append(record)
        if val_auc > best_auc or (math.isnan(best_auc) and not math.isnan(val_auc)):
            best_auc, best_epoch = val_auc, epoch + 1
            best_state = {k: v.detach().clone() for k, v in evaluated.state_dict().items()}
        if budget is not None and epoch - start_epoch < 2:
            # Size the cosine schedule to the budget; the second epoch shows the steady pace.
            fit = epoch + 1 + int((budget - elapsed) // max(seconds, 1e-6))
            planned = max(epoch + 1, min(config.epochs, fit))
        if checkpoint_dir is not None and lead:
            meta = {
                "history": [asdict(r) for r in history], "best_auc": best_auc,
                "best_epoch": best_epoch, "seconds": elapsed, "planned": planned,
            }  # fmt: skip
            save_checkpoint(checkpoint_dir, network, best_state, optimizer, meta, average)
        if progress is not None:
            progress(record, planned)
    network.load_state_dict(best_state)
    network.eval()
    best = float(best_auc) if math.isfinite(best_auc) else math.nan  # no epoch had an AUC
    summary = MemberSummary(member, seed, best_epoch, best, len(history), elapsed, stopped)
    return network, history, summary


def cosine_lr(base: float, epoch: int, planned: int) -> float:
    """Cosine decay from `base` to 1% of it over the planned epochs, one warm-up epoch."""
    if epoch == 0 and planned > 2:
        return base * 0.2
    progress = min(1.0, epoch / max(planned - 1, 1))
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))
