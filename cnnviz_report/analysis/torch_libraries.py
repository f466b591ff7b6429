"""``torchvision:NAME`` and ``timm:NAME`` (issue 33): the library builds the model as it always
does, and its weights' own metadata says what the model expects: the input size, the mean and
standard deviation, the class names (torchvision's weights ``transforms()`` and ``categories``,
timm's ``pretrained_cfg`` and ImageNet info). With ``--weights none`` the metadata of the
architecture's default weights still describes its input; the weights are random, seeded.

Pretrained weights come from the library's own cache (torch hub's ``checkpoints``, the Hugging
Face cache), downloaded by the library when they are not there; offline, one line names the file
looked for and where.
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass

from ..errors import ModelLoadError, UsageError
from ..loading import first_line

DOWNLOAD_TIMEOUT_S = 20
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # --preprocess torch
HALF = (0.5, 0.5, 0.5)  # --preprocess tf: x / 127.5 - 1


@dataclass(frozen=True)
class LibraryModel:
    """A library's model, built, with what its weights' metadata says about its input."""

    module: object  # torch.nn.Module
    library: str  # "torchvision" or "timm": its version is part of every cache key (its forward is the code)
    weights_label: str
    input_hw: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] | None
    metadata: str  # where the size, mean and std were read, for the index


def _pretrained(weights: str | None) -> bool:
    """No ``--weights`` or ``imagenet``: the library's default pretrained weights."""
    return weights is None or weights.lower() == "imagenet"


class _DownloadTimeout:
    """A library's download that cannot connect fails within seconds, not minutes."""

    def __enter__(self):
        self.previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)

    def __exit__(self, *exc):
        socket.setdefaulttimeout(self.previous)


# --------------------------------------------------------------------------- torchvision


def _torchvision_builder(model: str, name: str):
    """The builder and default weights of a torchvision classification model called ``name``."""
    try:
        from torchvision import models
    except ImportError as exc:
        raise UsageError("MODEL", f"{model}: torchvision is not installed: pip install \"cnnviz_report[torch]\"") \
            from exc
    if name not in models.list_models(module=models):
        raise UsageError("MODEL", f"{model}: torchvision has no classification model {name!r} "
                                  f"(torchvision.models.list_models() names them, e.g. resnet50, convnext_tiny)")
    return models.get_model_builder(name), models.get_model_weights(name).DEFAULT


def torchvision_model(model: str, weights: str | None, seed: int) -> LibraryModel:
    import torch

    name = model.split(":", 1)[1]
    builder, default = _torchvision_builder(model, name)
    with warnings.catch_warnings():  # GoogLeNet's and Inception's notice about their init scheme
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        if _pretrained(weights):
            module = _torchvision_pretrained(model, builder, default)
            label = f"{default} (torchvision's default, from {_torch_hub_file(default)})"
        else:
            torch.manual_seed(seed)
            module = builder(weights=None)
            label = f"none (random initialisation, seed {seed})"
    transforms = default.transforms()
    side = int(transforms.crop_size[0])
    return LibraryModel(
        module=module, library="torchvision", weights_label=label, input_hw=(side, side),
        mean=tuple(transforms.mean), std=tuple(transforms.std),
        class_names=tuple(default.meta.get("categories") or ()) or None,
        metadata=f"torchvision's {default} transforms ({side} × {side})")


def _torch_hub_file(default) -> str:
    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints", default.url.rsplit("/", 1)[-1])


def _torchvision_pretrained(model: str, builder, default):
    path = _torch_hub_file(default)
    try:
        with _DownloadTimeout():
            return builder(weights=default)
    except Exception as exc:
        if os.path.isfile(path):  # there, but unreadable or not these weights
            raise ModelLoadError(path, f"cannot load as {model}'s {default} weights: {first_line(exc)}") from exc
        raise ModelLoadError(model, f"pretrained weights {path} are not in torch hub's cache and could not be "
                                    f"downloaded ({first_line(exc)}); put the file there, or build with --weights "
                                    "none or --weights FILE.pth") from exc


# --------------------------------------------------------------------------- timm


def _timm(model: str):
    try:
        import timm
    except ImportError as exc:
        raise UsageError("MODEL", f"{model}: timm is not installed: pip install \"cnnviz_report[torch]\"") from exc
    name = model.split(":", 1)[1]
    if not timm.is_model(name):
        raise UsageError("MODEL", f"{model}: timm has no model {name!r} (timm.list_models() names them, "
                                  "e.g. resnet50, convnext_tiny)")
    return timm, name


def _cached_hub_file(config) -> str | None:
    """The Hugging Face cache's copy of a timm model's weights, if it has one."""
    if not config.hf_hub_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    repository, _, revision = config.hf_hub_id.partition("@")
    names = [config.hf_hub_filename] if config.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    for filename in names:
        found = try_to_load_from_cache(repository, filename, revision=revision or None)
        if isinstance(found, str):
            return found
    return None


def timm_model(model: str, weights: str | None, seed: int) -> LibraryModel:
    import torch

    timm, name = _timm(model)
    config = timm.models.get_pretrained_cfg(name)
    if config is None:  # a model timm has no pretrained weights for: ImageNet's numbers, said so
        config = timm.models.PretrainedCfg(input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    if _pretrained(weights):
        cached = _cached_hub_file(config)
        try:
            with _DownloadTimeout():
                module = timm.create_model(name, pretrained=True,
                                           **({"pretrained_cfg_overlay": {"file": cached}} if cached else {}))
        except Exception as exc:
            where = f"{config.hf_hub_id} in the Hugging Face cache ({_hub_cache()})" if config.hf_hub_id \
                else (config.url or "its weights file")
            raise ModelLoadError(model, f"pretrained weights {where} are not there and could not be downloaded "
                                        f"({first_line(exc)}); build with --weights none or --weights FILE.pth"
                                 ) from exc
        label = f"{config.hf_hub_id or config.url} (timm's default{', from ' + cached if cached else ''})"
    else:
        torch.manual_seed(seed)
        module = timm.create_model(name, pretrained=False)
        label = f"none (random initialisation, seed {seed})"
    size = tuple(int(side) for side in config.input_size[-2:])
    return LibraryModel(
        module=module, library="timm", weights_label=label, input_hw=size,
        mean=tuple(float(value) for value in config.mean), std=tuple(float(value) for value in config.std),
        class_names=_timm_class_names(timm, module),
        metadata=f"timm's pretrained_cfg for {config.architecture or name}"
                 + (f".{config.tag}" if config.tag else "") + f" ({size[0]} × {size[1]})")


def _hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _timm_class_names(timm, module) -> tuple[str, ...] | None:
    """ImageNet's class names for a model timm knows was trained on one of its subsets."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(module)
    if not subset:
        return None
    # "tench, Tinca tinca" -> "tench", as torchvision's categories and Keras's ImageNet names read
    return tuple(words.split(",")[0] for words in ImageNetInfo(subset).label_descriptions(detailed=False))


def library_model(model: str, weights: str | None, seed: int) -> LibraryModel:
    """``torchvision:NAME`` or ``timm:NAME``, pretrained or with random seeded weights (a state
    dict file is loaded into the random module by the caller)."""
    if model.startswith("torchvision:"):
        return torchvision_model(model, weights, seed)
    return timm_model(model, weights, seed)


def check_library_name(model: str) -> None:
    """What can be told of ``torchvision:NAME`` or ``timm:NAME`` without building it."""
    if model.startswith("torchvision:"):
        _torchvision_builder(model, model.split(":", 1)[1])
    else:
        _timm(model)
