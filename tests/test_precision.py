"""The ascent's steps in bfloat16 (--precision): where they run, and that every number stays float32."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz_report.analysis.ascent import (BFLOAT16_MIN_DENSITY, AscentSettings, AscentTrunk, climbing_precision)
from cnnviz_report.analysis.keras_loading import _preprocess_for_mode
from cnnviz_report.analysis.keras_walk import inspect_model
from cnnviz_report.config import ReportConfig


def trunk(model, precision: str, input_hw=(32, 32)) -> tuple[AscentTrunk, list]:
    conv = list(inspect_model(model).conv_layers)
    return AscentTrunk(model, conv, input_hw, 3, _preprocess_for_mode("raw"),
                       AscentSettings(mode="balanced", precision=precision)), conv


def dense_and_thin_models(keras):
    """A VGG-like stack of 3x3 convs, and a MobileNet-like one of depthwise and narrow 1x1 convs."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="dense_a")(inputs)
    x = keras.layers.Conv2D(128, 3, padding="same", activation="relu", name="dense_b")(x)
    dense = keras.Model(inputs, keras.layers.Conv2D(128, 3, padding="same", name="dense_c")(x))
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 1, name="thin_a")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="thin_dw")(x)
    thin = keras.Model(inputs, keras.layers.Conv2D(24, 1, name="thin_b")(x))
    return dense, thin


def test_mixed_precision_climbs_dense_layers_in_bfloat16_and_thin_ones_in_float32(keras):
    """bfloat16 lost time on depthwise and narrow 1x1 convs (memory-bound) and won it on dense 3x3
    convs; "mixed" decides by the layers' FLOPs an output value, the same on every machine."""
    dense, thin = dense_and_thin_models(keras)
    for model, expected in ((dense, "bfloat16"), (thin, "float32")):
        built, conv = trunk(model, "mixed")
        last = built.engine(conv[-1])
        assert (last.cost.flops_per_output >= BFLOAT16_MIN_DENSITY) == (expected == "bfloat16")
        assert climbing_precision(AscentSettings(precision="mixed"), last.cost) == expected
        climbs = last.group._climbing_values(np.zeros((1, 32, 32, 3), "float32"))[-1]
        assert keras.backend.standardize_dtype(climbs.dtype) == expected
    for forced in ("float32", "bfloat16"):  # the other settings are taken as they are
        assert climbing_precision(AscentSettings(precision=forced), last.cost) == forced


def test_a_bfloat16_climb_measures_in_float32_and_keeps_the_pictures(keras):
    """The steps run a bfloat16 twin of the model; the response (every number a verdict rests
    on) is measured by the float32 model itself, the same numbers as a float32 engine's to the
    last bit; the quality measure's transformed views by the twin, close to them. On the trained
    demo the climbed response stays close to float32's."""
    from cnnviz_report.loading import demo_model_path

    model = keras.saving.load_model(demo_model_path())
    (float32, conv), (bfloat16, _) = trunk(model, "float32", (96, 96)), trunk(model, "bfloat16", (96, 96))
    info = conv[-1]
    exact, fast = float32.engine(info), bfloat16.engine(info)
    assert keras.backend.standardize_dtype(fast.group._climbing_values(np.zeros((1, 8, 8, 3), "float32"))[0].dtype) \
        == "bfloat16"
    pixels = np.random.default_rng(0).uniform(0, 255, (4, *exact.canvas_hw, 3)).astype("float32")
    (response, seen), (exact_response, exact_seen) = fast.measure(pixels, [0, 1, 2, 3]), exact.measure(pixels, [0, 1, 2, 3])
    np.testing.assert_array_equal(response, exact_response)
    np.testing.assert_allclose(seen, exact_seen, rtol=0.05, atol=1e-3 * np.abs(exact_seen).max())
    assert not np.array_equal(seen, exact_seen)
    filters = list(range(16))
    climbed_exact, climbed_fast = exact.run(filters), fast.run(filters)
    assert climbed_fast.activations.dtype == np.float32
    assert np.median(climbed_fast.activations) > 0.8 * np.median(climbed_exact.activations) > 0
    assert np.median(climbed_fast.transformed) > 0.8 * np.median(climbed_exact.transformed)
    assert not np.array_equal(climbed_fast.images, climbed_exact.images)  # it did climb another way


def test_auto_precision_follows_the_cpu(tmp_path, monkeypatch):
    """(The cache key holds the precision: test_progress_and_cache.)"""
    from cnnviz_report.analysis import framework
    from cnnviz_report.phases import mosaics

    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n\n")
    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n\n")
    assert framework.bfloat16_matrix_units(str(amx)) and not framework.bfloat16_matrix_units(str(avx2))
    assert not framework.bfloat16_matrix_units(str(tmp_path / "no-such-file"))

    for units, expected in ((True, "mixed"), (False, "float32")):
        monkeypatch.setattr(mosaics, "bfloat16_matrix_units", lambda units=units: units)
        assert mosaics.ascent_settings(ReportConfig()).precision == expected
        assert mosaics.ascent_settings(ReportConfig(precision="float32")).precision == "float32"
        assert mosaics.ascent_settings(ReportConfig(precision="bfloat16")).precision == "bfloat16"
    with pytest.raises(Exception, match="--precision must be one of auto, float32, bfloat16"):
        ReportConfig(precision="float16").validate()


def test_a_bfloat16_build_says_so_and_a_float32_one_does_not(tmp_path):
    from cnnviz_report.build import build_site

    site = tmp_path / "site"
    build_site(ReportConfig(out=str(site), precision="bfloat16", max_filters=4, layers=("conv4",)))
    index = (site / "index.html").read_text()
    assert "steps in bfloat16 (--precision bfloat16); responses and verdicts measured in float32" in index
    build_site(ReportConfig(out=str(site), precision="float32", max_filters=4, layers=("conv4",)))
    assert "bfloat16" not in (site / "index.html").read_text()


def test_a_float32_group_traces_one_measure_not_two(keras):
    """Only a group whose steps run in bfloat16 has a second (bfloat16) measure to trace."""
    dense, thin = dense_and_thin_models(keras)
    exact, conv = trunk(thin, "mixed")
    engine = exact.engine(conv[-1])
    assert not engine.group.two_precisions and engine._measure_seen is engine._measure
    fast, conv = trunk(dense, "mixed")
    assert fast.engine(conv[-1]).group.two_precisions
