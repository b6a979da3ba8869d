"""Networks: shapes for every architecture, exact multiply-add counts, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clinsight.errors import ModelError
from clinsight.imaging.networks import (
    ARCHITECTURES,
    Ensemble,
    NetworkConfig,
    build_network,
    count_macs,
)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize(("channels", "classes"), [(1, 2), (3, 14)])
def test_every_architecture_maps_images_to_logits(
    architecture: str, channels: int, classes: int
) -> None:
    config = NetworkConfig(architecture, channels, classes, width=4)
    network = build_network(config).eval()
    with torch.no_grad():
        out = network(torch.zeros(5, channels, 28, 28))
    assert out.shape == (5, classes)
    assert config.cam_layer in dict(network.named_modules())


def test_config_round_trips_through_json_form() -> None:
    config = NetworkConfig("resnet18", 1, 2, width=8, dropout=0.2)
    assert NetworkConfig.from_dict(config.to_dict()) == config


def test_count_macs_matches_a_hand_count() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    conv = 4 * 8 * 8 * 1 * 3 * 3
    linear = 2 * 4 * 8 * 8
    assert count_macs(model, (1, 8, 8)) == conv + linear


def test_compact_cnn_mac_count_is_stable() -> None:
    network = build_network(NetworkConfig("cnn", 1, 2, width=32))
    assert count_macs(network, (1, 28, 28)) == 29_127_424


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (NetworkConfig("vgg99", 1, 2), "Unknown architecture 'vgg99'"),
        (NetworkConfig("cnn", 2, 2), "in_channels=2"),
        (NetworkConfig("cnn", 1, 0), "num_classes=0"),
    ],
)
def test_invalid_configs_are_refused(config: NetworkConfig, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        build_network(config)


def test_ensemble_logits_are_the_mean_of_its_members() -> None:
    torch.manual_seed(0)
    network = build_network(NetworkConfig("cnn", 1, 3, width=4, members=2)).eval()
    assert isinstance(network, Ensemble)
    assert len(network.members) == 2
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        first, second = (member(x) for member in network.members)
        logits = network(x)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(logits, (first + second) / 2)
    assert "members.1.features" in dict(network.named_modules())


def test_ensemble_size_round_trips_and_old_configs_load_as_single_networks() -> None:
    config = NetworkConfig("resnet10", 3, 2, width=4, members=3)
    assert NetworkConfig.from_dict(config.to_dict()) == config
    old = {"architecture": "cnn", "in_channels": 1, "num_classes": 2, "width": 4,
           "dropout": 0.1, "extra": {}}  # fmt: skip
    loaded = NetworkConfig.from_dict(old)
    assert loaded.members == 1
    assert not isinstance(build_network(loaded), Ensemble)


def test_empty_ensembles_are_refused() -> None:
    with pytest.raises(ModelError, match=r"members=0 \(>=1\)"):
        build_network(NetworkConfig("cnn", 1, 2, members=0))
    with pytest.raises(ModelError, match="at least one member"):
        Ensemble([])
