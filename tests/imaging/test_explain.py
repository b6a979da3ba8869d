"""Grad-CAM on the project's networks, its localisation on a known region, and the overlay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image
from torch import nn

from clinsight.errors import DataError, ModelError, UnsupportedImageError
from clinsight.imaging.explain import grad_cam, save_overlay
from clinsight.imaging.networks import CompactCNN, Ensemble, NetworkConfig, build_network


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("architecture", "channels", "size"),
    [("cnn", 1, 28), ("cnn", 3, 32), ("resnet10", 1, 28), ("resnet18", 3, 28)],
)
def test_map_shape_and_range(architecture: str, channels: int, size: int) -> None:
    config = NetworkConfig(architecture, in_channels=channels, num_classes=3, width=4)
    model = build_network(config)
    cam = grad_cam(model, config.cam_layer, torch.rand(1, channels, size, size))
    assert cam.shape == (size, size)
    assert cam.dtype == np.float32
    assert cam.min() >= 0.0
    assert cam.max() <= 1.0
    assert cam.max() in (0.0, 1.0)


def test_callers_model_is_left_untouched() -> None:
    config = NetworkConfig("resnet10", in_channels=1, num_classes=2, width=4)
    model = build_network(config).train()
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    for class_index in (0, 1):
        grad_cam(model, config.cam_layer, torch.rand(1, 1, 28, 28), class_index)
    assert model.training
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())


def _brightness_cnn() -> CompactCNN:
    """A CNN whose features copy the (pooled) input, so class 1 rises with brightness."""
    model = CompactCNN(in_channels=1, num_classes=2, width=2)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.zero_()
                module.weight[:, :, 1, 1] = 1.0 / module.in_channels
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
                assert module.running_var is not None
                module.running_var.fill_(1.0 - module.eps)
        head = model.head[-1]
        assert isinstance(head, nn.Linear)
        head.weight.copy_(torch.tensor([[-1.0] * 8, [1.0] * 8]))
        head.bias.zero_()
    return model


def test_map_points_at_the_region_that_drives_the_prediction() -> None:
    image = 0.05 * torch.rand(1, 1, 32, 32)
    image[0, 0, 4:12, 3:11] += 0.9  # evidence only in the top-left quadrant
    model = _brightness_cnn()
    cam = grad_cam(model, "features", image, class_index=1)
    top_left = cam[:16, :16].sum() / cam.sum()
    assert top_left > 0.8
    row, col = np.unravel_index(cam.argmax(), cam.shape)
    assert row < 16
    assert col < 16
    assert cam.max() == pytest.approx(1.0)
    assert grad_cam(model, "features", image) == pytest.approx(cam)  # predicted class is 1
    # Nothing in the image raises class 0, so its map is empty rather than arbitrary.
    assert not grad_cam(model, "features", image, class_index=0).any()


def test_works_under_inference_mode() -> None:
    config = NetworkConfig("cnn", in_channels=1, num_classes=2, width=4)
    model = build_network(config)
    with torch.inference_mode():
        image = torch.rand(1, 1, 28, 28)
        cam = grad_cam(model, config.cam_layer, image, class_index=0)
    assert cam.shape == (28, 28)


def test_bad_arguments_raise() -> None:
    config = NetworkConfig("cnn", in_channels=1, num_classes=2, width=4)
    model = build_network(config)
    image = torch.rand(1, 1, 28, 28)
    with pytest.raises(ModelError, match="CompactCNN has no layer 'layer4'"):
        grad_cam(model, "layer4", image)
    with pytest.raises(ModelError, match="class_index 2 is out of range for a network with 2"):
        grad_cam(model, "features", image, class_index=2)
    with pytest.raises(UnsupportedImageError, match=r"shape \(1, C, H, W\); got \(2, 1, 28, 28\)"):
        grad_cam(model, "features", torch.rand(2, 1, 28, 28))
    with pytest.raises(UnsupportedImageError, match=r"torch\.uint8"):
        grad_cam(model, "features", torch.zeros(1, 1, 28, 28, dtype=torch.uint8))


def test_overlay_has_source_size_and_blends(tmp_path: Path) -> None:
    source = np.full((48, 64), 0.5)
    cam = np.ones((7, 7), dtype=np.float32)
    path = save_overlay(source, cam, tmp_path / "out" / "overlay.png", alpha=0.4)
    assert path == tmp_path / "out" / "overlay.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (64, 48)
        pixels = np.asarray(image.convert("RGB"))
    red = np.asarray(colormaps["jet"](1.0)[:3])
    expected = np.round(255 * (0.6 * 0.5 + 0.4 * red)).astype(np.uint8)
    assert (pixels == expected).all()


def test_overlay_of_a_colour_image_keeps_it_where_alpha_is_zero(tmp_path: Path) -> None:
    source = np.random.default_rng(0).random((20, 30, 3))
    save_overlay(source, np.random.default_rng(1).random((5, 5)), tmp_path / "o.png", alpha=0.0)
    with Image.open(tmp_path / "o.png") as image:
        assert (np.asarray(image) == np.round(source * 255).astype(np.uint8)).all()


def test_overlay_upsamples_the_map(tmp_path: Path) -> None:
    cam = np.zeros((4, 4), dtype=np.float32)
    cam[:2, :2] = 1.0
    save_overlay(np.zeros((40, 40)), cam, tmp_path / "o.png", alpha=1.0)
    with Image.open(tmp_path / "o.png") as image:
        pixels = np.asarray(image)
    hot = np.round(255 * np.asarray(colormaps["jet"](1.0)[:3])).astype(np.uint8)
    cold = np.round(255 * np.asarray(colormaps["jet"](0.0)[:3])).astype(np.uint8)
    assert (pixels[2, 2] == hot).all()
    assert (pixels[37, 37] == cold).all()


@pytest.mark.parametrize(
    ("source", "cam", "alpha", "error", "match"),
    [
        (np.zeros((8, 8, 4)), np.zeros((2, 2)), 0.4, UnsupportedImageError, r"\(H, W, 3\)"),
        (np.full((8, 8), 255.0), np.zeros((2, 2)), 0.4, UnsupportedImageError, r"in \[0, 1\]"),
        (np.zeros((8, 8)), np.zeros((1, 2, 2)), 0.4, UnsupportedImageError, "2-D array"),
        (np.zeros((8, 8)), np.full((2, 2), 2.0), 0.4, UnsupportedImageError, "2-D array"),
        (np.zeros((8, 8)), np.zeros((2, 2)), 1.5, DataError, "alpha must lie in"),
    ],
)
def test_overlay_rejects_bad_input(
    tmp_path: Path, source: np.ndarray, cam: np.ndarray, alpha: float, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        save_overlay(source, cam, tmp_path / "o.png", alpha=alpha)
    assert not (tmp_path / "o.png").exists()


def test_ensemble_map_has_the_image_shape_and_leaves_the_model_untouched() -> None:
    config = NetworkConfig("resnet10", in_channels=1, num_classes=2, width=4, members=2)
    model = build_network(config).eval()
    cam = grad_cam(model, config.cam_layer, torch.rand(1, 1, 28, 28))
    assert cam.shape == (28, 28)
    assert cam.dtype == np.float32
    assert cam.min() >= 0.0
    assert cam.max() in (0.0, 1.0)
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


def test_ensemble_map_is_the_rescaled_mean_of_its_members_maps() -> None:
    members = [build_network(NetworkConfig("cnn", 1, 2, width=4)).eval() for _ in range(3)]
    model = Ensemble(members).eval()
    image = torch.rand(1, 1, 28, 28)
    with torch.no_grad():
        predicted = int(model(image).argmax())
    for class_index in (0, 1):
        maps = np.mean([grad_cam(m, "features", image, class_index) for m in members], axis=0)
        expected = (maps - maps.min()) / (maps.max() - maps.min())
        cam = grad_cam(model, "features", image, class_index)
        np.testing.assert_allclose(cam, expected, rtol=0, atol=1e-5)
    # By default every member's map is of the ensemble's predicted class.
    assert grad_cam(model, "features", image) == pytest.approx(
        grad_cam(model, "features", image, predicted)
    )
    with pytest.raises(ModelError, match="Ensemble has no layer 'layer4'"):
        grad_cam(model, "layer4", image)
