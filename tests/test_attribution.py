"""Why the model said it: Grad-CAM against keras.io's recipe, and planted models whose class is
decided by one region of the image and one filter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz_report.cli import main
from conftest import assert_valid_links

SIDE = 32
DETECTOR = 2  # the filter that fires on red


def planted_model(keras):
    """Filter 2 of ``detect`` fires on red pixels (red minus green minus blue); filter 0 on green.
    The head's class 1 is filter 2's mean alone, class 0 filter 0's, class 2 a constant."""
    inputs = keras.Input((SIDE, SIDE, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="detect")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((3, 3, 3, 4), np.float32)
    kernel[1, 1, :, DETECTOR] = (1.0, -1.0, -1.0)
    kernel[1, 1, :, 0] = (-1.0, 1.0, -1.0)
    model.get_layer("detect").set_weights([kernel, np.zeros(4, np.float32)])
    dense = np.zeros((4, 3), np.float32)
    dense[DETECTOR, 1] = 1.0
    dense[0, 0] = 1.0
    model.get_layer("head").set_weights([dense, np.array([0.0, 0.0, 2.0], np.float32)])
    return model


def square_image(path: Path, top: int, left: int) -> str:
    """Grey, with an 8x8 red square at (top, left): the only red in the picture."""
    pixels = np.full((SIDE, SIDE, 3), 128, np.uint8)
    pixels[top:top + 8, left:left + 8] = (255, 0, 0)
    Image.fromarray(pixels).save(path)
    return str(path)


@pytest.fixture(scope="module")
def planted_site(tmp_path_factory, keras):
    folder = tmp_path_factory.mktemp("planted")
    model_file = folder / "planted.keras"
    planted_model(keras).save(model_file)
    images = [square_image(folder / "top-right.png", 4, 20), square_image(folder / "bottom-left.png", 20, 4)]
    labels = folder / "labels.txt"
    labels.write_text("green\nred\nnothing\n")
    out = folder / "site"
    assert main(["build", str(model_file), "--images", *images, "--preprocess", "raw", "--labels", str(labels),
                 "--ascent-steps", "2", "--out", str(out), "--quiet"]) == 0
    return out


def test_the_planted_class_region_and_unit_are_found(planted_site):
    found = json.loads((planted_site / "attribution.json").read_text())
    by_name = {entry["image"]: entry for entry in found["images"]}
    for name, center in (("top-right.png", (0.75, 0.25)), ("bottom-left.png", (0.25, 0.75))):
        entry = by_name[name]
        assert entry["top"][0]["class"] == 1 and entry["top"][0]["label"] == "red"
        assert entry["gradcam"]["layer"] == "detect" and entry["gradcam"]["class"] == 1
        assert entry["gradcam"]["center"] == pytest.approx(center, abs=0.02)
        assert [(unit["layer"], unit["filter"]) for unit in entry["units"]] == [("detect", DETECTOR)]  # no other adds
        assert entry["units"][0]["share"] == pytest.approx(1.0) and entry["units"][0]["contribution"] > 0
    summary = (planted_site / "summary.md").read_text()
    assert "| red | " in summary and "detect #2 (100%)" in summary


def test_the_image_page_shows_where_the_model_looked_and_links_the_units_cards(planted_site):
    page = (planted_site / "images" / "01-top-right.html").read_text()
    assert "Where the model looked for “red”" in page
    assert "layers/001-detect/gradcam-01-top-right.jpg" in page
    assert 'href="../layers/001-detect.html#f2"' in page  # the deciding unit's card
    layer_page = (planted_site / "layers" / "001-detect.html").read_text()
    assert "Grad-CAM at this layer for red" in layer_page
    assert_valid_links(planted_site)


def test_class_chooses_what_is_explained_and_a_wrong_one_is_one_line(tmp_path, keras, capsys):
    model_file = tmp_path / "planted.keras"
    planted_model(keras).save(model_file)
    image = square_image(tmp_path / "square.png", 4, 20)
    out = tmp_path / "site"
    common = [str(model_file), "--images", image, "--preprocess", "raw", "--ascent-steps", "0", "--quiet"]
    assert main(["build", *common, "--class", "2", "--out", str(out)]) == 0
    entry = json.loads((out / "attribution.json").read_text())["images"][0]
    assert entry["gradcam"]["class"] == 2
    assert entry["units"] == []  # a constant: no unit decides it
    assert "No unit of these layers adds to" in (out / "images" / "01-square.html").read_text()
    capsys.readouterr()
    not_quiet = [arg for arg in common if arg != "--quiet"]
    assert main(["build", *not_quiet, "--class", "zebra", "--out", str(tmp_path / "other")]) == 2
    error = capsys.readouterr().err.strip().splitlines()  # before the first step: no progress line
    assert len(error) == 1 and "--class" in error[0] and "zebra" in error[0]
    assert not (tmp_path / "other").exists()
    labels = tmp_path / "labels.txt"
    labels.write_text("one\ntwo\n")
    assert main(["build", *common, "--labels", str(labels), "--out", str(tmp_path / "third")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "labels.txt" in error[0] and "2 class names" in error[0]
    assert not (tmp_path / "third").exists()
    assert main(["build", *common, "--out", str(out), "--labels", str(labels)]) == 2  # over a site built before
    assert json.loads((out / "attribution.json").read_text())["images"][0]["gradcam"]["class"] == 2  # untouched


def test_a_model_without_class_scores_gets_a_note_not_an_error(tmp_path, keras, photo_path):
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="features")(inputs)
    outputs = keras.layers.Dense(1, name="regression")(keras.layers.GlobalAveragePooling2D()(x))
    model_file = tmp_path / "regression.keras"
    keras.Model(inputs, outputs).save(model_file)
    out = tmp_path / "site"
    assert main(["build", str(model_file), "--images", photo_path, "--ascent-steps", "0", "--out", str(out),
                 "--quiet"]) == 0
    entry = json.loads((out / "attribution.json").read_text())["images"][0]
    assert "gradcam" not in entry and "no class output" in entry["note"]
    assert "no class output" in (out / "images" / "01-grace_hopper.html").read_text()


def test_gradcam_equals_the_keras_io_recipe_on_vgg16(keras):
    """keras.io's "Grad-CAM class activation visualization", verbatim but for the model: the last
    layer's activation removed, the gradient of the class score, pooled, weighting the channels."""
    import tensorflow as tf

    from cnnviz_report.analysis.attribution import AttributionProbe
    from cnnviz_report.analysis.keras_walk import inspect_model

    keras.utils.set_random_seed(3)
    model = keras.applications.VGG16(weights=None)
    conv = [info for info in inspect_model(model).conv_layers if info.takes_images]
    probe = AttributionProbe(model, conv, conv[-3:])
    img_array = keras.applications.vgg16.preprocess_input(
        np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32))
    pred_index = int(np.argmax(model.predict(img_array, verbose=0)[0]))
    evidence = probe(img_array, [pred_index])[0]

    model.layers[-1].activation = None  # keras.io: "Remove last layer's softmax"
    grad_model = keras.models.Model(model.inputs, [model.get_layer("block5_conv3").output, model.output])
    with tf.GradientTape() as tape:
        last_conv_layer_output, preds = grad_model(img_array)
        class_channel = preds[:, pred_index]
    grads = tape.gradient(class_channel, last_conv_layer_output)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))
    heatmap = tf.squeeze(last_conv_layer_output[0] @ pooled_grads[..., tf.newaxis])
    heatmap = (tf.maximum(heatmap, 0) / tf.math.reduce_max(heatmap)).numpy()

    ours = evidence[conv[-1].index].cam
    assert heatmap.max() == pytest.approx(1.0) and (heatmap > 0.05).sum() > 3  # a real map, not all zero
    np.testing.assert_allclose(ours / ours.max(), heatmap, atol=1e-4)
    # the units' contributions add up to the class score's first-order share through the layer
    contributions = evidence[conv[-1].index].contributions
    last = last_conv_layer_output[0].numpy()
    np.testing.assert_allclose(contributions, (last * grads[0].numpy()).sum(axis=(0, 1)), rtol=1e-4, atol=1e-6)


def test_the_diff_shows_how_each_images_decision_changed(tmp_path, keras):
    """B detects red with filter 1 instead of 2: the same class, looked for in the same place,
    decided by another unit."""
    a = planted_model(keras)
    a.save(tmp_path / "a.keras")
    kernel, bias = a.get_layer("detect").get_weights()
    kernel[..., [1, 2]] = kernel[..., [2, 1]]
    dense, head_bias = a.get_layer("head").get_weights()
    dense[[1, 2]] = dense[[2, 1]]
    b = keras.models.load_model(tmp_path / "a.keras")
    b.get_layer("detect").set_weights([kernel, bias])
    b.get_layer("head").set_weights([dense, head_bias])
    b.save(tmp_path / "b.keras")
    image = square_image(tmp_path / "square.png", 4, 20)
    out = tmp_path / "diff"
    assert main(["diff", str(tmp_path / "a.keras"), str(tmp_path / "b.keras"), "--images", image,
                 "--preprocess", "raw", "--ascent-steps", "0", "--out", str(out), "--quiet"]) == 0
    summary = (out / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if line.startswith("| [square.png]"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1].startswith("class 1") and cells[2].startswith("class 1") and "changed" not in cells[2]
    assert float(cells[3]) == pytest.approx(0.0, abs=0.01) and float(cells[4]) == pytest.approx(1.0, abs=0.01)
    assert (cells[5], cells[6]) == ("detect #2", "detect #1")
    index = (out / "index.html").read_text()
    assert 'id="decisions"' in index and "a/layers/001-detect/gradcam-01-square.jpg" in index
    assert ">0 of 1<" in index  # no deciding unit in common
    assert "b/layers/001-detect/gradcam-01-square.jpg" in index
    assert_valid_links(out)


def test_a_deciding_unit_past_max_filters_still_gets_its_ascent_picture(planted_site, tmp_path, keras):
    """With cards for filters 0-1 only, the deciding filter 2 is climbed for the image page, and
    its picture is the one its card shows when it has one."""
    model_file = tmp_path / "planted.keras"
    planted_model(keras).save(model_file)
    image = square_image(tmp_path / "top-right.png", 4, 20)
    out = tmp_path / "site"
    assert main(["build", str(model_file), "--images", image, "--preprocess", "raw", "--ascent-steps", "2",
                 "--max-filters", "2", "--out", str(out), "--quiet"]) == 0
    picture = "layers/001-detect/f002-ascent.png"
    page = (out / "images" / "01-top-right.html").read_text()
    assert f"../{picture}" in page and "has no card; its gradient-ascent picture was climbed" in page
    assert 'href="../layers/001-detect.html#f2"' not in page  # no card to link to
    assert (out / picture).read_bytes() == (planted_site / picture).read_bytes()
    assert_valid_links(out)


def test_a_model_that_predicts_nan_writes_null_not_a_crash(tmp_path, keras, photo_path, capsys):
    """A BatchNormalization with a negative moving variance (a broken checkpoint) makes every score
    NaN: the build finishes, attribution.json says null where there is no number, the console
    holds nothing but the build's own lines."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    gamma, beta, mean, _ = model.get_layer("bn").get_weights()
    model.get_layer("bn").set_weights([gamma, beta, mean, -np.ones_like(mean)])
    model.save(tmp_path / "nan.keras")
    out = tmp_path / "site"
    assert main(["build", str(tmp_path / "nan.keras"), "--out", str(out), "--images", photo_path,
                 "--ascent-steps", "1", "--max-filters", "2", "--quiet"]) == 0
    top = json.loads((out / "attribution.json").read_text())["images"][0]["top"]
    assert [entry["probability"] for entry in top] == [None, None, None]
    assert capsys.readouterr().err == ""
