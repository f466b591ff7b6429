"""A PyTorch model from a MODEL argument (issue 33): a function of the user's own code that returns
an ``nn.Module`` (``path/to/net.py:make_net`` or ``package.module:make_net``) or a library's model
(``torchvision:NAME``, ``timm:NAME``: ``torch_libraries``), with random seeded weights, the
library's pretrained ones, or a state dict read without running code.

The user's factory is their code, run as they would run it (``python net.py`` puts the file's
folder first on the import path; so does this). Its file's bytes are part of every cache key, so
an edited ``forward()`` never gets stale pictures.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from typing import Callable

import numpy as np

from ..errors import ModelLoadError, UsageError
from ..loading import LoadedModel, file_sha256, first_line
from .keras_loading import _preprocess_for_mode
from .torch_libraries import HALF, IMAGENET_MEAN, IMAGENET_STD, check_library_name, library_model

LIBRARY_PREFIXES = ("torchvision:", "timm:")
DEFAULT_SIDE = 224
# Formats that run code or unpickle objects to load: refused, with what to save instead.
CODE_FORMATS = {".pt2": "a torch.export program", ".ptl": "a TorchScript lite program"}
STATE_DICT_EXTENSIONS = (".pt", ".pth", ".safetensors")  # diff's B: a state dict for A's architecture
STATE_DICT_HINT = "save the weights with torch.save(model.state_dict(), 'net.pth') or safetensors instead"


# Modules of the user's own files (a factory file and its neighbours): Ray's workers cannot import
# them, so the executor ships them by value (``executors.RayExecutor``).
USER_CODE_MODULES: set[str] = set()


def _inside(path: str | None, folder: str) -> bool:
    """``path`` is a file of the user's under ``folder`` (not an installed package, even when a
    virtual environment sits in that folder)."""
    if not path:
        return False
    path = os.path.abspath(path)
    installed = {"site-packages", "dist-packages"} & set(path.split(os.sep))
    return path.startswith(folder + os.sep) and not installed


def factory_parts(model: str | None) -> tuple[str, str] | None:
    """(source, function) of ``file.py:function`` or ``package.module:function``; None otherwise
    (an existing path, an application name, a reserved prefix)."""
    if not model or os.path.exists(model) or model.startswith(("keras_hub:", *LIBRARY_PREFIXES)):
        return None
    source, colon, function = model.rpartition(":")
    if not colon or not function.isidentifier():
        return None
    if source.endswith(".py") or re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", source):
        return source, function
    return None


def is_torch_model(model: str | None) -> bool:
    """A MODEL argument that names a PyTorch model."""
    return bool(model) and (model.startswith(LIBRARY_PREFIXES) or factory_parts(model) is not None)


def check_torch_argument(model: str) -> None:
    """What can be told of a PyTorch MODEL argument without running its code."""
    if model.startswith(LIBRARY_PREFIXES):
        check_library_name(model)
        return
    source, _ = factory_parts(model)
    if source.endswith(".py") and not os.path.isfile(source):
        raise ModelLoadError(model, f"no such file: {source}")


def _call_factory(model: str, source: str, function: str, seed: int):
    """The user's function called once, its result checked to be an ``nn.Module``."""
    import torch

    if source.endswith(".py"):
        if not os.path.isfile(source):
            raise ModelLoadError(model, f"no such file: {source}")
        folder = os.path.dirname(os.path.abspath(source))
        name = "cnnviz_user_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(source))[0])
        before = set(sys.modules)
        sys.path.insert(0, folder)
        try:
            spec = importlib.util.spec_from_file_location(name, source)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelLoadError(model, f"importing {source} failed: {type(exc).__name__}: {first_line(exc)}") from exc
        finally:
            sys.path.remove(folder)
        # the file and the files beside it that it imported travel to Ray's workers by value
        USER_CODE_MODULES.update(added for added in set(sys.modules) - before
                                 if _inside(getattr(sys.modules[added], "__file__", None), folder))
    else:
        try:
            module = importlib.import_module(source)
        except Exception as exc:
            raise ModelLoadError(model, f"cannot import {source}: {type(exc).__name__}: {first_line(exc)}") from exc
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ModelLoadError(model, f"{source} has no function {function}")
    torch.manual_seed(seed)  # --weights none: random, seeded
    try:
        built = factory()
    except Exception as exc:
        raise ModelLoadError(model, f"{function}() raised {type(exc).__name__}: {first_line(exc)}") from exc
    if not isinstance(built, torch.nn.Module):
        raise ModelLoadError(model, f"{function}() returned a {type(built).__name__}, not a torch.nn.Module")
    return built, module


def load_state_dict(module, path: str, model: str) -> None:
    """Weights from ``path`` into ``module``: a state dict read with ``weights_only=True`` (no
    pickled object is ever built) or a safetensors file; anything else is one line and refused."""
    import torch

    extension = os.path.splitext(path)[1].lower()
    if extension in CODE_FORMATS:
        raise ModelLoadError(path, f"{CODE_FORMATS[extension]} runs code to load; {STATE_DICT_HINT}")
    try:
        if extension == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        words = first_line(exc)
        if "weights_only" in words or "Unsupported global" in words or "TorchScript" in words:
            raise ModelLoadError(path, f"not a plain state dict (a pickled object or a TorchScript file, "
                                       f"which run code to load); {STATE_DICT_HINT}") from exc
        raise ModelLoadError(path, f"cannot read weights: {words}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint's weights
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ModelLoadError(path, f"not a state dict of tensors; {STATE_DICT_HINT}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(path, f"does not fit {model}: {first_line(exc)}") from exc


def _channels(module) -> int:
    """The channels the first conv reads (3 when the module has none first)."""
    import torch

    for child in module.modules():
        if isinstance(child, torch.nn.modules.conv._ConvNd):
            return int(child.in_channels)
    return 3


def mean_std_preprocess(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[str, Callable]:
    """(mode, function) normalising 0..255 pixels as ``(x / 255 - mean) / std``: the named mode
    when the numbers are ImageNet's (``torch``) or one half (``tf``), else a mode that says them."""
    for mode, (known_mean, known_std) in {"torch": (IMAGENET_MEAN, IMAGENET_STD), "tf": (HALF, HALF)}.items():
        if np.allclose(mean, known_mean, atol=1e-4) and np.allclose(std, known_std, atol=1e-4):
            return mode, _preprocess_for_mode(mode)
    mean_array, std_array = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def normalise(x):
        if isinstance(x, np.ndarray):
            return (x / 255.0 - mean_array) / std_array
        from keras import ops

        return (x / 255.0 - ops.convert_to_tensor(mean_array)) / ops.convert_to_tensor(std_array)

    numbers = lambda values: ", ".join(f"{value:.3f}" for value in values)  # noqa: E731
    return f"pixels / 255, then mean ({numbers(mean)}) and std ({numbers(std)})", normalise


def _user_module(config) -> tuple[object, str, str | None]:
    """(module, name, digest of its code file) from the user's factory."""
    source, function = factory_parts(config.model)
    module, code = _call_factory(config.model, source, function, config.seed)
    if config.weights is not None and config.weights.lower() == "imagenet":
        raise UsageError("--weights", f"{config.model}: a function of your own has no default weights; give a "
                                      "state dict file, or none")
    code_file = getattr(code, "__file__", None)
    return module, f"{function} ({os.path.basename(source)})", \
        file_sha256(code_file) if code_file and os.path.isfile(code_file) else None


def load_torch_model(config) -> LoadedModel:
    """``config.model`` (a PyTorch form) -> a LoadedModel whose walk and run are ``TorchModel``."""
    model, weights = config.model, config.weights
    check_torch_argument(model)
    state_dict = weights is not None and weights.lower() not in ("none", "imagenet")
    if model.startswith(LIBRARY_PREFIXES):
        built = library_model(model, "none" if state_dict else weights, config.seed)
        module, name, digest, libraries = built.module, model, None, (built.library,)
        label, side, names = built.weights_label, built.input_hw, built.class_names
        known_mode, known_preprocess = mean_std_preprocess(built.mean, built.std)
        reason = f"the mean and std of {built.metadata}; the size from --input-size" if config.input_size \
            else f"the size, mean and std of {built.metadata}"
    else:
        module, name, digest = _user_module(config)
        libraries, label, side, names = (), "random (seeded by --seed)", (DEFAULT_SIDE, DEFAULT_SIDE), None
        known_mode, known_preprocess = "unit", _preprocess_for_mode("unit")
        reason = "a PyTorch module with no preprocessing metadata: 0..1; say --preprocess if it was trained " \
                 "otherwise (torch: ImageNet mean and std)"
    if state_dict:
        load_state_dict(module, weights, model)
        label = os.path.basename(weights)
    module.eval()
    if config.preprocess == "auto":
        mode, preprocess = known_mode, known_preprocess
    else:
        mode, preprocess, reason = config.preprocess, _preprocess_for_mode(config.preprocess), ""
    return LoadedModel(
        model=module, name=name, source="torch", weights_label=label,
        preprocess_mode=mode, preprocess=preprocess, input_hw=tuple(config.input_size or side),
        channels=_channels(module), channels_first=True, free_size=True, file_sha256=digest,
        preprocess_reason=reason, libraries=libraries, framework="torch", class_names=names)
