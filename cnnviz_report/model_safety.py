"""Read a model file's configuration, without Keras, and refuse what could run code.

Keras's ``safe_mode`` refuses lambdas when it deserialises, but by then the file has been
opened by the full loader. This check runs first, on the JSON alone: a ``.keras`` zip's
``config.json`` or an ``.h5`` file's ``model_config`` attribute. It refuses, naming the layer:
Lambda layers (anywhere, nested sub-models included), classes from modules outside Keras (but
the installed KerasHub's own, registered classes),
TFSMLayer (it loads a SavedModel, which is code), lookup layers whose vocabulary is a file
path, and declared shapes too large to be real.
"""

from __future__ import annotations

import json
import zipfile
from typing import Callable

import h5py

from .errors import ModelLoadError

MAX_CONFIG_BYTES = 64 << 20
MAX_DIMENSION = 1 << 16  # a declared input side or channel count beyond this is not an image model
REFUSED_CLASSES = {
    "Lambda": "Lambda layers hold Python code",
    "TFSMLayer": "TFSMLayer loads a TensorFlow SavedModel, which can hold code",
}
LOOKUP_CLASSES = ("StringLookup", "IntegerLookup", "TextVectorization")
MODEL_CLASSES = ("Functional", "Sequential", "Model")  # what a model file's top level may be
SUBCLASSED_HINT = (
    "the model is a subclassed model (class {class_name}): its layers are wired in Python code, "
    "which is not loaded; rebuild it as a functional model (x = keras.Input(shape); y = the same layers "
    "called on x; keras.Model(x, y)), copy the weights with set_weights, and save that (see the README, "
    "'Subclassed models')")


def read_config(path: str, hdf5: bool | None = None) -> dict:
    """The model's JSON configuration from a .keras or HDF5 (.h5) file; one-line errors otherwise."""
    if hdf5 is None:  # not known from the content: go by the name
        hdf5 = not path.lower().endswith(".keras")
    return _h5_config(path) if hdf5 else _keras_zip_config(path)


def _keras_zip_config(path: str) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo("config.json")
            except KeyError as exc:
                raise ModelLoadError(path, "not a Keras model: the .keras archive has no config.json") from exc
            if info.file_size > MAX_CONFIG_BYTES:
                raise ModelLoadError(path, f"config.json is {info.file_size} bytes; refusing more than {MAX_CONFIG_BYTES}")
            text = archive.read(info)
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(path, f"not a .keras file (a zip archive): {exc}") from exc
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read: {exc}") from exc
    return parse_config(path, text)


def _h5_config(path: str) -> dict:
    try:
        with h5py.File(path, "r") as handle:
            text = handle.attrs.get("model_config")
    except OSError as exc:
        raise ModelLoadError(path, f"not an HDF5 model file: {' '.join(str(exc).split())[:200]}") from exc
    if text is None:
        raise ModelLoadError(path, "holds no model_config (a weights-only file? pass it with --weights)")
    return parse_config(path, text.encode() if isinstance(text, str) else bytes(text))


def parse_config(path: str, text: bytes) -> dict:
    try:
        config = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(path, f"the model configuration is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelLoadError(path, "the model configuration names no model class")
    return config


def _layer_name(node: dict) -> str:
    inner = node.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    return str(name) if name is not None else node.get("class_name", "?")


def _declared_shapes(inner: dict):
    for key in ("batch_shape", "batch_input_shape", "input_shape"):
        shape = inner.get(key)
        if isinstance(shape, list):
            yield key, shape


def config_nodes(config):
    """Every dict inside a model config (layers, their configs, nested models), depth first."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            yield node
            stack.extend(node.values())


def library_classes(config: dict) -> set[str]:
    """The registered names of a library's classes the configuration asks for (``keras_hub>...``)."""
    return {node["registered_name"] for node in config_nodes(config)
            if isinstance(node.get("registered_name"), str) and node["registered_name"].startswith("keras_hub>")}


def check_config(path: str, config: dict, installed: Callable[[dict], bool] = lambda node: False) -> None:
    """Raise ModelLoadError naming the first layer that could run code or is not plausible.

    ``installed(node)``: the node names a class of an installed library Keras knows by that
    registered name and module (KerasHub's models are functional graphs in registered classes):
    such a class is taken from the installed package, never from the file."""
    for node in config_nodes(config):
        class_name = node.get("class_name")
        if node is config and class_name not in MODEL_CLASSES and not installed(node):
            raise ModelLoadError(path, SUBCLASSED_HINT.format(class_name=class_name))
        if isinstance(class_name, str):
            subject = f"{path}: layer {_layer_name(node)!r}"
            if "/" in str(_layer_name(node) or ""):
                raise ModelLoadError(subject, "Keras does not allow '/' in a layer name; the file was not "
                                              "written by Keras as it stands")
            if class_name in REFUSED_CLASSES:
                raise ModelLoadError(subject, f"{REFUSED_CLASSES[class_name]}; refusing to load it")
            module = node.get("module")
            if isinstance(module, str) and not (module == "keras" or module.startswith("keras.")) \
                    and not installed(node):
                raise ModelLoadError(subject, f"class {class_name} comes from module {module!r}, outside Keras")
            inner = node.get("config")
            if isinstance(inner, dict):
                if class_name in LOOKUP_CLASSES and isinstance(inner.get("vocabulary"), str):
                    raise ModelLoadError(subject, f"{class_name} reads its vocabulary from the file "
                                                  f"{inner['vocabulary']!r}; refusing")
                for key, shape in _declared_shapes(inner):
                    if any(isinstance(d, int) and not 0 <= d <= MAX_DIMENSION for d in shape):
                        raise ModelLoadError(subject, f"declared {key} {shape} is not a plausible image model")
