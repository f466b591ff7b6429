"""A MODEL argument to a ``LoadedModel``, whichever framework it names: a PyTorch form
(``torch_loading``: ``net.py:make_net``, ``package.module:make_net``, ``torchvision:``/``timm:``)
or anything Keras reads (``keras_loading``: the demo, application names, model files, KerasHub)."""

from __future__ import annotations

from ..loading import LoadedModel
from . import keras_loading, torch_loading


def load_model(config) -> LoadedModel:
    if torch_loading.is_torch_model(config.model):
        return torch_loading.load_torch_model(config)
    return keras_loading.load_model(config)
