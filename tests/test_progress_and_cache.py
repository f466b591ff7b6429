"""The build's step plan and progress events, the mosaic cache's key and entries, and the ascent
recipes as compositions of parts."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest

from cnnviz_report.analysis.ascent import BALANCED_30, AscentSettings, LayerAscent
from cnnviz_report.analysis.ascent_parts import (Adam, AffineTransforms, ClippedDisplay, FourierImage, LucidTransforms, NoTransforms,
                                                 NormalisedGradient, PixelImage, StandardisedDisplay, recipe)
from cnnviz_report.cache import MosaicEntry, ascent_key
from cnnviz_report.config import ReportConfig
from cnnviz_report.layers import LayerInfo
from cnnviz_report.analysis.keras_walk import inspect_model
from cnnviz_report.progress import (ASCENT, ATTRIBUTION, IMAGES, INPUTS, KERNELS, PAGES, SITE, Step, StepTracker,
                                    feature_phase, plan_steps)


def _layer(index: int, name: str) -> LayerInfo:
    return LayerInfo(index, name, (), 0, "Conv2D", (None, 8, 8, 4), 112, kernel_shape=(3, 3, 3, 4), filters=4,
                     conv_kind="conv2d")


def test_the_plan_lists_every_step_in_build_order_with_its_cost():
    first, second = _layer(1, "a"), _layer(2, "b")
    steps = plan_steps([first, second], [first, second], {2: 5e9}, n_images=10, config=ReportConfig())
    assert [(s.subject, s.phase) for s in steps] == [
        (INPUTS, IMAGES), ("a", KERNELS), ("b", KERNELS),
        ("a", feature_phase(1, 8)), ("b", feature_phase(1, 8)), ("a", feature_phase(9, 10)),
        ("b", feature_phase(9, 10)), ("b", ASCENT), (INPUTS, ATTRIBUTION), (SITE, PAGES)]
    assert steps[-3].cost == 5e9 and steps[3].cost > steps[5].cost  # 8 images cost more than 2
    assert [s.phase for s in plan_steps([first], [first], {}, 2, ReportConfig(explain=False))][-2:] == [
        feature_phase(1, 2), PAGES]  # --no-explain: no explanation step


def test_a_layer_with_more_weights_plans_more_kernel_drawing_and_pages_grow_with_the_layers():
    from dataclasses import replace

    from cnnviz_report.progress import DRAWING_COST, WEIGHTS_PER_DRAWING

    small, large = _layer(1, "a"), replace(_layer(2, "b"), params=4 * WEIGHTS_PER_DRAWING)
    steps = plan_steps([small, large], [], {}, n_images=0, config=ReportConfig())
    assert [step.cost for step in steps if step.phase == KERNELS] == pytest.approx(
        [DRAWING_COST * (1 + 112 / WEIGHTS_PER_DRAWING), 5 * DRAWING_COST])
    more = plan_steps([small] * 10, [], {}, n_images=0, config=ReportConfig())
    assert more[-1].cost > steps[-1].cost  # the pages of 10 layers


def test_the_tracker_reports_shares_of_work_and_refuses_a_step_it_did_not_plan():
    events = []
    tracker = StepTracker([Step("a", KERNELS, 1.0), Step("b", ASCENT, 3.0), Step(SITE, PAGES, 0.0)], events.append)
    tracker.advance("a", KERNELS)
    within = tracker.advance("b", ASCENT)
    within(0.5, "2 of 4 filters")
    assert [(e.step, e.total, e.work_done, e.detail) for e in events] == [
        (1, 3, 0.0, ""), (2, 3, 0.25, ""), (2, 3, 0.625, "2 of 4 filters")]
    with pytest.raises(RuntimeError, match="progress plan out of step"):
        tracker.advance("b", ASCENT)  # the plan says pages next
    StepTracker([Step("a", KERNELS, 1.0)], None).advance("a", KERNELS)  # silent without a callback


def test_the_ascent_reports_after_each_batch(keras, tiny_model):
    info = inspect_model(tiny_model).conv_layers[0]
    engine = LayerAscent.alone(tiny_model, info, [info], (16, 16), 3, lambda p: p / 255.0,
                         AscentSettings(steps=1, batch_size=1, min_canvas=16))
    heard = []
    engine.run([0, 1, 2], on_batch=lambda done, total: heard.append((done, total)))
    assert heard == [(1, 3), (2, 3), (3, 3)]


def test_the_cache_key_holds_every_ascent_setting_and_the_input_geometry():
    info = _layer(1, "a")
    geometry = {"input_hw": (32, 32), "channels": 3, "channels_first": False, "preprocess": "unit"}
    selection = {"select": "first", "count": 4}
    base = AscentSettings()
    keys = {ascent_key("w", info, base, geometry, selection)}
    changed = {"mode": "robust", "steps": 7, "learning_rate": 0.5, "seed": 1, "rescue_stuck": False, "min_canvas": 16,
               "max_canvas": 64, "fixed_canvas": (40, 40), "memory_budget": 1 << 20, "batch_size": 3,
               "noise_amplitude": 20.0, "adam_betas": (0.8, 0.99), "device_memory": 80 << 30,
               "precision": "mixed"}
    assert set(changed) == {f.name for f in dataclasses.fields(AscentSettings)}  # a new field needs a case here
    for name, value in changed.items():
        keys.add(ascent_key("w", info, dataclasses.replace(base, **{name: value}), geometry, selection))
    keys.add(ascent_key("w", info, base, dict(geometry, preprocess="caffe"), selection))
    keys.add(ascent_key("w", info, base, geometry, dict(selection, select="top")))
    keys.add(ascent_key("w2", info, base, geometry, selection))
    keys.add(ascent_key("w", dataclasses.replace(info, unit_layers=("relu",)), base, geometry, selection))
    assert len(keys) == len(changed) + 5  # every change makes a new key
    # the backend and device that climb are in the key: a picture climbed on JAX is not TensorFlow's
    from cnnviz_report import cache

    original = cache.backend_and_device
    try:
        cache.backend_and_device = lambda: "jax on cpu"
        assert ascent_key("w", info, base, geometry, selection) not in keys
    finally:
        cache.backend_and_device = original
    # the default balanced recipe and the one before issue 30 (30 steps of Adam 0.15, Adam's betas) differ
    before = AscentSettings(**BALANCED_30)
    assert ascent_key("w", info, AscentSettings(mode="balanced"), geometry, selection) != \
        ascent_key("w", info, before, geometry, selection)
    assert ascent_key("w", info, before, geometry, selection) != \
        ascent_key("w", info, dataclasses.replace(before, adam_betas=None), geometry, selection)


@pytest.mark.parametrize("floor", [None, np.zeros(4)])
def test_a_cache_entry_survives_its_npz_round_trip(floor):
    entry = MosaicEntry(np.array([2, 0], np.int64), np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3),
                        np.array([1.5, -0.25], np.float32), np.array([1.25, -0.5], np.float32),
                        np.array([0.1, 0.7], np.float32), (24, 32), floor)
    stream = io.BytesIO()
    entry.to_npz(stream)
    stream.seek(0)
    with np.load(stream, allow_pickle=False) as stored:
        back = MosaicEntry.from_npz(stored)
    assert back.canvas_hw == (24, 32) and (back.floor is None) == (floor is None)
    for name in ("filter_indices", "images", "activations", "transformed", "high_frequency"):
        np.testing.assert_array_equal(getattr(back, name), getattr(entry, name))


def test_the_modes_are_compositions_of_the_same_kinds_of_part(keras):
    fast, robust = recipe("fast", (32, 32), 3, 10.0, 10.0), recipe("robust", (32, 32), 3, 0.05, 10.0)
    balanced = recipe("balanced", (32, 32), 3, 0.15, 10.0)
    assert [type(part) for part in (balanced.image, balanced.transforms, balanced.optimiser, balanced.display)] == \
        [FourierImage, AffineTransforms, Adam, ClippedDisplay]
    assert [type(part) for part in (fast.image, fast.transforms, fast.optimiser, fast.display)] == \
        [PixelImage, NoTransforms, NormalisedGradient, StandardisedDisplay]
    assert [type(part) for part in (robust.image, robust.transforms, robust.optimiser, robust.display)] == [FourierImage, LucidTransforms, Adam, ClippedDisplay]
    rng = np.random.default_rng(0)
    for composed in (fast, robust):  # one interface: parameters -> pixels in 0..255 of the canvas's shape
        pixels = np.asarray(composed.transforms.apply(composed.image.pixels(composed.image.initial(rng, 2)),
                                                      composed.transforms.draw(rng)))
        assert pixels.shape[0] == 2 and pixels.shape[-1] == 3 and 0 <= pixels.min() and pixels.max() <= 255
    with pytest.raises(ValueError, match="no ascent recipe"):
        recipe("dream", (32, 32), 3, 1.0, 1.0)


def test_the_time_left_takes_each_kind_of_step_at_its_own_rate(monkeypatch):
    """Drawing and ascent go at different rates: before any ascent has run it is taken at the
    assumed rate, then at the build's own."""
    from cnnviz_report import progress as progress_module
    from cnnviz_report.progress import ASCENT, ASSUMED_ASCENT_RATE, KERNELS, Step, StepTracker

    clock = [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    steps = [Step("a", KERNELS, 1e9), Step("a", ASCENT, 4e11), Step("b", ASCENT, 4e11), Step("site", "pages", 1e9)]
    tracker = StepTracker(steps, None)
    assert tracker.seconds_left() is None  # nothing done yet
    tracker.advance("a", KERNELS)
    clock[0] += 2.0  # drawing: 0.5e9 a second
    tracker.advance("a", ASCENT)
    assert tracker.seconds_left() == pytest.approx(8e11 / ASSUMED_ASCENT_RATE + 1e9 / 0.5e9)
    clock[0] += 20.0  # this build's ascent: 2e10 a second, five times slower than assumed
    assert tracker.seconds_left(current_done=True) == pytest.approx(4e11 / 2e10 + 1e9 / 0.5e9)
