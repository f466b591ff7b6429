"""Issue 33, the PyTorch zoo: a member of every torchvision classification family the issue names
and three timm models, random weights, each built whole through the CLI as a user runs it (a
process of its own, on Keras's torch backend): every conv layer's page, filters, feature maps and
mosaic, health.csv, summary.md, the single file, predictions with the weights' class names.

Run it alone with ``python -m pytest -m zoo tests/test_torch_zoo.py``. Settings are the smallest
that still exercise every phase: one ascent step, two filters a layer.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.zoo

if os.environ.get("CNNVIZ_REQUIRE_BACKENDS") == "1":
    import timm  # noqa: F401  CI installs the torch extra: its absence is a failure there
    import torch
    import torchvision  # noqa: F401
else:
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    pytest.importorskip("timm")

ROOT = Path(__file__).resolve().parent.parent

# ResNet, MobileNetV3, EfficientNet, ConvNeXt, DenseNet, RegNet, GoogLeNet/Inception, SqueezeNet:
# the smallest of each family, and timm's own blocks (a deep stem, squeeze-excite, ConvNeXt's atto).
MODELS = [
    "torchvision:resnet50", "torchvision:mobilenet_v3_small", "torchvision:efficientnet_b0",
    "torchvision:convnext_tiny", "torchvision:densenet121", "torchvision:regnet_y_400mf",
    "torchvision:googlenet", "torchvision:inception_v3", "torchvision:squeezenet1_1",
    "timm:resnet18d", "timm:mobilenetv3_small_100", "timm:convnext_atto",
]


@pytest.mark.parametrize("model", MODELS)
def test_every_pytorch_family_builds_whole(model, tmp_path, photo_path):
    from cnnviz_report.analysis.torch_loading import load_torch_model
    from cnnviz_report.config import ReportConfig

    loaded = load_torch_model(ReportConfig(model=model, weights="none"))
    info = loaded.walk.inspect()
    convs = [layer.qualified_name for layer in info.conv_layers]
    assert info.total_params == sum(p.numel() for p in loaded.model.parameters())
    done = subprocess.run(
        [sys.executable, "-m", "cnnviz_report", "build", model, "--weights", "none", "--images", photo_path,
         "--max-filters", "2", "--ascent-steps", "1", "--no-stream", "--no-cache", "--quiet", "--out", "site",
         "--single-file", "report.html"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-3000:]
    site = tmp_path / "site"
    manifest = json.loads((site / "manifest.json").read_text())
    assert [layer["name"] for layer in manifest["layers"]] == convs
    assert not manifest["failed_layers"]
    for layer in manifest["layers"]:
        folder = site / layer["page"].removesuffix(".html")
        assert (site / layer["page"]).is_file() and (folder / "mosaic.png").is_file(), layer["name"]
        assert (folder / "fmaps-01-grace_hopper.png").is_file(), layer["name"]
    rows = list(csv.DictReader((site / "health.csv").open()))
    for layer in info.conv_layers:
        numbers = [int(row["filter"]) for row in rows if row["layer"] == layer.qualified_name]
        assert numbers == list(range(layer.filters)), layer.qualified_name
    index = (site / "index.html").read_text()
    assert ("torchvision&#39;s" if model.startswith("torchvision:") else "timm&#39;s pretrained_cfg") in index
    image_page = (site / "images" / "01-grace_hopper.html").read_text()
    assert "What the model predicts" in image_page  # with the class names that came with the metadata
    assert sum(f"<td>{name}</td>" in image_page for name in set(loaded.class_names)) >= 3
    summary = (site / "summary.md").read_text().replace("\\_", "_")
    single = (tmp_path / "report.html").read_text()
    assert all(name in summary and name in single for name in (convs[0], convs[-1]))
