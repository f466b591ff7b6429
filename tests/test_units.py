"""A unit is what the next layer sees: planted models where the raw conv output and the response
after BatchNormalization / activation disagree, each with its exact dead and constant filters."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnviz_report.build import build_site
from cnnviz_report.config import ReportConfig

# 8 filters of a 1x1 conv on a 16x16x3 input in 0..1 ("unit" preprocessing): each filter's raw
# output is 0.1 * (sum of the pixel's channels) + bias, so it varies, and its sign is the bias's.
NEGATIVE_RAW = [0, 1, 2, 3]  # bias -5: negative before BN; BN shifts them by +10, so alive after ReLU
POSITIVE_RAW = [4, 5, 6, 7]  # bias +5: positive before BN; BN shifts them by -10, so really dead


@pytest.fixture(scope="module")
def noise_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    for number in range(2):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"noise{number}.png")
    return (str(folder),)


def _conv(keras, name="conv", activation=None):
    return keras.layers.Conv2D(8, 1, activation=activation, name=name)


def _plant_conv(layer, biases):
    layer.set_weights([np.full((1, 1, 3, 8), 0.1, np.float32), np.asarray(biases, np.float32)])


def _plant_bn(layer, shifts):
    channels = len(shifts)
    layer.set_weights([np.ones(channels, np.float32), np.asarray(shifts, np.float32),
                       np.zeros(channels, np.float32), np.ones(channels, np.float32)])


BIASES = [-5.0] * 4 + [5.0] * 4
SHIFTS = [10.0] * 4 + [-10.0] * 4


def _bn_model(keras, after):
    """conv -> BN -> ``after`` (a layer, or None for a linear projection) -> pooling head."""
    inputs = keras.Input((16, 16, 3))
    conv, bn = _conv(keras), keras.layers.BatchNormalization(name="bn")
    x = bn(conv(inputs))
    if after is not None:
        x = after(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    _plant_conv(conv, BIASES)
    _plant_bn(bn, SHIFTS)
    return model


def _build(model, tmp_path, images, **options):
    path = tmp_path / "model.keras"
    model.save(path)
    config = ReportConfig(model=str(path), images=images, out=str(tmp_path / "site"), ascent_steps=0,
                          use_cache=False, preprocess="unit", **options)
    return build_site(config).report


def _verdicts(report, name="conv"):
    (layer,) = [r for r in report.layers if r.info.name == name]
    return set(layer.health.dead), set(layer.health.constant), layer


@pytest.mark.parametrize("after, dead", [
    ("relu", POSITIVE_RAW),  # the four negative before BN are alive after it; the four positive are dead
    ("relu6", POSITIVE_RAW),
    ("prelu", []),  # slope 0.25: nothing is ever lost, so nothing is dead
    ("leaky", []),
    ("linear", []),  # a linear projection (MobileNetV2's "project" layers) has no floor
])
def test_bn_then_activation_judges_the_response(keras, tmp_path, noise_images, after, dead):
    layer = {"relu": keras.layers.Activation("relu", name="act"), "relu6": keras.layers.ReLU(6.0, name="act"),
             "prelu": keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2],
                                         name="act"),
             "leaky": keras.layers.LeakyReLU(0.1, name="act"), "linear": None}[after]
    report = _build(_bn_model(keras, layer), tmp_path, noise_images)
    found_dead, constant, drawn = _verdicts(report)
    assert found_dead == set(dead)
    assert constant == set()
    assert drawn.info.unit_layers == (("bn", "act") if layer is not None else ("bn",))
    page = (tmp_path / "site" / "layers" / f"{drawn.slug}.html").read_text()
    assert "conv → bn" in page and "what the next layer sees" in page
    assert ("no floor" in page) == (not dead)


def test_an_activation_written_as_a_keras_ops_call_joins_the_unit(keras, tmp_path, noise_images):
    """conv -> BN -> keras.ops.relu: the call is an operation of the graph, not a layer, and is the
    unit's end as an Activation layer would be (PyTorch's F.relu is, too): the same four dead.
    A call that reads a second tensor (keras.ops.add of two convs) ends the chain."""
    report = _build(_bn_model(keras, keras.ops.relu), tmp_path, noise_images)
    found_dead, constant, drawn = _verdicts(report)
    bn, relu = drawn.info.unit_layers  # the op's name is Keras's: "relu", or "relu_1" after another relu op
    assert bn == "bn" and relu.startswith("relu") and (found_dead, constant) == (set(POSITIVE_RAW), set())
    assert f"conv → bn → {relu}" in (tmp_path / "site" / "layers" / f"{drawn.slug}.html").read_text()

    inputs = keras.Input((16, 16, 3))
    a, b = _conv(keras, "a"), _conv(keras, "b")
    x = keras.ops.relu(keras.ops.add(a(inputs), b(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    (tmp_path / "mixed").mkdir()
    mixed = _build(model, tmp_path / "mixed", noise_images)
    assert [r.info.unit_layers for r in mixed.layers] == [(), ()]


def test_unit_raw_keeps_the_conv_output(keras, tmp_path, noise_images):
    """--unit raw: the conv is linear, so it has no floor and nothing is dead; the maps are raw."""
    report = _build(_bn_model(keras, keras.layers.Activation("relu", name="act")), tmp_path, noise_images,
                    unit="raw")
    found_dead, constant, drawn = _verdicts(report)
    assert (found_dead, constant, drawn.info.unit_layers) == (set(), set(), ())
    assert drawn.stats.max[:, NEGATIVE_RAW].max() < 0 < drawn.stats.min[:, POSITIVE_RAW].min()
    assert "--unit raw" in (tmp_path / "site" / "layers" / f"{drawn.slug}.html").read_text()


def test_fused_activation_is_the_floor_and_mixing_or_branching_ends_the_chain(keras, tmp_path, noise_images):
    inputs = keras.Input((16, 16, 3))
    fused = _conv(keras, "fused", activation="relu")  # fused ReLU, then a channel-mixing layer
    branch = _conv(keras, "branch")  # BN output used twice: the chain ends at BN
    a = keras.layers.LayerNormalization(name="mixes")(fused(inputs))
    bn = keras.layers.BatchNormalization(name="branch_bn")
    b = bn(branch(inputs))
    b = keras.layers.Add()([keras.layers.ReLU(name="after_branch")(b), b])
    x = keras.layers.Concatenate()([a, b])
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    _plant_conv(fused, BIASES)
    _plant_conv(branch, BIASES)
    _plant_bn(bn, SHIFTS)
    report = _build(model, tmp_path, noise_images)
    dead, constant, layer = _verdicts(report, "fused")
    assert (dead, constant, layer.info.unit_layers) == (set(NEGATIVE_RAW), set(), ())
    dead, constant, layer = _verdicts(report, "branch")
    assert (dead, constant, layer.info.unit_layers) == (set(), set(), ("branch_bn",))


def test_nested_sub_model_chain_and_constant_filters(keras, tmp_path, noise_images):
    inner_in = keras.Input((16, 16, 3))
    conv, bn = _conv(keras), keras.layers.BatchNormalization(name="bn")
    inner = keras.Model(inner_in, keras.layers.ReLU(name="act")(bn(conv(inner_in))), name="backbone")
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inner(inputs))))
    conv.set_weights([np.concatenate([np.full((1, 1, 3, 6), 0.1, np.float32), np.zeros((1, 1, 3, 2), np.float32)],
                                     axis=-1), np.asarray(BIASES[:6] + [1.0, -1.0], np.float32)])
    _plant_bn(bn, SHIFTS[:6] + [0.0, 0.0])
    report = _build(model, tmp_path, noise_images)
    dead, constant, layer = _verdicts(report)
    # filter 6: kernel 0, bias 1 -> 1 everywhere (constant); filter 7: bias -1 -> 0 everywhere (dead)
    assert layer.info.qualified_name == "backbone/conv" and layer.info.unit_layers == ("bn", "act")
    assert dead == {4, 5, 7} and constant == {6}


def test_ascent_climbs_the_response_and_judges_only_with_enough_steps(keras, tmp_path, noise_images):
    model = _bn_model(keras, keras.layers.Activation("relu", name="act"))
    path = tmp_path / "model.keras"
    model.save(path)
    for steps, judged in ((2, False), (12, True)):
        config = ReportConfig(model=str(path), images=noise_images, out=str(tmp_path / f"site{steps}"),
                              ascent_steps=steps, use_cache=False, preprocess="unit")
        layer = build_site(config).report.layers[0]
        assert layer.ascent_judged is judged
        assert set(layer.health.ascent_dead) <= (set(POSITIVE_RAW) if judged else set())
        activations = [card.ascent_quality.activation for card in layer.cards]
        # the filters negative before BN respond after it; the response is what the mosaic reports
        assert min(activations[:4]) > 0
        summary = (tmp_path / f"site{steps}" / "summary.md").read_text()
        assert ("not judged" in summary) is not judged
