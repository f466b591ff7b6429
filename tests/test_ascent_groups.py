"""Deep models at a fixed cost a layer: one replay for every layer, one trace a layer (or a group of
short ones), plans that know a squeeze-and-excitation conv sees one value per channel."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz_report.analysis.ascent import (GROUP_WORK, TRACE_COST_PER_LAYER, AscentSettings, AscentTrunk,
                                           LayerAscent, LayerCost, plan_canvases, plan_groups)
from cnnviz_report.analysis.keras_walk import inspect_model

SIZE = 64  # large enough that a layer without a receptive field would get the largest canvas


@pytest.fixture(scope="module")
def se_model():
    """conv_a -> squeeze-and-excitation (global pooling, two 1x1 convs, a product) -> project,
    the shape of an EfficientNet block; fixed random weights."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_a")(inputs)
    squeezed = keras.layers.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
    squeezed = keras.layers.Conv2D(4, 1, activation="relu", name="se_reduce")(squeezed)
    squeezed = keras.layers.Conv2D(16, 1, activation="sigmoid", name="se_expand")(squeezed)
    x = keras.layers.Multiply(name="excite")([x, squeezed])
    x = keras.layers.Conv2D(8, 1, activation="relu", name="project")(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0.05, 0.4, w.shape).astype("float32") for w in model.get_weights()])
    return model


def _conv(model):
    return {info.name: info for info in inspect_model(model).conv_layers}


def test_a_squeeze_and_excitation_conv_costs_one_value_a_channel_and_takes_its_neighbours_canvas(se_model):
    conv = _conv(se_model)
    assert conv["se_reduce"].receptive_field is None  # after a global pooling
    pooled = LayerCost.of([conv["se_reduce"]], (SIZE, SIZE)).bytes_per_pixel
    spatial = LayerCost.of([conv["conv_a"]], (SIZE, SIZE)).bytes_per_pixel
    assert pooled == pytest.approx(12 * 4 / SIZE**2) and spatial == pytest.approx(12 * 16)
    canvases = plan_canvases(list(conv.values()), (SIZE, SIZE), True, AscentSettings())
    assert canvases[conv["se_reduce"].index] == canvases[conv["se_expand"].index] == canvases[conv["conv_a"].index] \
        == (32, 32)
    alone = plan_canvases([conv["se_reduce"]], (SIZE, SIZE), True, AscentSettings())
    assert alone[conv["se_reduce"].index] == (96, 96)  # nothing before it: the largest canvas


def test_short_ascents_of_close_cost_share_a_trace_and_long_ones_climb_alone(se_model):
    conv = _conv(se_model)
    layers = list(conv.values())
    canvases = plan_canvases(layers, (SIZE, SIZE), True, AscentSettings())
    names = lambda groups: [[info.name for info in group] for group in groups]  # noqa: E731
    short = {info.index: 8 for info in layers}  # --ascent-steps 1 --max-filters 8
    # the SE convs add almost nothing to conv_a's cost; project adds 29 % (more than GROUP_COST_RATIO)
    assert names(plan_groups(layers, layers, (SIZE, SIZE), canvases, short)) == [
        ["conv_a", "se_reduce", "se_expand"], ["project"]]
    long = {**short, conv["se_reduce"].index: GROUP_WORK + 1}
    assert names(plan_groups(layers, layers, (SIZE, SIZE), canvases, long)) == [
        ["conv_a"], ["se_reduce"], ["se_expand"], ["project"]]
    other_canvas = {**canvases, conv["se_expand"].index: (40, 40)}
    assert names(plan_groups(layers, layers, (SIZE, SIZE), other_canvas, short)) == [
        ["conv_a", "se_reduce"], ["se_expand"], ["project"]]


def test_a_layer_climbs_the_same_in_its_group_as_alone_and_its_step_is_traced_once(se_model):
    conv = _conv(se_model)
    layers = list(conv.values())
    settings = AscentSettings(steps=6, batch_size=2, seed=4, fixed_canvas=(32, 32))  # the same canvas alone
    trunk = AscentTrunk(se_model, layers, (SIZE, SIZE), 3, lambda p: p / 255.0, settings)
    for name in ("conv_a", "se_reduce", "se_expand"):
        grouped = trunk.engine(conv[name])
        assert len(grouped.group.members) == 3
        together = grouped.run([0, 1, 2])  # two batches of 2: the last one filled up with filter 2 again
        alone = LayerAscent.alone(se_model, conv[name], layers, (SIZE, SIZE), 3, lambda p: p / 255.0, settings).run(
            [0, 1, 2])
        assert len(alone.images) == len(together.images) == 3
        np.testing.assert_array_equal(together.images, alone.images)
        np.testing.assert_allclose(together.activations, alone.activations, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(together.transformed, alone.transformed, rtol=1e-5, atol=1e-6)
    engine = trunk.engine(conv["conv_a"])
    # three layers of the group, 3 filters each in batches of 2: one trace of the step and one of the
    # measurement, which also measures the canvases seen through the quality measure's transforms
    assert engine._step.experimental_get_tracing_count() == 1
    assert engine._measure.experimental_get_tracing_count() == 1


def test_the_trunk_replays_the_model_once_for_all_its_layers(se_model, monkeypatch):
    import cnnviz_report.analysis.ascent as ascent

    calls = []
    real = ascent.free_size_values
    monkeypatch.setattr(ascent, "free_size_values", lambda *args, **kwargs: calls.append(args) or real(*args, **kwargs))
    layers = list(_conv(se_model).values())
    trunk = AscentTrunk(se_model, layers, (SIZE, SIZE), 3, lambda p: p / 255.0, AscentSettings(steps=2))
    engines = [trunk.engine(info) for info in layers]
    assert len(calls) == 1 and all(engine.group.free for engine in engines)


def test_the_plan_charges_each_trace_once_so_the_eta_holds_when_tracing_outweighs_arithmetic(se_model):
    from cnnviz_report.config import ReportConfig
    from cnnviz_report.phases.mosaics import ascent_costs

    info = inspect_model(se_model)
    conv = _conv(se_model)
    short = ascent_costs(info, list(conv.values()), ReportConfig(ascent_steps=1, max_filters=2), (SIZE, SIZE))
    # one step of two filters: the group's trace (over the graph up to se_expand) is charged once
    assert short[conv["conv_a"].index] > TRACE_COST_PER_LAYER * (conv["se_expand"].index + 1)
    assert all(short[conv[name].index] < TRACE_COST_PER_LAYER for name in ("se_reduce", "se_expand"))
    assert short[conv["project"].index] > TRACE_COST_PER_LAYER * (conv["project"].index + 1)  # a group of its own
    long = ascent_costs(info, list(conv.values()), ReportConfig(ascent_steps=300), (SIZE, SIZE))
    assert all(long[conv[name].index] > TRACE_COST_PER_LAYER * (conv[name].index + 1) for name in conv)  # alone


def test_batches_are_even_so_filling_up_the_last_one_wastes_little(se_model):
    conv = _conv(se_model)
    engine = LayerAscent.alone(se_model, conv["conv_a"], list(conv.values()), (SIZE, SIZE), 3, lambda p: p / 255.0,
                               AscentSettings(steps=1, batch_size=7))
    assert [engine.batch_size(n) for n in (16, 14, 7, 3)] == [6, 7, 7, 3]  # 16 filters: 3 x 6, not 7 + 7 + 2


def test_a_few_filters_after_the_mosaic_reuse_its_traced_batch_when_filling_it_up_is_cheaper(se_model):
    conv = _conv(se_model)
    settings = AscentSettings(steps=1, seed=4)
    trunk = AscentTrunk(se_model, list(conv.values()), (SIZE, SIZE), 3, lambda p: p / 255.0, settings)
    engine = trunk.engine(conv["conv_a"])
    mosaic = engine.run(list(range(8)))  # the mosaic's batch: 8 canvases
    assert mosaic.batch_size == 8 and engine.group.traced == {(engine.canvas_hw, 8)}
    assert engine.traced_batch_size(2, steps=1) == 8
    few = engine.run([5, 2])  # a deciding unit or two past --max-filters, or a member with 2 filters
    assert engine._step.experimental_get_tracing_count() == 1  # filled up to 8, no new trace
    assert engine._measure.experimental_get_tracing_count() == 1
    np.testing.assert_array_equal(few.images, mosaic.images[[5, 2]])  # a filter's picture ignores its batch
    # a long ascent costs more arithmetic filling up 6 canvases than one trace: a batch of its own
    assert engine.traced_batch_size(2, steps=100_000) is None
    assert engine.traced_batch_size(8, steps=1) is None  # traced already
    assert engine.traced_batch_size(9, steps=1) is None  # no traced batch holds it


def test_steps_traced_ahead_in_a_thread_are_the_ones_the_climb_runs_and_draw_the_same(se_model):
    conv = _conv(se_model)
    layers = list(conv.values())
    settings = AscentSettings(steps=3, seed=4)
    plain = AscentTrunk(se_model, layers, (SIZE, SIZE), 3, lambda p: p / 255.0, settings)
    ahead = AscentTrunk(se_model, layers, (SIZE, SIZE), 3, lambda p: p / 255.0, settings)
    ahead.trace_ahead([(conv["conv_a"], 4), (conv["se_reduce"], 4), (conv["project"], 4)])
    ahead._tracer[0].join()  # both groups are traced, nothing has run
    ahead.stop_tracing()
    assert ahead._tracer is None
    for name in ("conv_a", "project"):
        engine = ahead.engine(conv[name])
        assert engine.group.traced == {(engine.canvas_hw, 4)}
        assert engine._step.experimental_get_tracing_count() == 1
        assert engine._measure.experimental_get_tracing_count() == 1
    for name in ("conv_a", "se_reduce", "project"):
        traced, fresh = ahead.engine(conv[name]).run([0, 1, 2, 3]), plain.engine(conv[name]).run([0, 1, 2, 3])
        np.testing.assert_array_equal(traced.images, fresh.images)
        np.testing.assert_array_equal(traced.activations, fresh.activations)
        np.testing.assert_array_equal(traced.transformed, fresh.transformed)
    for name in ("conv_a", "project"):  # the climbs ran on the traces made in the thread
        assert ahead.engine(conv[name])._step.experimental_get_tracing_count() == 1
        assert ahead.engine(conv[name])._measure.experimental_get_tracing_count() == 1


def test_a_trace_that_fails_ahead_is_left_for_the_climb_and_stopping_ends_the_thread(se_model, monkeypatch):
    conv = _conv(se_model)
    trunk = AscentTrunk(se_model, list(conv.values()), (SIZE, SIZE), 3, lambda p: p / 255.0, AscentSettings(steps=1))
    tried = []

    def broken(self, batch_size):
        tried.append(self.info.name)
        raise RuntimeError("cannot trace")

    monkeypatch.setattr(LayerAscent, "prepare", broken)
    trunk.trace_ahead([(conv["conv_a"], 2), (conv["project"], 2)])
    thread = trunk._tracer[0]
    trunk.stop_tracing()
    assert not thread.is_alive() and tried == ["conv_a"]  # it stops at the first error, silently
    monkeypatch.undo()
    assert len(trunk.engine(conv["conv_a"]).run([0, 1]).images) == 2  # the climb traces for itself


def test_a_build_traces_ahead_only_for_units_run_in_its_own_process_and_stops_the_thread(monkeypatch, tmp_path):
    from cnnviz_report.analysis import ascent
    from cnnviz_report.build import build_site
    from cnnviz_report.config import ReportConfig

    planned, stopped = [], []
    real_ahead, real_stop = ascent.AscentTrunk.trace_ahead, ascent.AscentTrunk.stop_tracing
    monkeypatch.setattr(ascent.AscentTrunk, "trace_ahead",
                        lambda self, plan: planned.append(list(plan)) or real_ahead(self, plan))
    monkeypatch.setattr(ascent.AscentTrunk, "stop_tracing", lambda self: stopped.append(self) or real_stop(self))
    build_site(ReportConfig(out=str(tmp_path / "site"), ascent_steps=1, max_filters=4, use_cache=False))
    assert len(planned) == 1 and stopped
    assert [size for _, size in planned[0]] == [4] * len(planned[0]) and len(planned[0]) == 4  # the demo's 4 layers
    assert all(trunk._tracer is None for trunk in stopped)


@pytest.mark.parametrize("axis, scale, center", [(-1, True, True), (1, False, True), (-1, True, False)])
def test_the_replay_freezes_batch_normalization_into_an_affine_map_with_the_same_numbers(axis, scale, center):
    import keras

    from cnnviz_report.analysis.activations import free_size_values

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(axis=axis, scale=scale, center=center, name="norm")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(4, 3, name="conv_b")(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(5)
    norm = model.get_layer("norm")
    norm.set_weights([rng.uniform(0.5, 2.0, w.shape).astype("float32") if i == len(norm.weights) - 1
                      else rng.normal(0.0, 1.0, w.shape).astype("float32") for i, w in enumerate(norm.get_weights())])
    conv = _conv(model)
    new_input, values = free_size_values(model, [conv["conv_b"]])
    replay = keras.Model(new_input, values[conv["conv_b"].index][0])
    assert any(type(layer).__name__ == "FrozenBatchNormalization" for layer in replay.layers)
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in replay.layers)
    images = rng.uniform(0.0, 1.0, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(replay(images)), np.asarray(model(images, training=False)),
                               rtol=1e-6, atol=1e-6)


def test_the_replay_climbs_swish_without_its_custom_gradient_to_the_same_values_and_gradients():
    import keras
    import tensorflow as tf

    from cnnviz_report.analysis.activations import free_size_values

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, name="conv_a")(inputs)
    x = keras.layers.Activation("swish", name="swish")(x)
    x = keras.layers.Conv2D(4, 3, name="conv_b")(x)
    model = keras.Model(inputs, x)
    conv = _conv(model)
    new_input, values = free_size_values(model, [conv["conv_b"]])
    replay = keras.Model(new_input, values[conv["conv_b"].index][0])
    assert any(type(layer).__name__ == "PlainSwish" for layer in replay.layers)
    assert not any(type(layer).__name__ == "Activation" for layer in replay.layers)
    images = tf.constant(np.random.default_rng(6).uniform(-3.0, 3.0, (2, 16, 16, 3)).astype("float32"))
    gradients = []
    for network in (replay, model):
        with tf.GradientTape() as tape:
            tape.watch(images)
            output = network(images, training=False)
            loss = tf.reduce_sum(output ** 2)
        gradients.append(tape.gradient(loss, images))
        np.testing.assert_array_equal(np.asarray(output), np.asarray(model(images, training=False)))
    np.testing.assert_allclose(np.asarray(gradients[0]), np.asarray(gradients[1]), rtol=1e-5, atol=1e-5)
