"""The Ray connection of batch inference and tuning: a configured cluster, or a local one.

With an address (`Settings.ray_address`, from ``CLINSIGHT_RAY_ADDRESS`` or ``RAY_ADDRESS``)
Clinsight joins that cluster; without one it starts a local Ray instance of `num_cpus`
CPUs and a bounded object store, without the dashboard, and stops it afterwards. Nothing
is installed on the workers (no ``runtime_env``): they run the Clinsight they have, so a
cluster's nodes need the same Clinsight and the same paths to the data and the registry.
A session that finds Ray already connected (a test module's cluster) uses it as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from clinsight.errors import ConfigurationError

__all__ = ["ray_session"]


@contextmanager
def ray_session(
    address: str | None, *, num_cpus: int, object_store_mb: int = 256
) -> Iterator[None]:
    """Ray connected for the block: to `address`, or a local instance of `num_cpus` CPUs.

    Raises:
        ConfigurationError: the cluster at `address` cannot be reached.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(
                address="local", num_cpus=num_cpus,
                object_store_memory=object_store_mb * 2**20, include_dashboard=False,
                logging_level=logging.WARNING, log_to_driver=False,
            )  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ConfigurationError(
            f"Cannot start or reach {where}; check CLINSIGHT_RAY_ADDRESS (or RAY_ADDRESS), "
            "or unset it to run on this machine"
        ) from exc
    try:
        yield
    finally:
        ray.shutdown()
