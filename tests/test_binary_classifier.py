"""A one-unit binary classifier (keras.io's "Image classification from scratch", cats vs dogs):
read as two classes when it ends in a sigmoid or when --labels names two, each class explained
(class 1 by the logit, class 0 by its negative); a linear unit without labels stays a regression
head with a note."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz_report.cli import main
from cnnviz_report.phases.predictions import binary_probabilities
from conftest import assert_valid_links

SIDE = 32
RED, GREEN = 2, 0  # the filters of ``detect`` that fire on red and on green
WEIGHT = 0.1  # the head: logit = WEIGHT * (mean red response - mean green response) + BIAS
BIAS = 0.2


def planted_binary_model(keras, activation: str | None):
    """Filter 2 of ``detect`` fires on red, filter 0 on green; the one output unit adds the red
    filter's mean and takes away the green one's: red is evidence for class 1, green for class 0."""
    inputs = keras.Input((SIDE, SIDE, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="detect")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation=activation, name="head")(x)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((3, 3, 3, 4), np.float32)
    kernel[1, 1, :, RED] = (1.0, -1.0, -1.0)
    kernel[1, 1, :, GREEN] = (-1.0, 1.0, -1.0)
    model.get_layer("detect").set_weights([kernel, np.zeros(4, np.float32)])
    dense = np.zeros((4, 1), np.float32)
    dense[RED, 0], dense[GREEN, 0] = WEIGHT, -WEIGHT
    model.get_layer("head").set_weights([dense, np.array([BIAS], np.float32)])
    return model


def red_and_green(path: Path) -> str:
    """Grey, an 8x8 red square top right and a 4x4 green one bottom left: more red than green."""
    pixels = np.full((SIDE, SIDE, 3), 128, np.uint8)
    pixels[4:12, 20:28] = (255, 0, 0)
    pixels[22:26, 4:8] = (0, 255, 0)
    Image.fromarray(pixels).save(path)
    return str(path)


RED_CENTER, GREEN_CENTER = (0.75, 0.25), (6 / SIDE, 24 / SIDE)
LOGIT = WEIGHT * (255 * 64 - 255 * 16) / SIDE ** 2 + BIAS  # 1.395
P = 1 / (1 + np.exp(-LOGIT))  # class 1's probability, 0.801


def _build(tmp_path: Path, keras, activation: str | None, *extra: str, name: str = "site") -> Path:
    model_file = tmp_path / f"binary-{activation}.keras"
    if not model_file.exists():
        planted_binary_model(keras, activation).save(model_file)
    image = red_and_green(tmp_path / "red-green.png")
    out = tmp_path / name
    assert main(["build", str(model_file), "--images", image, "--preprocess", "raw", "--ascent-steps", "0",
                 "--out", str(out), "--quiet", *extra]) == 0
    return out


def _entry(site: Path) -> dict:
    return json.loads((site / "attribution.json").read_text())["images"][0]


def test_binary_probabilities_are_p_and_one_minus_p():
    np.testing.assert_allclose(binary_probabilities(np.array([[0.8], [0.1]]), squashed=True),
                               [[0.2, 0.8], [0.9, 0.1]])
    np.testing.assert_allclose(binary_probabilities(np.array([[0.0], [LOGIT], [-800.0], [800.0]]), squashed=False),
                               [[0.5, 0.5], [1 - P, P], [1.0, 0.0], [0.0, 1.0]], atol=1e-12)


def test_class_0_is_explained_by_the_negated_logit(tmp_path, keras):
    """The probe's evidence for class 0 is its evidence for class 1 with the gradient negated:
    contributions of the opposite sign, and Grad-CAM the other half of the same signed map. The
    sigmoid is taken off first: the sigmoid model's evidence is the linear twin's."""
    from cnnviz_report.analysis.attribution import AttributionProbe
    from cnnviz_report.analysis.keras_walk import inspect_model

    pixels = np.asarray(Image.open(red_and_green(tmp_path / "red-green.png")), np.float32)[None]
    evidence = {}
    for activation in ("sigmoid", None):
        model = planted_binary_model(keras, activation)
        conv = inspect_model(model).conv_layers
        probe = AttributionProbe(model, list(conv), list(conv), binary=True)
        evidence[activation] = [probe(pixels, [c])[0][conv[0].index] for c in (0, 1)]
    zero, one = evidence["sigmoid"]
    np.testing.assert_allclose(zero.contributions, -one.contributions, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(zero.where, -one.where, rtol=1e-6, atol=1e-9)
    assert one.contributions[RED] > 0 and zero.contributions[GREEN] > 0
    assert np.minimum(zero.cam, one.cam).max() == 0 and one.cam.max() > 0 and zero.cam.max() > 0
    # the signed map both halves come from: d logit / d response = ±WEIGHT / positions, red's and green's
    r, g, b = pixels[0].transpose(2, 0, 1)
    signed = WEIGHT / SIDE ** 2 * (np.maximum(r - g - b, 0) - np.maximum(g - r - b, 0))
    np.testing.assert_allclose(one.cam - zero.cam, signed, rtol=1e-5, atol=1e-8)
    for linear, squashed in zip(evidence[None], evidence["sigmoid"]):
        np.testing.assert_allclose(linear.contributions, squashed.contributions, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(linear.cam, squashed.cam, rtol=1e-6, atol=1e-9)


def test_a_sigmoid_unit_is_a_binary_classifier_with_both_classes_explained(tmp_path, keras):
    site = _build(tmp_path, keras, "sigmoid")
    entry = _entry(site)
    assert [(p["class"], p["label"]) for p in entry["top"]] == [(1, "class 1"), (0, "class 0")]
    assert [p["probability"] for p in entry["top"]] == pytest.approx([P, 1 - P], abs=1e-5)
    assert entry["gradcam"]["class"] == 1 and entry["gradcam"]["score"] == "logit"
    assert entry["gradcam"]["center"] == pytest.approx(RED_CENTER, abs=0.02)
    assert [(unit["layer"], unit["filter"]) for unit in entry["units"]] == [("detect", RED)]
    page = (site / "images" / "01-red-green.html").read_text()
    assert f"{P:.1%}" in page and f"{1 - P:.1%}" in page and "no class output" not in page
    assert "Where the model looked for “class 1”" in page and "the logit, class 1's score" in page
    summary = (site / "summary.md").read_text()
    assert f"| class 1 | {P:.1%} |" in summary and "detect #2 (100%)" in summary
    assert "class 1 is explained by the logit, class 0 by its negative" in summary
    assert_valid_links(site)

    other = _build(tmp_path, keras, "sigmoid", "--class", "0", name="class-0")
    entry = _entry(other)
    assert entry["gradcam"]["class"] == 0 and entry["gradcam"]["label"] == "class 0"
    assert entry["gradcam"]["score"] == "-logit"
    assert entry["gradcam"]["center"] == pytest.approx(GREEN_CENTER, abs=0.02)
    assert [(unit["layer"], unit["filter"]) for unit in entry["units"]] == [("detect", GREEN)]
    page = (other / "images" / "01-red-green.html").read_text()
    assert f"Grad-CAM for class 0 (class 0, {1 - P:.1%})" in page and "gradient of minus the model" in page


def test_a_linear_unit_with_two_labels_is_a_binary_classifier_through_a_sigmoid(tmp_path, keras, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    site = _build(tmp_path, keras, None, "--labels", str(labels), "--class", "cat")
    entry = _entry(site)
    assert [(p["class"], p["label"]) for p in entry["top"]] == [(1, "dog"), (0, "cat")]
    assert [p["probability"] for p in entry["top"]] == pytest.approx([P, 1 - P], abs=1e-5)
    assert (entry["gradcam"]["class"], entry["gradcam"]["label"], entry["gradcam"]["score"]) == (0, "cat", "-logit")
    assert [(unit["layer"], unit["filter"]) for unit in entry["units"]] == [("detect", GREEN)]
    assert f"| cat | {1 - P:.1%} |" in (site / "summary.md").read_text()

    capsys.readouterr()
    labels.write_text("cat\ndog\nbird\n")
    assert main(["build", str(tmp_path / "binary-None.keras"), "--images", str(tmp_path / "red-green.png"),
                 "--labels", str(labels), "--out", str(tmp_path / "three")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "labels.txt" in error[0] and "3 class names" in error[0] and "binary" in error[0]
    assert not (tmp_path / "three").exists()


def test_a_linear_unit_without_labels_is_a_regression_head_with_a_note(tmp_path, keras):
    site = _build(tmp_path, keras, None)
    entry = _entry(site)
    assert entry["top"] == [] and "gradcam" not in entry
    assert "no class output" in entry["note"] and "regression head" in entry["note"] and "--labels" in entry["note"]
    page = (site / "images" / "01-red-green.html").read_text()
    assert "regression head" in page and "What the model predicts" not in page


def test_a_sigmoid_is_found_as_an_activation_a_layer_or_inside_a_nested_model(keras):
    from cnnviz_report.analysis.attribution import ends_in_sigmoid

    def model(*head):
        inputs = keras.Input((SIDE, SIDE, 3))
        x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inputs))
        for layer in head:
            x = layer(x)
        return keras.Model(inputs, x)

    assert ends_in_sigmoid(model(keras.layers.Dense(1, activation="sigmoid")))
    assert ends_in_sigmoid(model(keras.layers.Dense(1), keras.layers.Activation("sigmoid")))
    assert ends_in_sigmoid(model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])))
    assert not ends_in_sigmoid(model(keras.layers.Dense(1)))
    assert not ends_in_sigmoid(model(keras.layers.Dense(1, activation="relu")))
