"""Train the small CNN that cnnviz_report ships as its demo model. No downloads.

The training images are drawn here: sine gratings at six orientations, filled shapes (circle,
square, triangle, cross), checkerboards and concentric rings, each in random colours over
random noise. To tell them apart the network has to learn oriented, coloured edge and blob
detectors, which is what makes its filters, feature maps and mosaics worth looking at.

    python examples/train_demo_model.py                  # about 3 minutes on 2 CPU cores
    python examples/train_demo_model.py --images 256 --epochs 1 --out /tmp/demo.keras
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 96
CLASSES = (
    "grating 0°", "grating 30°", "grating 60°", "grating 90°", "grating 120°", "grating 150°",
    "circle", "square", "triangle", "cross", "checkerboard", "rings",
)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "cnnviz_report" / "demo" / "demo_cnn.keras"


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3)


def _noise_background(rng: np.random.Generator) -> np.ndarray:
    base = _colour(rng) * rng.uniform(0.3, 1.0)
    return np.clip(base + rng.normal(0, rng.uniform(4, 30), size=(SIZE, SIZE, 3)), 0, 255)


def _blend(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return a * (1 - weight[..., None]) + b * weight[..., None]


def _grating(rng: np.random.Generator, orientation_deg: float) -> np.ndarray:
    theta = np.deg2rad(orientation_deg + rng.uniform(-8, 8))
    period = rng.uniform(6, 22)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    # Stripes run along `orientation`: the wave varies across it.
    wave = np.sin(2 * np.pi * (x * np.sin(theta) - y * np.cos(theta)) / period + rng.uniform(0, 2 * np.pi))
    weight = 0.5 + 0.5 * wave
    image = _blend(np.broadcast_to(_colour(rng), (SIZE, SIZE, 3)), np.broadcast_to(_colour(rng), (SIZE, SIZE, 3)), weight)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255)


def _shape(rng: np.random.Generator, kind: str) -> np.ndarray:
    canvas = Image.fromarray(_noise_background(rng).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    fill = tuple(int(v) for v in _colour(rng))
    r = rng.uniform(14, 34)
    cx, cy = rng.uniform(r, SIZE - r, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif kind == "square":
        corners = [(cx + r * np.cos(angle + k * np.pi / 2), cy + r * np.sin(angle + k * np.pi / 2)) for k in range(4)]
        draw.polygon(corners, fill=fill)
    elif kind == "triangle":
        corners = [(cx + r * np.cos(angle + k * 2 * np.pi / 3), cy + r * np.sin(angle + k * 2 * np.pi / 3)) for k in range(3)]
        draw.polygon(corners, fill=fill)
    elif kind == "cross":
        width = max(3, int(r / 3))
        for k in range(2):
            a = angle + k * np.pi / 2
            dx, dy = r * np.cos(a), r * np.sin(a)
            draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=fill, width=width)
    return np.asarray(canvas, dtype=np.float64)


def _checkerboard(rng: np.random.Generator) -> np.ndarray:
    cell = rng.uniform(6, 16)
    theta = rng.uniform(0, np.pi / 2)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    u, v = x * np.cos(theta) + y * np.sin(theta), -x * np.sin(theta) + y * np.cos(theta)
    weight = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float64)
    image = _blend(np.broadcast_to(_colour(rng), (SIZE, SIZE, 3)), np.broadcast_to(_colour(rng), (SIZE, SIZE, 3)), weight)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255)


def _rings(rng: np.random.Generator) -> np.ndarray:
    cy, cx = rng.uniform(20, SIZE - 20, size=2)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    radius = np.hypot(x - cx, y - cy)
    weight = 0.5 + 0.5 * np.sin(2 * np.pi * radius / rng.uniform(6, 18))
    image = _blend(np.broadcast_to(_colour(rng), (SIZE, SIZE, 3)), np.broadcast_to(_colour(rng), (SIZE, SIZE, 3)), weight)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255)


def make_image(rng: np.random.Generator, label: int) -> np.ndarray:
    """One uint8 (96, 96, 3) training image of class ``label``."""
    name = CLASSES[label]
    if name.startswith("grating"):
        image = _grating(rng, 30.0 * label)
    elif name == "checkerboard":
        image = _checkerboard(rng)
    elif name == "rings":
        image = _rings(rng)
    else:
        image = _shape(rng, name)
    return image.astype(np.uint8)


def make_dataset(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(CLASSES)
    rng.shuffle(labels)
    images = np.stack([make_image(rng, int(label)) for label in labels])
    return images, labels.astype(np.int32)


def build_model():
    import keras
    from keras import layers

    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    # Centred input and a modest learning rate keep first-layer ReLUs from dying early.
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = layers.Conv2D(16, 5, padding="same", activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.MaxPooling2D(2, name="pool3")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv4")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(len(CLASSES), activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="cnnviz_demo")


def dead_filters(model, images: np.ndarray) -> dict[str, int]:
    """Per conv layer, how many filters never fire on ``images`` (a dead ReLU draws nothing)."""
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    probe = keras.Model(model.inputs, [layer.output for layer in convs])
    maps = probe.predict(images, verbose=0)
    return {layer.name: int((m.max(axis=(0, 1, 2)) <= 0).sum()) for layer, m in zip(convs, maps)}


def train(images: int, epochs: int, out: Path, seed: int = 0, verbose: int = 2) -> dict:
    """Train and save the demo model; returns the held-out accuracy and the time taken."""
    import keras

    keras.utils.set_random_seed(seed)
    started = time.monotonic()
    x_train, y_train = make_dataset(images, seed)
    x_test, y_test = make_dataset(max(len(CLASSES), images // 8), seed + 1)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train.astype(np.float32), y_train, batch_size=64, epochs=epochs, verbose=verbose,
              validation_data=(x_test.astype(np.float32), y_test))
    _, accuracy = model.evaluate(x_test.astype(np.float32), y_test, verbose=0)
    dead = dead_filters(model, x_test.astype(np.float32))
    out.parent.mkdir(parents=True, exist_ok=True)
    shipped = build_model()  # uncompiled: no optimizer state in the shipped file
    shipped.set_weights(model.get_weights())
    shipped.save(out)
    out.with_name("demo_classes.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")  # the report's labels
    return {"accuracy": float(accuracy), "dead": dead, "seconds": time.monotonic() - started, "path": str(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=9600, help="training images (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to save (default: the package's demo model)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = train(args.images, args.epochs, args.out, args.seed)
    print(f"held-out accuracy {result['accuracy']:.3f}, dead filters per layer {result['dead']}, "
          f"in {result['seconds']:.0f} s -> {result['path']}")


if __name__ == "__main__":
    main()
