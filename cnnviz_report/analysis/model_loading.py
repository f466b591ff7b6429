"""A MODEL argument to a ``LoadedModel``, whichever framework it names: a PyTorch form
(``torch_loading``: ``net.py:make_net``, ``package.module:make_net``, ``torchvision:``/``timm:``)
or anything Keras reads (``keras_loading``: the demo, application names, model files, KerasHub)."""

from __future__ import annotations

from ..loading import LoadedModel
from . import keras_loading, torch_loading


def check_model_argument(model: str | None) -> None:
    """Every check of a MODEL argument that loads nothing (a gallery checks all its models so,
    before it builds any): a PyTorch form's file is there; Keras's, as ``keras_loading`` checks."""
    if torch_loading.is_torch_model(model):
        torch_loading.check_torch_argument(model)
    else:
        keras_loading.check_model_argument(model)


def load_model(config) -> LoadedModel:
    if torch_loading.is_torch_model(config.model):
        return torch_loading.load_torch_model(config)
    return keras_loading.load_model(config)
