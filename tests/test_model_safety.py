"""Hostile and broken model files: refused in one line, before Keras runs anything in them."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from cnnviz_report.cli import main
from cnnviz_report.config import ReportConfig
from cnnviz_report.errors import ModelLoadError
from cnnviz_report.analysis.keras_loading import load_model


def _payload(sentinel) -> str:
    return f"open({str(sentinel)!r}, 'w').write('code ran')"


def _keras_with_lambda(keras, path, sentinel, nested: bool):
    """A real .keras file whose Lambda would create ``sentinel`` if its code ever ran."""
    code = _payload(sentinel)
    inputs = keras.Input((8, 8, 3))
    lam = keras.layers.Lambda(lambda x: x + float(eval(code) is None), name="innocent_looking")  # noqa: S307
    if nested:
        inner_in = keras.Input((8, 8, 3))
        inner = keras.Model(inner_in, lam(inner_in), name="backbone")
        outputs = keras.layers.Conv2D(2, 3, name="c")(inner(inputs))
    else:
        outputs = keras.layers.Conv2D(2, 3, name="c")(lam(inputs))
    sentinel.unlink(missing_ok=True)  # building the model evaluated it once, here in the test
    keras.Model(inputs, outputs).save(path)


def _rewrite_config(source, target, edit):
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _find(config, class_name):
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") == class_name:
                return node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise AssertionError(class_name)


@pytest.mark.parametrize("nested", [False, True])
def test_lambda_layers_are_refused_and_never_run(keras, tmp_path, nested, capsys, figures):
    sentinel, path = tmp_path / "pwned", tmp_path / "lambda.keras"
    _keras_with_lambda(keras, path, sentinel, nested)
    code = main(["build", str(path), "--out", str(tmp_path / "site")])
    figures["model files tried"] += 1
    figures["refused"] += code == 2
    figures["code executed"] += sentinel.exists()
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"cnnviz_report: error: {path}: layer 'innocent_looking': Lambda layers hold Python code; refusing to load it"
    assert not sentinel.exists() and not (tmp_path / "site").exists()


def test_classes_outside_keras_tfsm_layers_and_vocabulary_files_are_refused(keras, tmp_path, tiny_model_file,
                                                                          figures):
    def outside_module(config):
        _find(config, "Conv2D")["module"] = "os"

    def tfsm(config):
        _find(config, "Conv2D")["class_name"] = "TFSMLayer"

    def slash_name(config):
        _find(config, "Conv2D")["config"]["name"] = "../../etc/passwd"

    def vocabulary_file(config):
        node = _find(config, "Conv2D")
        node["class_name"], node["config"]["vocabulary"] = "StringLookup", "/etc/passwd"

    def absurd_shape(config):
        _find(config, "InputLayer")["config"]["batch_shape"] = [None, 10 ** 9, 10 ** 9, 3]

    cases = {outside_module: "comes from module 'os', outside Keras", tfsm: "TFSMLayer loads a TensorFlow SavedModel",
             vocabulary_file: "reads its vocabulary from the file '/etc/passwd'",
             absurd_shape: "is not a plausible image model", slash_name: "Keras does not allow '/' in a layer name"}
    for edit, reason in cases.items():
        path = tmp_path / f"{edit.__name__}.keras"
        _rewrite_config(tiny_model_file, path, edit)
        figures["model files tried"] += 1
        with pytest.raises(ModelLoadError) as caught:
            load_model(ReportConfig(model=str(path)))
        figures["refused"] += 1
        assert str(caught.value).startswith(f"{path}: layer ") and reason in str(caught.value), edit.__name__
        assert "\n" not in str(caught.value)


def test_broken_model_files_fail_in_one_line(keras, tmp_path, tiny_model_file, figures):
    data = open(tiny_model_file, "rb").read()
    (tmp_path / "truncated.keras").write_bytes(data[: len(data) // 3])
    (tmp_path / "random.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "text.h5").write_text("not hdf5 at all")
    with zipfile.ZipFile(tmp_path / "noconfig.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    with zipfile.ZipFile(tmp_path / "badjson.keras", "w") as archive:
        archive.writestr("config.json", "{ this is not json")
    with zipfile.ZipFile(tmp_path / "notamodel.keras", "w") as archive:
        archive.writestr("config.json", json.dumps([1, 2, 3]))
    expected = {
        "truncated.keras": "not a .keras file", "random.keras": "not a .keras file",
        "text.h5": "not an HDF5 model file", "noconfig.keras": "has no config.json",
        "badjson.keras": "not valid JSON", "notamodel.keras": "names no model class",
    }
    for name, reason in expected.items():
        path = tmp_path / name
        figures["model files tried"] += 1
        with pytest.raises(ModelLoadError) as caught:
            load_model(ReportConfig(model=str(path)))
        figures["refused"] += 1
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and reason in message and "\n" not in message, (name, message)


def test_h5_models_are_checked_too(keras, tmp_path, figures):
    """Legacy .h5 files store a Lambda's marshalled bytecode (CVE-2025-9905): refused unread."""
    import h5py

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(inputs))
    path = tmp_path / "legacy.h5"
    model.save(path)
    assert load_model(ReportConfig(model=str(path))).name == "legacy.h5"  # a clean one loads
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        _find(config, "Conv2D")["class_name"] = "Lambda"
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ModelLoadError, match="layer 'c': Lambda layers hold Python code"):
        load_model(ReportConfig(model=str(path)))
    weights_only = tmp_path / "only.weights.h5"
    model.save_weights(weights_only)
    with pytest.raises(ModelLoadError, match="holds no model_config"):
        load_model(ReportConfig(model=str(weights_only)))
    sentinel, with_code = tmp_path / "pwned", tmp_path / "lambda.h5"
    code = _payload(sentinel)
    lam = keras.layers.Lambda(lambda x: x + float(eval(code) is None), name="bytecode")  # noqa: S307
    keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(lam(inputs))).save(with_code)
    sentinel.unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="layer 'bytecode': Lambda layers hold Python code"):
        load_model(ReportConfig(model=str(with_code)))
    figures["model files tried"] += 3
    figures["refused"] += 3
    figures["code executed"] += sentinel.exists()
    assert not sentinel.exists()


def test_a_real_savedmodel_directory_is_refused_with_how_to_convert(keras, tmp_path, capsys, figures):
    inputs = keras.Input((8, 8, 3))
    exported = tmp_path / "exported_model"
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)).export(str(exported), verbose=False)
    assert (exported / "saved_model.pb").is_file()
    code = main(["build", str(exported), "--out", str(tmp_path / "site")])
    figures["model files tried"] += 1
    figures["refused"] += code == 2
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"cnnviz_report: error: {exported}: ")
    assert "convert it to a .keras file" in err and not (tmp_path / "site").exists()
