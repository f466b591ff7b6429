"""KerasHub's vision models through the whole report: backbones of several families and an
ImageClassifier, built from their configs with random weights and saved as ``.keras`` files, as a
user of KerasHub has them. Their classes come from the installed keras_hub (safe mode stays on);
a class the file names under a KerasHub name but from another module is still refused.

Skipped without keras-hub, except when ``CNNVIZ_REQUIRE_BACKENDS=1`` (``.ci/run``). Each file is
built on TensorFlow here, and all of them, as one gallery, on every other backend installed.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnnviz_report.cli import main

pytestmark = pytest.mark.zoo
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def keras_hub():
    if importlib.util.find_spec("keras_hub") is None:
        if os.environ.get("CNNVIZ_REQUIRE_BACKENDS") == "1":
            pytest.fail("keras-hub is required here (CNNVIZ_REQUIRE_BACKENDS=1) but not installed")
        pytest.skip("keras-hub is not installed")
    import keras_hub as module

    return module


def _backbones(hub) -> dict:
    """family -> a small backbone of it (the presets' architectures, fewer and narrower blocks)."""
    shape = (48, 48, 3)
    return {
        "resnet": lambda: hub.models.ResNetBackbone(
            input_conv_filters=[16], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 32],
            stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="bottleneck_block",
            use_pre_activation=True, image_shape=shape),
        "densenet": lambda: hub.models.DenseNetBackbone(stackwise_num_repeats=[2, 2], growth_rate=8,
                                                         image_shape=shape),
        "vgg": lambda: hub.models.VGGBackbone(stackwise_num_repeats=[1, 2], stackwise_num_filters=[8, 16],
                                              image_shape=shape),
        "cspnet": lambda: hub.models.CSPNetBackbone(
            stem_filters=16, stem_kernel_size=3, stem_strides=2, stackwise_depth=[1, 1], stackwise_strides=[1, 2],
            stackwise_num_filters=[32, 64], block_type="dark_block", stage_type="dark", image_shape=shape),
    }


def _seeded(model):
    """Random weights, with the BatchNormalizations' variances kept positive (as trained ones are)."""
    rng = np.random.default_rng(2)
    for layer in model._flatten_layers(include_self=False):
        if layer.weights and not list(layer._flatten_layers(include_self=False)):  # a leaf layer
            weights = [rng.normal(0, 0.2, w.shape).astype("float32") for w in layer.get_weights()]
            if type(layer).__name__ == "BatchNormalization":
                weights[-1] = np.abs(weights[-1]) + 0.5
            layer.set_weights(weights)
    return model


def _conv_rows(site: Path) -> list[dict]:
    with open(site / "health.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("family", ["resnet", "densenet", "vgg", "cspnet"])
def test_a_keras_hub_backbone_file_builds_whole(keras_hub, family, photo_path, tmp_path):
    path = tmp_path / f"{family}.keras"
    _seeded(_backbones(keras_hub)[family]()).save(path)
    out = tmp_path / "site"
    assert main(["build", str(path), "--out", str(out), "--images", photo_path, "--ascent-steps", "2",
                 "--max-filters", "2", "--quiet", "--no-cache"]) == 0
    rows = _conv_rows(out)
    layers = {row["layer"] for row in rows}
    climbed = {row["layer"] for row in rows if row["ascent_activation"]}
    assert len(layers) >= 3 and climbed == layers  # every conv layer reached, and climbed
    assert (out / "index.html").is_file() and len(list((out / "layers").glob("*.html"))) >= len(layers)
    assert json.loads((out / "manifest.json").read_text())["versions"]["keras_hub"] == keras_hub.__version__


@pytest.fixture(scope="module")
def classifier_file(keras_hub, tmp_path_factory):
    hub = keras_hub
    backbone = _backbones(hub)["resnet"]()
    converter = hub.layers.ResNetImageConverter(image_size=(48, 48), scale=[1 / 58.4, 1 / 57.1, 1 / 57.4],
                                                offset=[-2.12, -2.04, -1.80])
    preprocessor = hub.models.ResNetImageClassifierPreprocessor(image_converter=converter)
    model = _seeded(hub.models.ResNetImageClassifier(backbone=backbone, num_classes=5, preprocessor=preprocessor,
                                                     activation="softmax"))
    path = tmp_path_factory.mktemp("hub") / "classifier.keras"
    model.save(path)
    return path


def test_an_image_classifier_takes_its_converters_preprocessing_and_explains(classifier_file, photo_path, tmp_path):
    out = tmp_path / "site"
    assert main(["build", str(classifier_file), "--out", str(out), "--images", photo_path, "--ascent-steps", "2",
                 "--max-filters", "2", "--quiet", "--no-cache"]) == 0
    index = (out / "index.html").read_text()
    assert "classifier.keras (KerasHub ResNetImageClassifier)" in index
    assert "ImageConverter: pixels x (0.01712, 0.01751, 0.01742) + (-2.12, -2.04, -1.8)" in index
    explained = json.loads((out / "attribution.json").read_text())["images"][0]
    assert len(explained["top"]) == 5 and explained["gradcam"]["layer"]


def test_a_keras_hub_name_from_another_module_is_refused(classifier_file, tmp_path, capsys):
    """The registered name is KerasHub's, the module is not: the file asks for code of its own."""
    forged = tmp_path / "forged.keras"
    with zipfile.ZipFile(classifier_file) as source, zipfile.ZipFile(forged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                data = data.replace(b'"module": "keras_hub.src.models.resnet.resnet_backbone"',
                                    b'"module": "evil.backbone"')
            target.writestr(item, data)
    assert main(["build", str(forged), "--out", str(tmp_path / "site"), "--quiet"]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "evil.backbone" in error[0] and "outside Keras" in error[0]
    assert not (tmp_path / "site").exists()


@pytest.fixture(scope="module")
def backbone_files(keras_hub, tmp_path_factory):
    folder = tmp_path_factory.mktemp("backbones")
    for family, make in _backbones(keras_hub).items():
        _seeded(make()).save(folder / f"{family}.keras")
    return sorted(folder.glob("*.keras"))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_every_family_and_the_classifier_build_on_every_backend(backbone_files, classifier_file, photo_path,
                                                                tmp_path, backend):
    """One gallery of the four backbones and the classifier, in one process on the backend."""
    if importlib.util.find_spec(backend) is None:
        if os.environ.get("CNNVIZ_REQUIRE_BACKENDS") == "1":
            pytest.fail(f"the {backend} backend is required here but not installed")
        pytest.skip(f"{backend} is not installed")
    out = tmp_path / "gallery"
    models = [str(path) for path in [*backbone_files, classifier_file]]
    result = subprocess.run([sys.executable, "-m", "cnnviz_report", "gallery", *models, "--out", str(out),
                             "--images", photo_path, "--ascent-steps", "2", "--max-filters", "2", "--quiet",
                             "--no-cache", "--backend", backend], capture_output=True, text=True, cwd=ROOT,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""  # KerasHub imports TensorFlow itself: its start-up lines stay off the console
    sites = sorted(path.parent for path in out.glob("*/health.csv"))
    assert len(sites) == len(models)
    for site in sites:
        rows = _conv_rows(site)
        assert rows and {row["layer"] for row in rows if row["ascent_activation"]} == {row["layer"] for row in rows}
        assert json.loads((site / "manifest.json").read_text())["versions"]["backend"] == backend


def test_a_preset_is_read_from_the_local_cache_and_a_missing_one_is_one_line(keras_hub, photo_path, tmp_path,
                                                                            monkeypatch, capsys):
    """``keras_hub:NAME`` reads the preset KerasHub's cache holds (never downloads), with its image
    size, its converter's preprocessing and ImageNet's class names; not cached, one line naming the
    preset and where it looked, and nothing written."""
    from kagglehub.cache import get_cached_path
    from kagglehub.handle import parse_model_handle

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    out = tmp_path / "site"
    assert main(["build", "keras_hub:resnet_18_imagenet", "--out", str(out), "--quiet"]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "keras_hub:resnet_18_imagenet" in error[0] and "local KerasHub cache" in error[0]
    assert str(tmp_path / "kagglehub") in error[0] and not out.exists()
    assert main(["build", "keras_hub:resnet_18_imagenett", "--out", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no KerasHub preset" in error[0] and "resnet_18_imagenet" in error[0]
    assert not out.exists()

    handle = keras_hub.models.ImageClassifier.presets["resnet_18_imagenet"]["kaggle_handle"]
    folder = get_cached_path(parse_model_handle(handle.removeprefix("kaggle://")))
    converter = keras_hub.layers.ResNetImageConverter(image_size=(40, 40), scale=1 / 255.0)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[16], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 32], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="bottleneck_block", use_pre_activation=True, image_shape=(None, None, 3))
    classifier = keras_hub.models.ResNetImageClassifier(
        backbone=backbone, num_classes=1000, activation="softmax",
        preprocessor=keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter))
    _seeded(classifier).save_to_preset(folder)
    for weights in ([], ["--weights", "none"]):
        assert main(["build", "keras_hub:resnet_18_imagenet", *weights, "--out", str(out), "--images", photo_path,
                     "--ascent-steps", "1", "--max-filters", "2", "--quiet", "--no-cache"]) == 0
        index = (out / "index.html").read_text()
        assert "40 × 40 pixels" in index and "ImageConverter: pixels x 0.003922 + 0" in index
        top = json.loads((out / "attribution.json").read_text())["images"][0]["top"][0]
        assert not top["label"].startswith("class ")  # an ImageNet class name


def test_a_pre_activation_resnets_fields_and_stages_survive_its_padded_stem(keras_hub, keras):
    """KerasHub's ResNetV2 pads with ``ops.pad(..., -inf)`` before its stem's pooling: an op in the
    graph, not a layer. The walk takes it as padding, so every conv keeps its receptive field and
    the stages follow the resolutions (24, 12 px), not one stage for all."""
    from cnnviz_report.analysis.keras_walk import inspect_model
    from cnnviz_report.stages import find_stages

    info = inspect_model(_backbones(keras_hub)["resnet"]())
    assert all(layer.receptive_field for layer in info.conv_layers)
    assert len(find_stages(info).stages) >= 2


def test_only_a_keras_hub_model_records_keras_hubs_version(keras_hub, tmp_path):
    """With keras_hub imported in the process (as here), a plain model's manifest is the same as
    in any other process: the version is recorded for a model made of KerasHub's classes only."""
    assert main(["build", "--out", str(tmp_path / "site"), "--ascent-steps", "1", "--max-filters", "2",
                 "--quiet"]) == 0
    assert "keras_hub" not in json.loads((tmp_path / "site" / "manifest.json").read_text())["versions"]
