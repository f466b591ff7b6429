"""Kernels, the staged feature probe and gradient ascent, on tiny models with fixed weights."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz_report.analysis.activations import FeatureProbe, PeakProbe, layer_chain
from cnnviz_report.analysis.ascent import AscentSettings, maximise_filters
from cnnviz_report.analysis.ascent_parts import deprocess
from cnnviz_report.analysis.weights import kernel_view
from cnnviz_report.analysis.keras_graph import resolve_layer
from cnnviz_report.analysis.keras_walk import inspect_model


def _per_layer_outputs(model, info, batch):
    """The seeds' way, one model per layer, as the reference (outer levels chained by hand)."""
    x = batch
    for stage in layer_chain(model, info):
        x = stage(x, training=False)
    return np.asarray(x)


def test_one_probe_gives_every_conv_layer_even_inside_sub_models(keras, nested_model):
    conv = inspect_model(nested_model).conv_layers
    batch = np.random.default_rng(0).uniform(0, 1, (3, 16, 16, 3)).astype("float32")
    maps = FeatureProbe(nested_model, list(conv))(batch)
    assert sorted(maps) == [c.index for c in conv]
    for info in conv:
        np.testing.assert_allclose(maps[info.index], _per_layer_outputs(nested_model, info, batch), rtol=1e-5, atol=1e-6)
        assert maps[info.index].shape == (3,) + info.output_shape[1:]


def test_probe_matches_a_plain_multi_output_model(keras, tiny_model):
    conv = inspect_model(tiny_model).conv_layers
    batch = np.random.default_rng(1).uniform(0, 1, (2, 8, 8, 3)).astype("float32")
    maps = FeatureProbe(tiny_model, list(conv))(batch)
    reference = keras.Model(tiny_model.inputs, [tiny_model.get_layer(c.name).output for c in conv])([batch])
    for info, expected in zip(conv, reference):
        np.testing.assert_allclose(maps[info.index], np.asarray(expected), rtol=1e-6)


def test_peak_probe_reduces_the_same_maps_inside_the_pass(keras, nested_model):
    """Each filter's maximum and the first position of it, as numpy finds them in the full maps,
    with a NaN never ranking first; channels-first maps are reduced in channels-last positions."""
    conv = list(inspect_model(nested_model).conv_layers)
    batch = np.random.default_rng(2).uniform(0, 1, (3, 16, 16, 3)).astype("float32")
    maps, peaks = FeatureProbe(nested_model, conv)(batch), PeakProbe(nested_model, conv)(batch)
    for info in conv:
        flat = maps[info.index].reshape(3, -1, maps[info.index].shape[-1])
        np.testing.assert_allclose(peaks[info.index].values, flat.max(axis=1), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(peaks[info.index].where, flat.argmax(axis=1))
        assert peaks[info.index].map_hw == maps[info.index].shape[1:3]
    for data_format in ("channels_last", "channels_first"):  # TensorFlow's arg-max, and XLA's
        inputs = keras.Input((3, 4, 2) if data_format == "channels_last" else (2, 3, 4))
        planted = keras.Model(inputs, keras.layers.Conv2D(2, 1, data_format=data_format, use_bias=False,
                                                         kernel_initializer="ones", name="c")(inputs))
        pixels = np.zeros((1, 3, 4, 2), np.float32)
        pixels[0, 2, 1, 0] = 5.0  # the map's maximum at row 2, column 1
        pixels[0, 0, 0, 1] = np.nan  # NaN at row 0, column 0: never the maximum
        if data_format == "channels_first":
            pixels = np.moveaxis(pixels, -1, 1)
        (only,) = PeakProbe(planted, list(inspect_model(planted).conv_layers))(pixels).values()
        assert only.map_hw == (3, 4) and only.values.tolist() == [[5.0, 5.0]]
        assert only.where.tolist() == [[2 * 4 + 1, 2 * 4 + 1]]


def test_kernel_views_bring_every_conv_kind_to_kh_kw_in_out(keras, nested_model):
    conv = {c.qualified_name: c for c in inspect_model(nested_model).conv_layers}
    stem = kernel_view(nested_model, conv["stem"])
    np.testing.assert_array_equal(stem.kernel, resolve_layer(nested_model, conv["stem"]).kernel.numpy())
    depthwise = kernel_view(nested_model, conv["backbone/inner_depthwise"])
    raw = resolve_layer(nested_model, conv["backbone/inner_depthwise"]).kernel.numpy()  # (3, 3, 6, 1)
    assert depthwise.kernel.shape == (3, 3, 1, 6)
    np.testing.assert_array_equal(depthwise.kernel[:, :, 0, 4], raw[:, :, 4, 0])
    separable = kernel_view(nested_model, conv["head_block/head_separable"])
    # a separable filter is an output channel; its kernel is the one ordinary conv it equals
    assert separable.kernel.shape == (3, 3, 6, 5) and "pointwise" in separable.note
    assert separable.depthwise.shape == (3, 3, 1, 6)
    transpose = kernel_view(nested_model, conv["up"])
    raw = resolve_layer(nested_model, conv["up"]).kernel.numpy()  # (3, 3, out=3, in=5)
    assert transpose.kernel.shape == (3, 3, 5, 3)
    np.testing.assert_array_equal(transpose.kernel[:, :, 4, 1], raw[:, :, 1, 4])


@pytest.mark.parametrize("multiplier", [1, 3])
def test_separable_effective_kernel_is_the_conv_the_layer_computes(keras, multiplier):
    layer = keras.layers.SeparableConv2D(5, 3, depth_multiplier=multiplier, use_bias=False)
    model = keras.Sequential([keras.Input((9, 9, 4)), layer])
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, 1, w.shape).astype("float32") for w in model.get_weights()])
    info = inspect_model(model).conv_layers[0]
    view = kernel_view(model, info)
    assert view.kernel.shape == (3, 3, 4, 5) and info.filters == 5
    plain = keras.Sequential([keras.Input((9, 9, 4)), keras.layers.Conv2D(5, 3, use_bias=False)])
    plain.set_weights([view.kernel])
    x = rng.uniform(-1, 1, (2, 9, 9, 4)).astype("float32")
    np.testing.assert_allclose(np.asarray(plain(x)), np.asarray(model(x)), rtol=1e-4, atol=1e-4)


def test_conv1d_and_conv3d_kernels_are_laid_flat(keras):
    c1 = keras.Sequential([keras.Input((20, 3)), keras.layers.Conv1D(4, 5, name="c1d")])
    c3 = keras.Sequential([keras.Input((6, 6, 6, 2)), keras.layers.Conv3D(3, (2, 3, 3), name="c3d")])
    (info1,) = inspect_model(c1).conv_layers
    (info3,) = inspect_model(c3).conv_layers
    assert kernel_view(c1, info1).kernel.shape == (1, 5, 3, 4)
    view3 = kernel_view(c3, info3)
    raw = c3.get_layer("c3d").kernel.numpy()  # (2, 3, 3, 2, 3)
    assert view3.kernel.shape == (3, 6, 2, 3)
    np.testing.assert_array_equal(view3.kernel[:, 3:, 1, 2], raw[1, :, :, 1, 2])


def test_duplicates_are_judged_only_among_filters_that_read_the_same_inputs(keras):
    """Depthwise filters of different input channels are never duplicates however alike their
    kernels (a trained MobileNetV2 had 3,039 such); with a depth multiplier, a channel's own
    filters are compared; a grouped conv's filters are compared within their group only."""
    from cnnviz_report.health import kernel_findings

    rng = np.random.default_rng(4)
    spatial = rng.normal(0, 1, (3, 3)).astype("float32")

    def depthwise_findings(multiplier):
        model = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.DepthwiseConv2D(
            3, depth_multiplier=multiplier, use_bias=False, name="dw")])
        kernel = np.repeat(spatial[:, :, None, None], 4, axis=2).repeat(multiplier, axis=3)  # all alike
        if multiplier > 1:
            kernel[:, :, :, 1] = rng.normal(0, 1, (3, 3, 4))  # each channel's second filter differs
            kernel[:, :, 2, 1] = -spatial  # ... but for channel 2's (cosine -1 with its first)
        model.set_weights([kernel])
        view = kernel_view(model, inspect_model(model).conv_layers[0])
        return view, kernel_findings(view.kernel, view.input_sets)

    view, findings = depthwise_findings(1)
    assert findings.duplicates == () and "no filter is judged a duplicate" in view.note
    assert len(kernel_findings(view.kernel).duplicates) == 3  # what every filter against every other found
    view, findings = depthwise_findings(3)  # filter f reads channel f // 3: 0-2 channel 0, 3-5 channel 1 ...
    assert [(f, e) for f, e, _ in findings.duplicates] == [(2, 0), (5, 3), (8, 6), (11, 9)]
    assert "among the 3 filters of one input channel" in view.note

    grouped = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.Conv2D(6, 3, groups=2, use_bias=False,
                                                                             name="grouped")])
    kernel = rng.normal(0, 1, (3, 3, 2, 6)).astype("float32")  # filters 0-2 read channels 0-1, 3-5 channels 2-3
    kernel[..., 3] = kernel[..., 0]  # alike, but in the other group: not a duplicate
    kernel[..., 2] = 2 * kernel[..., 1]  # the same group: a duplicate
    grouped.set_weights([kernel])
    view = kernel_view(grouped, inspect_model(grouped).conv_layers[0])
    assert view.input_sets.tolist() == [0, 0, 0, 1, 1, 1] and "2 groups of 3 filters" in view.note
    assert [(f, e) for f, e, _ in kernel_findings(view.kernel, view.input_sets).duplicates] == [(2, 1)]
    assert [(f, e) for f, e, _ in kernel_findings(view.kernel).duplicates] == [(2, 1), (3, 0)]


def _mean_activation(model, info, canvas, preprocess):
    x = preprocess(canvas)
    for stage in layer_chain(model, info):
        x = stage(x, training=False)
    return np.asarray(x).mean(axis=(1, 2))


def test_seeded_ascent_raises_the_activation_of_every_filter(keras):
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c2")(x)
    model = keras.Model(inputs, x)
    model.set_weights([np.random.default_rng(5).normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    info = inspect_model(model).conv_layers[-1]
    settings = AscentSettings(steps=20, seed=3)
    preprocess = lambda p: p / 255.0  # noqa: E731
    result = maximise_filters(model, info, [0, 1, 2, 3], (24, 24), 3, preprocess, settings)
    start = 128.0 + 10.0 * np.random.default_rng([3, info.index]).uniform(-1, 1, (4, 24, 24, 3))
    before = _mean_activation(model, info, start.astype("float32"), preprocess)
    before = np.array([before[i, i] for i in range(4)])
    assert result.images.shape == (4, 24 - 2 * round(24 * 25 / 180), 24 - 2 * round(24 * 25 / 180), 3)
    assert result.images.dtype == np.uint8
    assert np.all(result.activations > before), (before, result.activations)
    assert np.all(result.activations > 0)
    # same seed, same pictures
    again = maximise_filters(model, info, [0, 1, 2, 3], (24, 24), 3, preprocess, settings)
    np.testing.assert_array_equal(result.images, again.images)


def test_batched_and_one_at_a_time_ascent_agree(keras, tiny_model):
    """The batch draws the same noise stream as single calls, so the results must match."""
    info = inspect_model(tiny_model).conv_layers[1]
    filters, preprocess = [0, 1], (lambda p: p / 255.0)
    together = maximise_filters(tiny_model, info, filters, (8, 8), 3, preprocess, AscentSettings(steps=8, seed=1, batch_size=2))
    alone = maximise_filters(tiny_model, info, filters, (8, 8), 3, preprocess, AscentSettings(steps=8, seed=1, batch_size=1))
    np.testing.assert_allclose(together.activations, alone.activations, rtol=1e-4)
    assert np.abs(together.images.astype(int) - alone.images.astype(int)).max() <= 1
    assert np.all(together.activations > 0)


def test_deprocess_centres_on_grey_and_crops():
    canvas = np.random.default_rng(0).normal(size=(40, 40, 3)) * 50 + 3
    image = deprocess(canvas, crop=5)
    assert image.shape == (30, 30, 3) and image.dtype == np.uint8
    assert abs(float(image.mean()) - 127.5) < 3


def test_a_filter_off_everywhere_on_grey_is_rescued_through_its_pre_activation(keras):
    """Grey noise gives filter 0 a negative input everywhere, so its ReLU passes no gradient."""
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, activation="relu", name="c")(inputs))
    kernel = np.zeros((3, 3, 3, 2), "float32")
    kernel[1, 1, 0, 0], kernel[1, 1, 1, 0] = 1.0, -1.0  # filter 0: red minus green ...
    kernel[1, 1, 2, 1] = 1.0  # filter 1: blue, on from the start
    model.set_weights([kernel, np.array([-0.5, 0.0], "float32")])  # ... minus 0.5: off on grey
    info = inspect_model(model).conv_layers[0]
    run = lambda rescue: maximise_filters(  # noqa: E731
        model, info, [0, 1], (16, 16), 3, lambda p: p / 255.0, AscentSettings(steps=30, seed=0, rescue_stuck=rescue))
    plain, rescued = run(False), run(True)
    assert plain.activations[0] == 0.0  # the seeds' method: stuck, stays noise
    assert rescued.activations[0] > 0.05  # rescued: red up, green down
    red_minus_green = lambda images: images[..., 0].mean() - images[..., 1].mean()  # noqa: E731
    assert red_minus_green(rescued.images[:1]) > 10  # deprocess keeps 0.15 std: a clear tint
    start = 128.0 + 10.0 * np.random.default_rng([0, info.index]).uniform(-1, 1, (2, 16, 16, 3))
    unchanged = deprocess(start[0].astype("float32"), crop=round(16 * 25 / 180))
    assert np.abs(plain.images[0].astype(int) - unchanged).max() <= 1  # no gradient: the noise never moved
    np.testing.assert_allclose(plain.activations[1], rescued.activations[1], rtol=1e-5)  # live filters: same


def test_a_filter_with_a_nan_kernel_is_broken_not_dead():
    """Some CPU kernels give relu(NaN) = 0, the floor: the NaN/Inf kernel finding is the verdict."""
    import numpy as np

    from cnnviz_report.health import activation_findings

    at_zero = np.zeros((1, 3))
    assert activation_findings(at_zero, at_zero, np.zeros(3)) == ((0, 1, 2), ())
    assert activation_findings(at_zero, at_zero, np.zeros(3), broken=(2,)) == ((0, 1), ())
    assert activation_findings(at_zero + 1, at_zero + 1, None, broken=(1,)) == ((), (0, 2))
