"""Issue 33, the libraries' models: ``torchvision:NAME`` and ``timm:NAME`` are built by the library,
and what the model expects (input size, mean and std, class names) is read from its weights' own
metadata; pretrained weights come from the library's cache, or one line names the file looked for;
a state dict file is read without running code. No download happens: the pretrained case plants
the file in a cache of the test's own."""

from __future__ import annotations

import os
import subprocess
from importlib.metadata import version
import sys
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CNNVIZ_REQUIRE_BACKENDS") == "1":
    import timm  # CI installs the torch extra (torch, torchvision, timm): their absence is a failure there
    import torch
    import torchvision
else:
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    timm = pytest.importorskip("timm")

from cnnviz_report.analysis.torch_loading import load_torch_model  # noqa: E402
from cnnviz_report.config import ReportConfig  # noqa: E402
from cnnviz_report.errors import ModelLoadError, UsageError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _parameters(module) -> dict:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def test_torchvision_metadata_gives_size_normalisation_and_class_names():
    loaded = load_torch_model(ReportConfig(model="torchvision:efficientnet_b1", weights="none"))
    # EfficientNet-B1's weights are evaluated at 240 (their transforms), ImageNet's mean and std
    assert loaded.input_hw == (240, 240) and loaded.preprocess_mode == "torch"
    assert "EfficientNet_B1_Weights.IMAGENET1K_V2 transforms (240 × 240)" in loaded.preprocess_reason
    assert len(loaded.class_names) == 1000 and loaded.class_names[:2] == ("tench", "goldfish")
    assert loaded.channels_first and loaded.free_size and loaded.weights_label.startswith("none (random")
    assert loaded.code_digest == f"torchvision=={version('torchvision')}"  # the library's forward, for the cache
    # --input-size and --preprocess still say otherwise
    other = load_torch_model(ReportConfig(model="torchvision:efficientnet_b1", weights="none", input_size=(160, 192),
                                          preprocess="unit"))
    assert other.input_hw == (160, 192) and other.preprocess_mode == "unit" and other.preprocess_reason == ""
    resized = load_torch_model(ReportConfig(model="torchvision:efficientnet_b1", weights="none", input_size=(160, 160)))
    assert resized.preprocess_reason.endswith("transforms (240 × 240); the size from --input-size")


def test_timm_metadata_gives_its_own_mean_and_std_and_imagenet_names():
    loaded = load_torch_model(ReportConfig(model="timm:inception_v3", weights="none"))
    assert loaded.input_hw == (299, 299) and loaded.preprocess_mode == "tf"  # Inception's mean = std = 0.5
    # a mean and std that are neither ImageNet's nor 0.5 are said as numbers and applied as such
    clip = load_torch_model(ReportConfig(model="timm:resnet50_clip_gap.openai", weights="none", input_size=(64, 64)))
    assert clip.preprocess_mode == "pixels / 255, then mean (0.481, 0.458, 0.408) and std (0.269, 0.261, 0.276)"
    pixels = np.full((1, 2, 2, 3), 255.0, np.float32)
    expected = (1.0 - np.array([0.48145466, 0.4578275, 0.40821073])) / np.array([0.26862954, 0.26130258, 0.27577711])
    np.testing.assert_allclose(clip.model_input(pixels)[0, :, 0, 0], expected, rtol=1e-5)
    tiny = load_torch_model(ReportConfig(model="timm:resnet18d", weights="none"))
    assert tiny.preprocess_mode == "torch" and "timm's pretrained_cfg for resnet18d.ra2_in1k (224 × 224)" in \
        tiny.preprocess_reason
    assert tiny.class_names[0] == "tench" and len(tiny.class_names) == 1000


def test_torchvision_pretrained_weights_come_from_torch_hubs_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(11)
    planted = torchvision.models.squeezenet1_1()
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(planted.state_dict(), checkpoints / "squeezenet1_1-b8a52dc0.pth")
    loaded = load_torch_model(ReportConfig(model="torchvision:squeezenet1_1"))
    assert loaded.weights_label.startswith("SqueezeNet1_1_Weights.IMAGENET1K_V1 (torchvision's default, from ")
    for name, tensor in _parameters(planted).items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name


def test_timm_pretrained_weights_come_from_the_hugging_face_cache_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from safetensors.torch import save_file

    torch.manual_seed(12)
    planted = timm.create_model("resnet18d")
    snapshot = tmp_path / "hf" / "models--timm--resnet18d.ra2_in1k" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    save_file(planted.state_dict(), str(snapshot / "model.safetensors"))
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # found in the cache: nothing is asked of the Hub
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    loaded = load_torch_model(ReportConfig(model="timm:resnet18d"))
    assert loaded.weights_label == f"timm/resnet18d.ra2_in1k (timm's default, from {snapshot / 'model.safetensors'})"
    for name, tensor in _parameters(planted).items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name


def test_missing_pretrained_weights_name_the_file_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError) as caught:  # no internet here: the download fails at once
        load_torch_model(ReportConfig(model="torchvision:squeezenet1_1", weights="imagenet"))
    expected = str(tmp_path / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth")
    assert f"pretrained weights {expected} are not in torch hub's cache" in str(caught.value)
    assert "\n" not in str(caught.value)

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1: no minute of retries
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelLoadError) as caught:
        load_torch_model(ReportConfig(model="timm:resnet18d"))
    assert f"pretrained weights timm/resnet18d.ra2_in1k in the Hugging Face cache ({tmp_path / 'hf'})" in \
        str(caught.value)


def test_a_state_dict_file_loads_into_a_library_model_and_a_wrong_one_is_refused(tmp_path):
    torch.manual_seed(3)
    trained = timm.create_model("resnet18d")
    torch.save(trained.state_dict(), tmp_path / "resnet18d.pth")
    loaded = load_torch_model(ReportConfig(model="timm:resnet18d", weights=str(tmp_path / "resnet18d.pth")))
    assert loaded.weights_label == "resnet18d.pth"
    for name, tensor in _parameters(trained).items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name
    with pytest.raises(ModelLoadError, match="does not fit timm:convnext_atto: .*Missing key"):
        load_torch_model(ReportConfig(model="timm:convnext_atto", weights=str(tmp_path / "resnet18d.pth")))


@pytest.mark.parametrize("model, expected", [
    ("torchvision:resnet5000", "torchvision has no classification model 'resnet5000'"),
    ("torchvision:fasterrcnn_resnet50_fpn", "torchvision has no classification model"),  # a detector
    ("timm:not_a_net", "timm has no model 'not_a_net'"),
])
def test_unknown_library_names_are_one_line(model, expected):
    with pytest.raises(UsageError, match=expected):
        load_torch_model(ReportConfig(model=model, weights="none"))


def test_a_torchvision_model_builds_with_its_categories_and_metadata_on_the_index(tmp_path, photo_path):
    done = subprocess.run(
        [sys.executable, "-m", "cnnviz_report", "build", "torchvision:squeezenet1_1", "--weights", "none",
         "--layers", "features.0", "classifier.1", "--images", photo_path, "--max-filters", "4", "--ascent-steps", "2",
         "--out", "site", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-3000:]
    site = tmp_path / "site"
    index = (site / "index.html").read_text()
    assert "torchvision&#39;s SqueezeNet1_1_Weights.IMAGENET1K_V1 transforms (224 × 224)" in index
    image_page = (site / "images" / "01-grace_hopper.html").read_text()
    names = set(torchvision.models.SqueezeNet1_1_Weights.DEFAULT.meta["categories"])
    shown = [name for name in names if f"<td>{name}</td>" in image_page]
    assert len(shown) >= 3, "the predictions table names classes from torchvision's categories"
    assert (site / "layers" / "000-features.0" / "mosaic.png").stat().st_size > 500


@pytest.mark.parametrize("model, expected", [
    ("torchvision:resnet5000", "error: MODEL: torchvision:resnet5000: torchvision has no classification model"),
    ("torchvision:squeezenet1_1", "error: torchvision:squeezenet1_1: pretrained weights "),
    ("timm:resnet18d", "error: timm:resnet18d: pretrained weights timm/resnet18d.ra2_in1k in the Hugging Face cache"),
])
def test_a_bad_library_model_is_one_line_and_leaves_no_site(model, expected, tmp_path):
    """As a user meets it: the CLI, offline caches of the test's own, a non-zero exit, no folder."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TORCH_HOME=str(tmp_path / "torch"), HF_HOME=str(tmp_path / "hf"),
               HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "cnnviz_report", "build", model, "--out", "site", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and expected in lines[0], done.stderr[-2000:]
    assert not (tmp_path / "site").exists()
