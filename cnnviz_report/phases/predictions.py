"""Phase: what the model predicts for each image, the first thing a model review asks.

The top classes with their probabilities (a softmax of the output unless it already is one).
``keras.applications`` models with 1000 outputs are ImageNet classifiers: their classes get
ImageNet names (``data/imagenet_classes.txt``, the 1000 names in class-index order as
torchvision ships them, BSD licence); the demo's classes are its generator's; other models'
classes are shown by index.

A model with one output unit is a binary classifier when the unit ends in a sigmoid or when
``--labels`` names two classes (the unit is then a logit, put through a sigmoid): its output is
class 1's probability p, and class 0's is 1 - p. Without either it is a regression head.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from ..errors import UsageError
from ..loading import InputImage, LoadedModel
from ..progress import image_batches
from ..records import Prediction

TOP_CLASSES = 5
IMAGENET_CLASSES = 1000
BINARY = 2  # a one-unit binary classifier's classes: 0 (probability 1 - p) and 1 (p)


@dataclass(frozen=True)
class ClassOutput:
    """How the model's output reads as classes."""

    classes: int
    binary: str = ""  # one unit: "sigmoid" (it gives class 1's probability) or "logit" (--labels); "" otherwise


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


def _label_lines(path: str) -> tuple[str, ...]:
    try:
        with open(path, encoding="utf-8") as handle:
            return tuple(line.strip() for line in handle if line.strip())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(path, f"cannot read the labels: {getattr(error, 'strerror', None) or error}") from error


def read_labels(path: str, classes: int, binary: bool = False) -> tuple[str, ...]:
    """``--labels``: one class name a line, as many as the model has classes."""
    names = _label_lines(path)
    if len(names) != classes:
        if binary:
            raise UsageError(path, f"has {len(names)} class names, the model's one output unit is read as a "
                                   f"binary classifier of {classes} classes (class 0, then class 1)")
        raise UsageError(path, f"has {len(names)} class names, the model has {classes} classes")
    return names


def class_names(loaded: LoadedModel, output: ClassOutput, labels: str | None = None) -> tuple[str, ...] | None:
    """The names of the model's classes: ``--labels``, the weights' metadata's, ImageNet's, the
    demo's, or None."""
    classes = output.classes
    if labels is not None:
        return read_labels(labels, classes, bool(output.binary))
    if loaded.class_names is not None and len(loaded.class_names) == classes:  # the weights' own metadata
        return loaded.class_names
    if loaded.source in ("application", "keras_hub") and classes == IMAGENET_CLASSES:
        return _names("cnnviz_report.data", "imagenet_classes.txt")
    if loaded.source == "demo":  # the generator's classes (examples/train_demo_model.py CLASSES)
        return _names("cnnviz_report.demo", "demo_classes.txt")
    return None


def one_unit(loaded: LoadedModel) -> bool:
    """The model's output is a single unit per image (a binary classifier or a regression head)."""
    shapes = loaded.walk.output_shapes()
    return len(shapes) == 1 and tuple(shapes[0][1:]) == (1,)


def class_output(loaded: LoadedModel, labels: str | None = None) -> ClassOutput | None:
    """How the output reads as classes: one score per class, a one-unit binary classifier (a
    sigmoid, or a logit when ``--labels`` names two classes), or None (no classes: a feature
    extractor, a regression head). A ``--labels`` file for one unit must name two classes."""
    shapes = loaded.walk.output_shapes()
    if len(shapes) != 1:
        return None
    if one_unit(loaded):
        if loaded.walk.ends_in_sigmoid():
            return ClassOutput(BINARY, "sigmoid")
        if labels is not None:  # two names make the unit a logit; any other count is an error
            read_labels(labels, BINARY, binary=True)
            return ClassOutput(BINARY, "logit")
        return None
    shape = shapes[0]
    return ClassOutput(int(shape[1])) if len(shape) == 2 and shape[1] and shape[1] >= 2 else None


def binary_probabilities(outputs: np.ndarray, squashed: bool) -> np.ndarray:
    """A one-unit output (B, 1) as (B, 2) probabilities of class 0 and class 1: 1 - p and p, with
    p the output itself after a sigmoid, else the sigmoid of the logit."""
    values = np.asarray(outputs, np.float64).reshape(-1)
    p = values if squashed else 0.5 * (1.0 + np.tanh(values / 2.0))  # the sigmoid, without overflow
    return np.stack([1.0 - p, p], axis=1)


def class_label(names: tuple[str, ...] | None, index: int) -> str:
    """A class's name, or "class <index>" for a model whose classes have none."""
    return names[index] if names and index < len(names) else f"class {index}"


def predict(loaded: LoadedModel, images: list[InputImage], batch_size: int,
            names: tuple[str, ...] | None, output: ClassOutput | None) -> dict[int, tuple[Prediction, ...]]:
    """image index -> its top classes (``names``: the classes' names, or None for indices);
    empty when the model's output is not read as classes (``output``: ``class_output``'s)."""
    if output is None:
        return {}
    forward = loaded.run.class_scores()
    found = {}
    for start, stop in image_batches(len(images), batch_size):
        batch = loaded.model_input(np.stack([image.pixels for image in images[start:stop]]))
        raw = np.asarray(forward(batch))
        scores = binary_probabilities(raw, output.binary == "sigmoid") if output.binary else probabilities(raw)
        for image, row in zip(images[start:stop], scores):
            top = np.argsort(-row, kind="stable")[:TOP_CLASSES]
            found[image.index] = tuple(Prediction(int(c), class_label(names, int(c)), float(row[c]))
                                       for c in top)
    return found
