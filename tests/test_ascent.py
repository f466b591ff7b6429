"""The ascent engine: replayed graphs, canvas and batch planning, modes, selection, cache, Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnviz_report.analysis.activations import free_size_values, layer_chain
from cnnviz_report.analysis.ascent import (BALANCED_30, AscentSettings, LayerAscent, LayerCost, plan_batch,
                                           plan_canvas)
from cnnviz_report.build import build_site
from cnnviz_report.config import ReportConfig
from cnnviz_report.analysis.keras_walk import inspect_model

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def vgg16(keras):
    return keras.applications.VGG16(weights=None)


def free_size_model(model, info):
    """(a Keras model from an input of any size to the layer's value, the activation still to apply)."""
    import keras

    new_input, values = free_size_values(model, [info])
    value, activation = values[info.index]
    return keras.Model(new_input, value), activation


def test_replayed_model_is_exact_and_takes_any_size(vgg16, nested_model):
    info = {c.name: c for c in inspect_model(vgg16).conv_layers}["block3_conv1"]
    free, activation = free_size_model(vgg16, info)
    batch = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(activation(free(batch))), np.asarray(layer_chain(vgg16, info)[0](batch)))
    assert tuple(free(np.zeros((1, 64, 48, 3), "float32")).shape) == (1, 16, 12, 256)
    for info in inspect_model(nested_model).conv_layers:  # through a Sequential and a Functional
        free, activation = free_size_model(nested_model, info)
        small = np.random.default_rng(1).normal(size=(1, 16, 16, 3)).astype("float32")
        expected = small
        for stage in layer_chain(nested_model, info):
            expected = stage(expected)
        got = free(small)
        got = activation(got) if activation is not None else got
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-6)
        assert free(np.zeros((1, 40, 40, 3), "float32")).shape[0] == 1


def test_canvas_is_planned_from_the_receptive_field(vgg16):
    conv = {c.name: c for c in inspect_model(vgg16).conv_layers}
    settings = AscentSettings()
    planned = {name: plan_canvas(conv[name], (224, 224), True, settings)[0]
               for name in ("block1_conv1", "block2_conv2", "block3_conv1", "block4_conv1", "block5_conv3")}
    assert planned == {"block1_conv1": 32, "block2_conv2": 32, "block3_conv1": 48, "block4_conv1": 96,
                       "block5_conv3": 96}
    assert plan_canvas(conv["block1_conv1"], (224, 224), False, settings) == (224, 224)  # cannot replay
    assert plan_canvas(conv["block1_conv1"], (224, 224), True, AscentSettings(fixed_canvas=(180, 180))) == (180, 180)


def test_batch_size_follows_the_memory_budget_and_the_step_time(vgg16):
    conv = list(inspect_model(vgg16).conv_layers)
    deep = LayerCost.of(conv, (224, 224))
    shallow = LayerCost.of(conv[:1], (224, 224))
    assert deep.bytes_per_pixel > shallow.bytes_per_pixel and deep.flops_per_pixel > shallow.flops_per_pixel
    tight = plan_batch(deep, (128, 128), 64, AscentSettings(memory_budget=1))
    assert tight == 1
    roomy = plan_batch(deep, (128, 128), 64, AscentSettings(memory_budget=1 << 40))
    assert 1 < roomy < 64  # bounded by the time of one step on the deepest layer
    assert plan_batch(shallow, (32, 32), 64, AscentSettings(memory_budget=1 << 40)) == 64
    by_budget = plan_batch(deep, (128, 128), 64, AscentSettings(memory_budget=int(deep.bytes_per_pixel * 128 * 128 * 3)))
    assert by_budget == min(3, roomy)


def _model_with_a_dead_filter(keras, path):
    inputs = keras.Input((20, 20, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, activation="relu", name="c")(inputs))
    kernel = np.random.default_rng(0).normal(0, 0.3, (3, 3, 3, 3)).astype("float32")
    kernel[..., 1] = 0.0  # filter 1 sees nothing ...
    model.set_weights([kernel, np.array([0.1, -1.0, 0.1], "float32")])  # ... and its bias is negative
    model.save(path)
    return model


def test_a_dead_filter_is_reported_dead(keras, tmp_path):
    path = tmp_path / "dead.keras"
    _model_with_a_dead_filter(keras, path)
    result = build_site(ReportConfig(model=str(path), out=str(tmp_path / "site"), ascent_steps=10))
    (layer,) = result.report.layers
    assert layer.mosaic_dead == (1,) and layer.mosaic_indices == (0, 1, 2)
    page = (tmp_path / "site" / "layers" / "001-c.html").read_text()
    assert "<strong>1 ascent-dead filter(s)</strong>" in page


def test_robust_mode_raises_the_activation_and_draws_valid_images(keras, tiny_model):
    info = inspect_model(tiny_model).conv_layers[1]
    engine = LayerAscent.alone(tiny_model, info, list(inspect_model(tiny_model).conv_layers), (8, 8), 3,
                         lambda p: p / 255.0, AscentSettings(mode="robust", steps=40, min_canvas=16, seed=2))
    start = engine.run([0, 1], steps=0)
    climbed = engine.run([0, 1])
    assert np.all(climbed.activations > start.activations), (start.activations, climbed.activations)
    assert climbed.images.dtype == np.uint8 and climbed.images.shape == (2, 16, 16, 3)
    assert climbed.images.std() > 5  # a picture, not flat grey


def test_balanced_climbs_in_20_steps_with_short_adam_memories_and_the_old_recipe_is_reachable(keras, tiny_model):
    """Issue 30: the default climbs 20 steps of Adam 0.25 with betas 0.5/0.9 on the full canvas
    (two thirds of the 30 steps of Adam 0.15 it took before, at least their response on trained
    backbones: benchmarks/speed_candidates.py); the old schedule is still one settings away."""
    conv = list(inspect_model(tiny_model).conv_layers)
    settings = AscentSettings(mode="balanced", min_canvas=40, seed=2)
    assert (settings.step_count, settings.rate, settings.betas) == (20, 0.25, (0.5, 0.9))
    engine = LayerAscent.alone(tiny_model, conv[1], conv, (8, 8), 3, lambda p: p / 255.0, settings)
    assert engine.recipe.optimiser.betas == (0.5, 0.9) and engine.recipe.optimiser.rate == 0.25
    start = engine.run([0, 1], steps=0)
    climbed = engine.run([0, 1])
    assert np.all(climbed.activations > start.activations + 0.1), (start.activations, climbed.activations)
    assert climbed.canvas_hw == (40, 40) and climbed.images.shape == (2, 40, 40, 3)  # the full canvas throughout
    assert climbed.images.std() > 5
    old = LayerAscent.alone(tiny_model, conv[1], conv, (8, 8), 3, lambda p: p / 255.0,
                            AscentSettings(**dict(BALANCED_30, min_canvas=40, seed=2)))
    assert (old.settings.step_count, old.recipe.optimiser.rate, old.recipe.optimiser.betas) == (30, 0.15, (0.9, 0.999))
    assert np.abs(old.run([0]).images[0].astype(int) - climbed.images[0]).max() > 10  # another climb
    # the first layers' small canvases climb the fast way as far in 20 steps as fast does in 30
    small = LayerAscent.alone(tiny_model, conv[1], conv, (8, 8), 3, lambda p: p / 255.0,
                              AscentSettings(mode="balanced", min_canvas=16))
    fast = LayerAscent.alone(tiny_model, conv[1], conv, (8, 8), 3, lambda p: p / 255.0,
                             AscentSettings(mode="fast", min_canvas=16))
    assert small.recipe.optimiser.step_norm * 20 == pytest.approx(fast.recipe.optimiser.step_norm * 30)
    small_old = LayerAscent.alone(tiny_model, conv[1], conv, (8, 8), 3, lambda p: p / 255.0,
                                  AscentSettings(**dict(BALANCED_30, min_canvas=16)))
    assert small_old.recipe.optimiser.step_norm == pytest.approx(fast.recipe.optimiser.step_norm)


@pytest.mark.parametrize("mode", ["fast", "balanced"])
def test_a_filters_picture_does_not_depend_on_the_batch_it_climbs_in(keras, tiny_model, mode):
    """Each filter starts from its own seed and every batch sees the same transforms, so a batch
    is a unit of work of its own (another process or machine draws the same picture) and a filter
    looks the same whichever others are drawn with it."""
    conv = list(inspect_model(tiny_model).conv_layers)
    engine = LayerAscent.alone(tiny_model, conv[1], conv, (8, 8), 3, lambda p: p / 255.0,
                               AscentSettings(mode=mode, steps=5, min_canvas=16, seed=3))
    together = engine.run([0, 1, 2, 3])
    for alone_as in ([2, 3], [3, 2]):
        apart = engine.run(alone_as)
        for position, number in enumerate(alone_as):
            mine = together.filter_indices.index(number)
            assert np.abs(apart.images[position].astype(int) - together.images[mine]).max() <= 1
            assert apart.activations[position] == pytest.approx(together.activations[mine], rel=1e-4, abs=1e-6)
    other_seed = LayerAscent.alone(tiny_model, conv[1], conv, (8, 8), 3, lambda p: p / 255.0,
                                   AscentSettings(mode=mode, steps=5, min_canvas=16, seed=4)).run([2])
    assert np.abs(other_seed.images[0].astype(int) - together.images[2]).max() > 10


def test_select_top_keeps_the_most_activated_filters(keras, tmp_path):
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(8, 3, activation="relu", name="c")(inputs))
    base = np.random.default_rng(3).normal(0, 0.3, (3, 3, 3, 1)).astype("float32")
    # the same pattern at growing strength: filter f's activation grows with f
    model.set_weights([np.concatenate([base * (f + 1) for f in range(8)], axis=-1), np.zeros(8, "float32")])
    path = tmp_path / "ranked.keras"
    model.save(path)
    result = build_site(ReportConfig(model=str(path), out=str(tmp_path / "site"), max_filters=3, select="top",
                                     ascent_steps=12))
    assert result.report.layers[0].mosaic_indices == (7, 6, 5)
    first = build_site(ReportConfig(model=str(path), out=str(tmp_path / "site2"), max_filters=3, ascent_steps=12))
    assert first.report.layers[0].mosaic_indices == (0, 1, 2)


def test_the_cache_is_hit_on_a_rebuild_with_new_images_and_missed_when_weights_change(
        keras, tiny_model_file, photo_path, tmp_path, private_cache):
    def build(out, images):
        return build_site(ReportConfig(model=tiny_model_file, images=images, out=str(tmp_path / out), ascent_steps=8))

    first = build("a", (photo_path,))
    assert (first.cache_hits, first.cache_misses) == (0, 2)
    extra = tmp_path / "extra.png"
    from PIL import Image

    Image.new("RGB", (20, 20), (200, 30, 30)).save(extra)
    second = build("b", (photo_path, str(extra)))
    assert (second.cache_hits, second.cache_misses) == (2, 0)
    for layer in ("001-conv_a", "002-conv_b"):
        assert (tmp_path / "a/layers" / layer / "mosaic.png").read_bytes() == \
               (tmp_path / "b/layers" / layer / "mosaic.png").read_bytes()
    # a cache hit changes nothing on the page (the same inputs give the same site)
    def ascent_section(site):
        page = (tmp_path / site / "layers/001-conv_a.html").read_text()
        return page[page.index('id="ascent"'):page.index('class="per-image"')]

    assert ascent_section("a") == ascent_section("b")
    assert len(list((private_cache / "ascent").glob("*.npz"))) == 2

    model = keras.saving.load_model(tiny_model_file)
    weights = model.get_weights()
    weights[2] = weights[2] * 2.0  # conv_b's kernel only
    model.set_weights(weights)
    model.save(tiny_model_file)
    third = build("c", (photo_path,))
    assert (third.cache_hits, third.cache_misses) == (1, 1)  # conv_a is upstream of the change: kept


def test_ctrl_c_stops_the_ascent_within_seconds_and_leaves_a_whole_site_saying_so(tmp_path):
    """The first look was published before the ascent: it stays, whole, saying the build stopped;
    no staging folder or half-written file is left."""
    out = tmp_path / "site"
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnviz_report", "build", "--out", str(out), "--ascent-steps", "100000", "--no-cache"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
        # as from a terminal: a job started in the background (`cmd &`) inherits SIGINT ignored,
        # and Python then installs no KeyboardInterrupt handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in process.stderr:
        if "gradient ascent" in line:
            break
    time.sleep(1.0)
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=30)
    assert code == 130
    assert time.monotonic() - interrupted < 5
    assert [p.name for p in tmp_path.iterdir()] == ["site"] and not any(".cnnviz-" in p.name for p in out.rglob("*"))
    assert "This build stopped before it ended" in (out / "index.html").read_text()
    assert "not drawn: the build stopped (interrupted)" in (out / "layers" / "002-conv1.html").read_text()


def test_a_graph_that_cannot_be_replayed_falls_back_to_the_models_own_size(keras, tiny_model, monkeypatch):
    import cnnviz_report.analysis.ascent as ascent

    monkeypatch.setattr(ascent, "free_size_values", lambda *args, **kwargs: (None, {}))
    conv = list(inspect_model(tiny_model).conv_layers)
    engine = LayerAscent.alone(tiny_model, conv[1], conv, (8, 8), 3, lambda p: p / 255.0,
                         AscentSettings(steps=10, fixed_canvas=(32, 32)))
    assert engine.canvas_hw == (8, 8)  # the fixed model only takes its own size
    assert engine._after  # the chain ends at the linear copy: the rescue still climbs the pre-activation
    result = engine.run([0, 1])
    assert result.images.shape[1:3] == (8 - 2 * round(8 * 25 / 180),) * 2 and np.all(result.activations > 0)


def test_the_quality_measure_tells_a_pixel_grid_pattern_from_a_feature(keras):
    """A pattern tuned to the exact pixel grid (a checkerboard for a 2x2 checkerboard filter) loses
    its response when shifted by part of a pixel, scaled or turned; a broad feature (a bright
    canvas for a filter that sums its window) keeps it; and the high-frequency share says which
    picture is which."""
    from cnnviz_report.analysis.quality import high_frequency_share
    from cnnviz_report.ascent_rules import kept_share

    inputs = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(2, 2, activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, conv)
    kernel = np.zeros((2, 2, 3, 2), np.float32)
    kernel[..., 0] = np.array([[1, -1], [-1, 1]], np.float32)[:, :, None]  # checkerboard detector
    kernel[..., 1] = 0.25  # sums its window
    model.set_weights([kernel, np.zeros(2, np.float32)])
    info = inspect_model(model).conv_layers[0]
    engine = LayerAscent.alone(model, info, [info], (48, 48), 3, lambda p: p / 255.0,
                               AscentSettings(fixed_canvas=(48, 48)))
    checkerboard = (np.indices((48, 48)).sum(axis=0) % 2 * 255.0)[..., None].repeat(3, axis=-1)
    bright = np.full((48, 48, 3), 200.0)
    response, transformed = engine.measure(np.stack([checkerboard, bright]), [0, 1])
    kept = [kept_share(float(t), float(a)) for t, a in zip(transformed, response)]
    assert response[0] > 1.5 and kept[0] < 0.5, (response, kept)  # the grid pattern loses most of it
    assert kept[1] > 0.95, (response, kept)  # the feature keeps it
    assert high_frequency_share(checkerboard) > 0.9 and high_frequency_share(bright) == 0.0
    assert 0.7 < high_frequency_share(np.random.default_rng(0).normal(size=(96, 96))) < 0.85  # white noise
    assert kept_share(1.0, 0.0) is None and kept_share(float("nan"), 1.0) is None


def test_a_gpu_plans_its_batches_from_its_total_memory_and_rate():
    """On an accelerator the batch is bounded by a quarter of its total memory and its far higher
    arithmetic rate; on this CPU the framework reports no accelerator, and the CPU plan holds."""
    from cnnviz_report.analysis.ascent import ASSUMED_ACCELERATOR_GFLOPS, STEP_SECONDS
    from cnnviz_report.analysis.framework import device_memory

    assert device_memory() is None  # this machine has no GPU
    cost, canvas = LayerCost(flops_per_pixel=2e6, bytes_per_pixel=4e3), (96, 96)
    cpu = plan_batch(cost, canvas, 4096, AscentSettings(mode="balanced"))
    gpu = plan_batch(cost, canvas, 4096, AscentSettings(mode="balanced", device_memory=80 << 30))
    by_memory = (80 << 30) // 4 // (4e3 * 96 * 96)
    by_time = STEP_SECONDS * ASSUMED_ACCELERATOR_GFLOPS * 1e9 / cost.step_flops(canvas)
    assert gpu == int(min(4096, by_memory, by_time)) and gpu > 4 * cpu
