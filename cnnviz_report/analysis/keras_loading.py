"""Model names and files -> a Keras model, ready as a ``LoadedModel``: keras.applications names
(with ImageNet weights from Keras's cache, or random ones), ``.keras`` and Keras 2 ``.h5`` files,
and the bundled demo; the preprocessing and input geometry each takes.

Model files are checked before Keras opens them (``model_safety``) and loaded with
``safe_mode=True`` and ``compile=False``: the report never needs an optimizer, and safe mode
refuses to deserialise arbitrary Python code.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from ..config import ReportConfig
from ..errors import ModelLoadError, UsageError
from ..loading import LoadedModel, demo_model_path, file_sha256, first_line
from ..model_safety import check_config, config_nodes, library_classes, parse_config, read_config
from .framework import keep_tensorflow_out, quiet_import

MODEL_FILE_SUFFIXES = (".keras", ".h5", ".hdf5")
DEFAULT_FREE_SIZE = 224  # used when a model accepts any spatial size
DOWNLOAD_TIMEOUT_S = 15


def _normalise_app_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def application_names() -> dict[str, str]:
    """Normalised name ('convnexttiny') -> keras.applications constructor name ('ConvNeXtTiny')."""
    import keras

    return {
        _normalise_app_name(attr): attr
        for attr in dir(keras.applications)
        if attr[:1].isupper() and callable(getattr(keras.applications, attr))
    }


def is_model_file_argument(model: str) -> bool:
    """True when MODEL names a path rather than an application."""
    return (
        model.lower().endswith(MODEL_FILE_SUFFIXES)
        or os.sep in model
        or "/" in model
        or os.path.exists(model)
    )


def keras_cache_dir() -> Path:
    """Where keras.utils.get_file looks for weights: Keras fixes KERAS_HOME (or ~/.keras) at
    import and falls back to /tmp/.keras when that is not writable; mirror it exactly."""
    try:
        from keras.src.backend.config import keras_home

        home = os.path.expanduser(keras_home())
    except ImportError:  # a Keras without the private accessor
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(home) / "models"


def _application_preprocess(constructor_name: str) -> Callable:
    import keras

    constructor = getattr(keras.applications, constructor_name)
    module_name = constructor.__module__.rsplit(".", 1)[-1]
    return getattr(keras.applications, module_name).preprocess_input


def _application_constructor(name: str) -> str:
    """The keras.applications constructor ('ConvNeXtTiny') an application name means; a one-line
    error listing the names otherwise."""
    names = application_names()
    constructor_name = names.get(_normalise_app_name(name))
    if constructor_name is None:
        valid = ", ".join(sorted(n.lower() for n in names.values()))
        raise ModelLoadError(name, f"not a model file and not a keras.applications name ({valid})")
    return constructor_name


def check_model_argument(model: str | None) -> None:
    """Every check of a model argument that loads nothing: a file exists, is readable, is a model
    file and passes the safety checks; a name is a keras.applications name. A gallery checks all
    its models so, before it builds any."""
    if model is None:
        return
    if is_keras_hub_preset(model):
        keras_hub_preset_folder(model)
    elif is_model_file_argument(model):
        _checked_model_file(model)
    else:
        _application_constructor(model)


def _load_application(name: str, weights: str | None, seed: int) -> tuple[object, str, Callable]:
    import keras

    constructor_name = _application_constructor(name)
    constructor = getattr(keras.applications, constructor_name)
    weights = "imagenet" if weights is None else weights
    if weights.lower() == "none":
        keras.utils.set_random_seed(seed)  # the same --seed gives the same model, pictures, cache hits
        model = constructor(weights=None)
        label = f"none (random initialisation, seed {seed})"
    elif weights.lower() == "imagenet":
        model = _construct_with_imagenet_weights(constructor, name)
        label = f"imagenet (Keras cache {keras_cache_dir()})"
    else:
        try:
            model = constructor(weights=weights)
        except Exception as exc:  # Keras raises ValueError/OSError with long texts
            raise ModelLoadError(weights, f"cannot load as {name} weights: {first_line(exc)}") from exc
        label = os.path.basename(weights)
    return model, label, _application_preprocess(constructor_name)


def _construct_with_imagenet_weights(constructor: Callable, name: str):
    """Build with ImageNet weights from the Keras cache or a download; fail fast and clearly."""
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return constructor(weights="imagenet")
    except Exception as exc:
        message = first_line(exc)
        url = re.search(r"https?://\S+?\.h5", str(exc))
        missing = url.group(0).rsplit("/", 1)[-1] if url else "the ImageNet weights file"
        raise ModelLoadError(
            name,
            f"ImageNet weights file {missing} is not in {keras_cache_dir()} and could not be "
            f"downloaded ({message}); put the file there, or build offline with "
            f"--weights none or --weights PATH",
        ) from exc
    finally:
        socket.setdefaulttimeout(previous_timeout)


# --------------------------------------------------------------------------- model files


def _load_model_file(path: str):
    import keras

    hdf5, config = _checked_model_file(path)
    with tempfile.TemporaryDirectory(prefix="cnnviz-model-") as folder:
        readable = _keras3_readable_copy(path, config, folder) if hdf5 else path
        try:
            return keras.saving.load_model(readable, compile=False, safe_mode=True)
        except Exception as exc:
            raise ModelLoadError(path, f"cannot load model: {first_line(exc)}") from exc


def _checked_model_file(path: str) -> tuple[bool, dict]:
    """(whether it is HDF5, its configuration) of a model file that passed every check made
    before Keras opens it: a file, not empty, a known format, nothing in it that may run."""
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ModelLoadError(
                path,
                "is a TensorFlow SavedModel, a graph of TF ops rather than Keras layers, and not loaded "
                "here; convert it to a .keras file: in the code that built the model, model.save('model.keras')",
            )
        raise ModelLoadError(path, "is a folder, not a model file; convert it to a .keras file or pass the "
                                   f"file inside ({', '.join(MODEL_FILE_SUFFIXES)})")
    if not os.path.isfile(path):
        raise ModelLoadError(path, "no such model file")
    if os.path.getsize(path) == 0:
        raise ModelLoadError(path, "the file is empty")
    try:
        hdf5 = is_hdf5(path)
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read the model file: {exc.strerror or exc}") from exc
    if not hdf5 and path.lower().endswith((".h5", ".hdf5")):
        raise ModelLoadError(path, "not an HDF5 model file: it does not start with the HDF5 signature")
    if not hdf5 and not path.lower().endswith(".keras"):
        raise ModelLoadError(path, f"unknown model file type: neither a .keras archive nor an HDF5 file "
                                   f"(use {', '.join(MODEL_FILE_SUFFIXES)})")
    config = read_config(path, hdf5)
    check_config(path, config, _installed_library_class(path, config))  # before Keras opens it: nothing may run
    return hdf5, config


def _installed_library_class(path: str, config: dict) -> Callable[[dict], bool]:
    """Whether a config node names a class the installed KerasHub registered, under that name and
    from that module (its vision models are functional graphs inside registered subclasses); the
    class comes from the installed package, never from the file. KerasHub is imported only for a
    file that asks for it."""
    wanted = library_classes(config)
    if not wanted:
        return lambda node: False
    try:
        quiet_import("keras_hub")  # registers its classes with Keras
    except ImportError:
        raise ModelLoadError(path, f"a KerasHub model ({sorted(wanted)[0]}); install keras-hub to read it") from None
    import keras

    def installed(node: dict) -> bool:
        name = node.get("registered_name")
        if name not in wanted:
            return False
        found = keras.saving.get_registered_object(name)
        return isinstance(found, type) and found.__module__ == node.get("module")

    return installed


KERAS_HUB_PREFIX = "keras_hub:"


def is_keras_hub_preset(model: str | None) -> bool:
    return bool(model) and model.startswith(KERAS_HUB_PREFIX)


def keras_hub_preset_folder(model: str) -> tuple[str, str]:
    """(the preset's name, its folder in the local KerasHub cache) of ``keras_hub:NAME``: a KerasHub
    image classifier's or backbone's preset; one-line errors for an unknown name or no KerasHub."""
    name = model[len(KERAS_HUB_PREFIX):]
    try:
        hub = quiet_import("keras_hub")
    except ImportError:
        raise UsageError(model, "KerasHub presets need keras-hub: pip install keras-hub") from None
    presets = {**hub.models.Backbone.presets, **hub.models.ImageClassifier.presets}
    if name not in presets:
        close = difflib.get_close_matches(name, list(hub.models.ImageClassifier.presets), n=3, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise UsageError(model, f"no KerasHub preset of that name{hint}")
    from kagglehub.cache import get_cached_path
    from kagglehub.handle import parse_model_handle

    handle = presets[name]["kaggle_handle"].removeprefix("kaggle://")
    return name, get_cached_path(parse_model_handle(handle))


def _load_keras_hub_preset(model: str, weights: str | None, seed: int):
    """A KerasHub preset from the local cache (never downloaded here: the report works offline):
    its task (an ImageClassifier, with its ImageConverter) where the preset has one, else its
    backbone; ``--weights none``: the same architecture with seeded random weights. Its config is
    checked as a model file's is before KerasHub reads it."""
    import keras

    name, folder = keras_hub_preset_folder(model)
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise ModelLoadError(model, f"not in the local KerasHub cache ({folder}); download it once where there "
                                    f"is a network (keras_hub.models.ImageClassifier.from_preset({name!r})), or "
                                    "save the model as a .keras file and pass that")
    if weights is not None and weights.lower() not in ("none", "imagenet"):
        raise UsageError("--weights", f"'{weights}' does not apply to a KerasHub preset: its own weights, or none")
    for part in ("config.json", "task.json"):  # both are serialised Keras objects, checked as a model file's
        path = os.path.join(folder, part)
        if os.path.isfile(path):
            config = parse_config(path, Path(path).read_bytes())
            check_config(path, config, _installed_library_class(folder, config))
    hub = quiet_import("keras_hub")
    task = os.path.isfile(os.path.join(folder, "task.json"))
    random_weights = weights is not None and weights.lower() == "none"
    if random_weights:
        keras.utils.set_random_seed(seed)
    try:
        loaded = (hub.models.ImageClassifier if task else hub.models.Backbone).from_preset(
            folder, load_weights=not random_weights)
    except Exception as exc:
        raise ModelLoadError(model, f"cannot load the preset: {first_line(exc)}") from exc
    return loaded, "random (seeded)" if random_weights else f"the preset's ({name})"


def _hub_converter(model):
    """A KerasHub task's ImageConverter (None for other models, and for a backbone saved alone)."""
    return getattr(getattr(model, "preprocessor", None), "image_converter", None)


def hub_image_size(model) -> tuple[int, int] | None:
    """The image size a KerasHub task's ImageConverter resizes to (a preset's training size)."""
    converter = _hub_converter(model)
    size = getattr(converter, "image_size", None)
    return (int(size[0]), int(size[1])) if size else None


def hub_preprocess(model) -> tuple[Callable, str] | None:
    """A KerasHub task's own image preprocessing (its ImageConverter's ``x * scale + offset``) and
    its words; None for other models. A backbone saved alone carries none."""
    converter = _hub_converter(model)
    if converter is None:
        return None
    scale = 1.0 if converter.scale is None else np.asarray(converter.scale, np.float32)
    offset = 0.0 if converter.offset is None else np.asarray(converter.offset, np.float32)

    def preprocess(x):
        if isinstance(x, np.ndarray):
            return x * scale + offset
        from keras import ops  # a tensor of the backend's, inside the ascent's step

        return x * ops.convert_to_tensor(scale, x.dtype) + ops.convert_to_tensor(offset, x.dtype)

    def numbers(value) -> str:
        values = [f"{v:.4g}" for v in np.ravel(value)]
        return values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"

    return preprocess, f"the KerasHub model's ImageConverter: pixels x {numbers(scale)} + {numbers(offset)}"


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# tf.keras (Keras 2) writes these keys into every depthwise and separable conv's config, and
# Keras 3 refuses them as unknown arguments; they hold nothing those layers use.
_KERAS2_ONLY_KEYS = ("groups", "kernel_initializer", "kernel_regularizer", "kernel_constraint")
_DEPTHWISE_CLASSES = ("SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D")


def is_hdf5(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == HDF5_SIGNATURE


def keras2_config_fixes(config) -> int:
    """Rewrite, in place, what Keras 2 wrote into an .h5 model config that Keras 3 refuses; returns
    how many things changed. Each change drops an argument that does not alter what the model
    computes: the Keras-2-only keys of depthwise/separable convs (``groups`` only when 1), and the
    ``dtype`` that Keras 2.2-2.3 put into initializer configs."""
    changes = 0
    for node in config_nodes(config):
        inner = node.get("config")
        if isinstance(inner, dict):
            if node.get("class_name") in _DEPTHWISE_CLASSES:
                for key in _KERAS2_ONLY_KEYS:
                    if key in inner and (key != "groups" or inner[key] == 1):
                        del inner[key]
                        changes += 1
            for key, value in inner.items():
                if key.endswith("_initializer") and isinstance(value, dict) and isinstance(value.get("config"), dict) \
                        and "dtype" in value["config"]:
                    del value["config"]["dtype"]
                    changes += 1
    return changes


def _keras3_readable_copy(path: str, config: dict, folder: str) -> str:
    """``path`` itself when Keras 3 can read it as it is; else a repaired .h5 copy in ``folder``.

    Keras picks the format from the extension (.h5 or .hdf5), so an HDF5 file named ``.model``
    is copied under an .h5 name too.
    """
    fixes = keras2_config_fixes(config)
    if not fixes and path.lower().endswith((".h5", ".hdf5")):
        return path
    copy = os.path.join(folder, "model.h5")
    shutil.copyfile(path, copy)
    if fixes:
        with h5py.File(copy, "r+") as handle:
            handle.attrs["model_config"] = json.dumps(config)
    return copy


# --------------------------------------------------------------------------- preprocessing


def _starts_with_rescaling(model) -> bool:
    """True when the model scales its own input (a Rescaling/Normalization layer up front)."""
    for layer in model.layers[:4]:
        if type(layer).__name__ in ("Rescaling", "Normalization"):
            return True
    return False


# layers that pass an image through unchanged at inference, so may stand before a nested application
_INFERENCE_NO_OPS = ("InputLayer", "RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast",
                     "RandomTranslation", "RandomBrightness", "RandomCrop", "Dropout", "GaussianNoise")


def held_application(model) -> str | None:
    """The keras.applications constructor ('Xception') a model file is, or starts with as a
    nested sub-model (transfer learning's ``Sequential([base, head])``), by the model's name
    ('mobilenetv2_1.00_160' is MobileNetV2); None when anything but pass-through layers comes
    first, since that may already preprocess."""
    names = application_names()

    def application_of(name: str) -> str | None:
        normal = _normalise_app_name(name)
        matches = [key for key in names if normal.startswith(key)]
        return names[max(matches, key=len)] if matches else None

    if held := application_of(model.name):
        return held
    for layer in model.layers:
        if type(layer).__name__ in _INFERENCE_NO_OPS:
            continue
        return application_of(layer.name) if hasattr(layer, "layers") else None
    return None


def application_mode(preprocess: Callable) -> str:
    """Which of the known modes an application's own preprocess_input is, found by trying each
    on a few pixels ("application" if none matches), so the report can say what it does."""
    probe = np.array([[[[0.0, 64.0, 255.0], [10.0, 128.0, 200.0]]]], np.float32)
    got = np.asarray(preprocess(probe.copy()), np.float64)
    for mode in ("raw", "unit", "tf", "caffe", "torch"):
        expected = np.asarray(_preprocess_for_mode(mode)(probe.copy()), np.float64)
        if got.shape == expected.shape and np.allclose(got, expected, atol=1e-4):
            return mode
    return "application"


def _preprocess_for_mode(mode: str) -> Callable:
    def raw(x):
        return x

    def unit(x):
        return x / 255.0

    def tf_mode(x):
        return x / 127.5 - 1.0

    def imagenet_mode(x):
        from keras.applications import imagenet_utils

        # Keras divides in place: a copy, so that neither the caller's array nor an ascent's
        # canvas (a leaf tensor on the torch backend, which refuses in-place writes) is changed.
        x = x.copy() if isinstance(x, np.ndarray) else x + 0.0
        return imagenet_utils.preprocess_input(x, data_format="channels_last", mode=mode)

    return {"raw": raw, "unit": unit, "tf": tf_mode}.get(mode, imagenet_mode)


def _takes_channels_first(model) -> bool:
    """True when the first layer that has a data format reads channels first."""
    for layer in model.layers:
        fmt = getattr(layer, "data_format", None)
        if fmt is not None:
            return fmt == "channels_first"
    return False


def _input_geometry(model, subject: str, free_size: tuple[int, int] | None = None, fixed_ok: bool = False
                    ) -> tuple[tuple[int, int] | None, int | None, bool]:
    """((height, width), channels, channels_first) of the image input; (None, None, False) if none.
    A side the model leaves free (None) is taken from ``free_size`` (default 224); a fixed side
    ``free_size`` does not match refuses it (``fixed_ok``: the model is built at its own size
    instead, its free sides at the default; ``size_taken`` says which)."""
    if len(model.inputs) != 1:
        raise ModelLoadError(subject, f"has {len(model.inputs)} inputs; only single-input models are supported")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:  # Conv1D/Conv3D models: weights are drawn, images do not apply
        if free_size is not None and not fixed_ok:
            raise UsageError(subject, f"--input-size: the model does not take 2-D images (input shape {shape})")
        return None, None, False
    channels_first = _takes_channels_first(model)
    channels, height, width = (shape[1], shape[2], shape[3]) if channels_first else (shape[3], shape[1], shape[2])
    if channels is None:
        raise ModelLoadError(subject, f"input shape {shape} has no fixed channel count")
    if free_size is not None and not size_taken((height, width), free_size):
        if not fixed_ok:
            raise UsageError(subject, _size_refusal((height, width), free_size))
        free_size = None
    free_height, free_width = free_size or (DEFAULT_FREE_SIZE, DEFAULT_FREE_SIZE)
    return (height or free_height, width or free_width), int(channels), channels_first


def size_taken(sides: tuple[int | None, int | None], requested: tuple[int, int]) -> bool:
    """True when a model with these (height, width) sides, None where free, takes ``requested``."""
    return all(side is None or side == wanted for side, wanted in zip(sides, requested))


def _size_refusal(sides: tuple[int | None, int | None], requested: tuple[int, int]) -> str:
    """Why --input-size does not fit, saying the model's size and what would."""
    asked = "x".join(map(str, requested))
    if all(side is not None for side in sides):
        return (f"--input-size {asked}: the model's input size is fixed at {sides[0]}x{sides[1]} (--input-size is for "
                "models that take any size; build without it)")
    free, fixed = ("height", "width") if sides[0] is None else ("width", "height")
    fitting = "x".join(str(side if side is not None else wanted) for side, wanted in zip(sides, requested))
    return (f"--input-size {asked}: the model's input is {sides[0] or 'any'}x{sides[1] or 'any'} (height x width): "
            f"only its {free} is free, its {fixed} is fixed; try --input-size {fitting}")


def _accepts_any_size(model) -> bool:
    shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else ()
    return len(shape) == 4 and any(side is None for side in shape[1:])


def load_model(config: ReportConfig) -> LoadedModel:
    """Resolve config.model (None = demo, a path, or an application name) into a LoadedModel."""
    keep_tensorflow_out()
    weights = config.weights
    if config.model is None:
        path = demo_model_path()
        model, source, name, label = _load_model_file(path), "demo", "cnnviz demo CNN", "bundled"
        app_preprocess = None
    elif is_keras_hub_preset(config.model):
        path = None
        model, label = _load_keras_hub_preset(config.model, weights, config.seed)
        source, name, app_preprocess, weights = "keras_hub", config.model, None, None
    elif is_model_file_argument(config.model):
        path = config.model
        model, source, label = _load_model_file(path), "file", "from the model file"
        name, app_preprocess = os.path.basename(path), None
        if _from_keras_hub(model):  # the title says what the file holds
            name = f"{name} (KerasHub {type(model).__name__})"
    else:
        path = None
        model, label, app_preprocess = _load_application(config.model, weights, config.seed)
        source, name = "application", model.name

    if source not in ("application", "keras_hub") and weights is not None:
        if weights.lower() in ("none", "imagenet"):
            raise UsageError("--weights", f"'{weights}' applies only to keras.applications names")
        try:
            model.load_weights(weights)
        except Exception as exc:
            raise ModelLoadError(weights, f"cannot load these weights into {name}: {first_line(exc)}") from exc
        label = os.path.basename(weights)

    mode, reason = config.preprocess, ""
    if mode == "auto":
        if (hub := hub_preprocess(model)) is not None:
            preprocess, reason = hub
            mode = "keras_hub"
        elif app_preprocess is not None:
            mode, preprocess = application_mode(app_preprocess), app_preprocess
            reason = "the application's own preprocess_input"
        elif _starts_with_rescaling(model):
            mode, preprocess, reason = "raw", _preprocess_for_mode("raw"), "the model rescales its own input"
        elif held := held_application(model):
            preprocess = _application_preprocess(held)
            mode = application_mode(preprocess)
            reason = f"the model is keras.applications {held} or starts with it, so its preprocess_input"
        else:
            mode, preprocess = "unit", _preprocess_for_mode("unit")
            reason = "a model file with no Rescaling layer up front; say --preprocess if it was trained otherwise"
    else:
        preprocess = _preprocess_for_mode(mode)

    own_size = hub_image_size(model) if config.input_size is None else None  # a KerasHub task's converter
    input_hw, channels, channels_first = _input_geometry(model, config.model or name, config.input_size or own_size,
                                                         config.input_size_if_free or own_size is not None)
    free_size = _accepts_any_size(model)
    return LoadedModel(
        model=model,
        name=name,
        source=source,
        weights_label=label,
        preprocess_mode=mode,
        preprocess=preprocess,
        input_hw=input_hw,
        channels=channels,
        channels_first=channels_first,
        free_size=free_size,
        file_sha256=file_sha256(path) if path else None,
        preprocess_reason=reason,
        libraries=("keras_hub",) if _from_keras_hub(model) else (),
    )


def _from_keras_hub(model) -> bool:
    """The model, or a layer in it, is a class of KerasHub's (the same model on every run: not
    whether keras_hub happens to be imported in this process)."""
    return any(type(layer).__module__.startswith("keras_hub.")
               for layer in [model, *model._flatten_layers(include_self=False)])
