"""Phase: what the model predicts for each image, the first thing a model review asks.

The top classes with their probabilities (a softmax of the output unless it already is one).
``keras.applications`` models with 1000 outputs are ImageNet classifiers: their classes get
ImageNet names (``data/imagenet_classes.txt``, the 1000 names in class-index order as
torchvision ships them, BSD licence); the demo's classes are its generator's; other models'
classes are shown by index.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from ..analysis.activations import compiled_forward, reads_channels_first
from ..errors import UsageError
from ..loading import InputImage, LoadedModel
from ..progress import image_batches
from ..records import Prediction

TOP_CLASSES = 5
IMAGENET_CLASSES = 1000


def _names(package: str, file_name: str) -> tuple[str, ...]:
    text = resources.files(package).joinpath(file_name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def probabilities(outputs: np.ndarray) -> np.ndarray:
    """Rows that are already probabilities stay; logits get a softmax."""
    outputs = np.asarray(outputs, np.float64)
    if (outputs >= 0).all() and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def read_labels(path: str, classes: int) -> tuple[str, ...]:
    """``--labels``: one class name a line, as many as the model has classes."""
    try:
        with open(path, encoding="utf-8") as handle:
            names = tuple(line.strip() for line in handle if line.strip())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(path, f"cannot read the labels: {getattr(error, 'strerror', None) or error}") from error
    if len(names) != classes:
        raise UsageError(path, f"has {len(names)} class names, the model has {classes} classes")
    return names


def class_names(loaded: LoadedModel, classes: int, labels: str | None = None) -> tuple[str, ...] | None:
    """The names of the model's classes: ``--labels``, ImageNet's, the demo's, or None."""
    if labels is not None:
        return read_labels(labels, classes)
    if loaded.source == "application" and classes == IMAGENET_CLASSES:
        return _names("cnnviz_report.data", "imagenet_classes.txt")
    if loaded.source == "demo":  # the generator's classes (examples/train_demo_model.py CLASSES)
        return _names("cnnviz_report.demo", "demo_classes.txt")
    return None


def class_output(loaded: LoadedModel) -> int | None:
    """The number of classes when the model ends in one score per class, else None."""
    if len(loaded.model.outputs) != 1:
        return None
    shape = loaded.model.outputs[0].shape
    return int(shape[1]) if len(shape) == 2 and shape[1] and shape[1] >= 2 else None


def class_label(names: tuple[str, ...] | None, index: int) -> str:
    """A class's name, or "class <index>" for a model whose classes have none."""
    return names[index] if names and index < len(names) else f"class {index}"


def predict(loaded: LoadedModel, images: list[InputImage], batch_size: int,
            names: tuple[str, ...] | None) -> dict[int, tuple[Prediction, ...]]:
    """image index -> its top classes (``names``: the classes' names, or None for indices);
    empty when the model's output is not one score per class."""
    if class_output(loaded) is None:
        return {}
    # channels-first convs run on the CPU only under XLA; anything else runs eagerly, since tracing
    # a deep model's whole graph for one pass costs more than the pass (InceptionResNetV2: seconds)
    forward = compiled_forward(loaded.model) if reads_channels_first([loaded.model]) else \
        (lambda x: loaded.model(x, training=False))
    found = {}
    for start, stop in image_batches(len(images), batch_size):
        batch = loaded.model_input(np.stack([image.pixels for image in images[start:stop]]))
        scores = probabilities(np.asarray(forward(batch)))
        for image, row in zip(images[start:stop], scores):
            top = np.argsort(-row, kind="stable")[:TOP_CLASSES]
            found[image.index] = tuple(Prediction(int(c), class_label(names, int(c)), float(row[c]))
                                       for c in top)
    return found
