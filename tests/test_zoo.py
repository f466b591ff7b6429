"""The zoo: every conv kind Keras has and every keras.applications family, each through the whole
pipeline (filters, feature maps, ascent, health, cards, summary.md, health.csv, single file).

Run it alone with ``python -m pytest -m zoo``. Settings are the smallest that still exercise
every phase: one ascent step, two filters per mosaic, the first and the last conv layer.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from cnnviz_report import build, paths
from cnnviz_report.build import build_site
from cnnviz_report.config import ReportConfig
from cnnviz_report.analysis.keras_walk import inspect_model
from cnnviz_report.analysis.keras_loading import load_model

pytestmark = pytest.mark.zoo


def _conv_kind_models(keras):
    """name -> (model builder, takes images). Each holds the kind next to a plain Conv2D."""
    layers = keras.layers

    def image_model(*conv, shape=(24, 24, 3)):
        def make():
            inputs = keras.Input(shape)
            x = inputs
            for layer in conv:
                x = layer(x)
            x = layers.GlobalAveragePooling2D(data_format=conv[-1].data_format)(x)
            return keras.Model(inputs, layers.Dense(3)(x))
        return make

    def other_model(shape, *conv, pool):
        def make():
            inputs = keras.Input(shape)
            x = inputs
            for layer in conv:
                x = layer(x)
            return keras.Model(inputs, layers.Dense(3)(pool()(x)))
        return make

    return {
        "conv2d-same-valid": (image_model(layers.Conv2D(6, 3, padding="same", activation="relu"),
                                          layers.Conv2D(5, 3, padding="valid", activation="relu")), True),
        "conv2d-strided-dilated": (image_model(layers.Conv2D(6, 3, strides=2, activation="relu"),
                                               layers.Conv2D(5, 3, dilation_rate=2, activation="relu")), True),
        "conv2d-grouped": (image_model(layers.Conv2D(6, 3, activation="relu"),
                                       layers.Conv2D(4, 3, groups=2, activation="relu")), True),
        "depthwise2d": (image_model(layers.Conv2D(4, 3, activation="relu"),
                                    layers.DepthwiseConv2D(3, depth_multiplier=2)), True),
        "separable2d": (image_model(layers.Conv2D(4, 3, activation="relu"),
                                    layers.SeparableConv2D(7, 3, depth_multiplier=2, activation="relu")), True),
        "transpose2d": (image_model(layers.Conv2D(4, 3, activation="relu"),
                                    layers.Conv2DTranspose(5, 3, strides=2)), True),
        "channels-first": (image_model(layers.Conv2D(4, 3, data_format="channels_first", activation="relu"),
                                       layers.Conv2D(3, 3, data_format="channels_first"), shape=(3, 24, 24)), True),
        "conv1d-kinds": (other_model((40, 3), layers.Conv1D(4, 5), layers.DepthwiseConv1D(3),
                                     layers.SeparableConv1D(6, 3), layers.Conv1DTranspose(4, 3),
                                     pool=layers.GlobalAveragePooling1D), False),
        "conv3d-kinds": (other_model((8, 10, 10, 2), layers.Conv3D(4, 3), layers.Conv3DTranspose(3, 3),
                                     pool=layers.GlobalAveragePooling3D), False),
    }


# The smallest member of every keras.applications family (Keras 3 has no ResNetRS or RegNet;
# test_the_zoo_covers_every_family checks this list against keras.applications itself).
APPLICATIONS = [
    "vgg16", "resnet50", "resnet50v2", "densenet121", "inceptionv3", "inceptionresnetv2", "xception",
    "mobilenet", "mobilenetv2", "mobilenetv3small", "nasnetmobile", "efficientnetb0", "efficientnetv2b0",
    "convnexttiny",
]


def test_the_zoo_covers_every_family(keras):
    from cnnviz_report.analysis.keras_loading import application_names

    def family(constructor_name):  # vgg16 and vgg19 are one family
        return getattr(keras.applications, constructor_name).__module__.rsplit(".", 1)[-1].rstrip("0123456789")

    names = application_names()
    assert {family(names[n]) for n in APPLICATIONS} == {family(c) for c in names.values()}


def _representative(conv_layers):
    """The first and the last conv layer (walk order): the cheapest and the deepest ascent."""
    picks = sorted({0, len(conv_layers) - 1})
    return tuple(conv_layers[i].qualified_name for i in picks)


def _build_and_check(loaded, tmp_path, monkeypatch, model_arg, weights, images):
    model = loaded.model
    model_info = inspect_model(model)
    layers = _representative(model_info.conv_layers)
    monkeypatch.setattr(build, "load_model", lambda config: loaded)  # loaded once, here
    config = ReportConfig(model=model_arg, weights=weights, images=images, out=str(tmp_path / "site"),
                          layers=layers, max_filters=2, ascent_steps=1, use_cache=False,
                          single_file=str(tmp_path / "report.html"), single_file_images=1)
    result = build_site(config)
    site = tmp_path / "site"
    report = result.report
    assert [r.info.qualified_name for r in report.layers] == list(layers)
    assert not report.failed_layers

    # every selected conv layer has its page, its filter grid and (for image layers) its mosaic
    for layer in report.layers:
        page = site / paths.layer_page(layer.slug)
        assert page.is_file(), page
        assert (site / layer.filters.path).is_file()
        if layer.info.takes_images and loaded.input_hw:
            assert layer.mosaic is not None and (site / layer.mosaic.path).is_file()
            if images:
                assert len(layer.features) == len(images)

    # health.csv: one row per filter of every drawn layer, numbered 0..filters-1
    rows = list(csv.DictReader(io.StringIO((site / "health.csv").read_text())))
    for layer in report.layers:
        numbers = [int(r["filter"]) for r in rows if r["layer"] == layer.info.qualified_name]
        assert numbers == list(range(layer.info.filters)), layer.info.qualified_name
        assert layer.health.filters == layer.info.filters == len(layer.health.kernel.norms)

    # the layer table's parameter counts add up to the model's
    top_level = [info for info in report.model.layers if info.depth == 0]
    assert sum(info.params for info in top_level) == model.count_params() == report.model.total_params
    index = (site / "index.html").read_text()
    assert f"{model.count_params():,}" in index

    summary = (site / "summary.md").read_text()
    single = (tmp_path / "report.html").read_text()
    for layer in report.layers:
        assert layer.info.name in summary.replace("\\_", "_")
        assert layer.info.name in single
    return report


CONV_KINDS = ["conv2d-same-valid", "conv2d-strided-dilated", "conv2d-grouped", "depthwise2d", "separable2d",
              "transpose2d", "channels-first", "conv1d-kinds", "conv3d-kinds"]


def test_every_planted_kind_is_in_the_zoo(keras):
    assert sorted(_conv_kind_models(keras)) == sorted(CONV_KINDS)


@pytest.mark.parametrize("kind", CONV_KINDS)
def test_every_conv_kind_builds_whole(keras, kind, tmp_path, monkeypatch, photo_path):
    make, takes_images = _conv_kind_models(keras)[kind]
    keras.utils.set_random_seed(5)
    model = make()
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    loaded = load_model(ReportConfig(model=str(path)))
    report = _build_and_check(loaded, tmp_path, monkeypatch, str(path), None,
                              (photo_path,) if takes_images else ())
    assert all(layer.info.takes_images == takes_images for layer in report.layers)


@pytest.mark.parametrize("name", APPLICATIONS)
def test_every_application_family_builds_whole(keras, name, tmp_path, monkeypatch, photo_path):
    loaded = load_model(ReportConfig(model=name, weights="none"))
    report = _build_and_check(loaded, tmp_path, monkeypatch, name, "none", (photo_path,))
    # a trained-looking verdict is not expected of random weights, but every number is finite
    for layer in report.layers:
        assert np.isfinite(layer.health.kernel.norms).all()
