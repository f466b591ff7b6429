"""Keras-2-era full-model .h5 files (made by tests/fixtures/make_legacy_h5.py with tf.keras 2):
BatchNorm, PReLU, SeparableConv2D, a 1-channel input and a fully convolutional (None, None, 3)
model load and build end to end, judged on what the next layer sees."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from cnnviz_report.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


def _build(tmp_path, name, photo_path, *options):
    out = tmp_path / "site"
    code = main(["build", str(FIXTURES / name), "--images", photo_path, "--out", str(out), "--quiet",
                 "--ascent-steps", "2", "--max-filters", "8", *options])
    assert code == 0
    return out


def _health(out):
    rows = list(csv.DictReader(io.StringIO((out / "health.csv").read_text())))
    layers = {}
    for row in rows:
        layers.setdefault(row["layer"], []).append(row)
    return layers


def test_keras2_bn_prelu_separable_model_builds_and_prelu_is_never_dead(tmp_path, photo_path):
    out = _build(tmp_path, "legacy_bn_prelu.h5", photo_path)
    health = _health(out)
    assert {name: len(rows) for name, rows in health.items()} == {
        "conv2d": 8, "conv2d_1": 8, "separable_conv2d": 16, "conv2d_2": 16}
    # conv -> BN -> PReLU(0.25): nothing is ever lost, so no filter may be dead
    assert all(row["dead_on_images"] == "0" for row in health["conv2d"])
    first = (out / "layers" / "001-conv2d.html").read_text()
    assert "conv2d → batch_normalization → p_re_lu" in first and "no floor" in first
    separable = (out / "layers" / "008-separable_conv2d.html").read_text()
    assert "separable_conv2d → batch_normalization_2 → re_lu" in separable
    assert "depthwise kernels" in separable and (out / "layers" / "008-separable_conv2d" / "filters-depthwise.png").is_file()


def test_keras2_one_channel_mini_xception_builds(tmp_path, photo_path):
    out = _build(tmp_path, "legacy_gray.h5", photo_path)
    health = _health(out)
    assert sum(len(rows) for rows in health.values()) == sum(int(r["filters"]) for r in _summary_rows(out))
    assert "(None, 48, 48, 1)" in (out / "index.html").read_text()


def _summary_rows(out):
    lines = [line for line in (out / "summary.md").read_text().splitlines()
             if line.startswith("| ") and "](layers/" in line]  # the layer table's rows
    return [{"filters": line.split("|")[6].strip()} for line in lines]


@pytest.mark.parametrize("size, expected", [(None, "224 × 224"), ("64x96", "64 × 96")])
def test_free_size_model_says_the_size_it_was_built_at(tmp_path, photo_path, size, expected):
    out = _build(tmp_path, "legacy_free_size.h5", photo_path, *(["--input-size", size] if size else []))
    index = (out / "index.html").read_text()
    assert f"{expected} pixels; the model takes any size" in index
    assert f"{expected} pixels" in (out / "layers" / "001-conv2d.html").read_text()


def test_hdf5_model_under_another_extension_loads(tmp_path, photo_path):
    renamed = tmp_path / "detector.model"
    shutil.copyfile(FIXTURES / "legacy_free_size.h5", renamed)
    code = main(["build", str(renamed), "--images", photo_path, "--out", str(tmp_path / "site"), "--quiet",
                 "--ascent-steps", "0"])
    assert code == 0


def test_subclassed_model_is_refused_with_the_way_out(keras, tmp_path, capsys):
    class Net(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = keras.layers.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    model = Net()
    model(keras.ops.zeros((1, 8, 8, 3)))
    model.save(tmp_path / "sub.keras")
    assert main(["build", str(tmp_path / "sub.keras"), "--out", str(tmp_path / "site")]) == 2
    error = capsys.readouterr().err.strip()
    assert "subclassed model (class Net)" in error and "keras.Model(x, y)" in error and "\n" not in error
    assert not (tmp_path / "site").exists()
