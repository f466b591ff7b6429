"""Dataset examples at scale, side by side in one run: cnnviz_report's streamed pass against the
seeds' approach (a ``Model`` per layer, ``predict`` over all images, keep every activation, sort).

    python benchmarks/dataset_benchmark.py                     # 250, 500, 1000, 2000 images (~1 h)
    python benchmarks/dataset_benchmark.py --sizes 20 40       # a quick check

VGG16 (``--weights none``: offline), all 13 conv layers, all 4,224 filters, top 9 with the crops of
every filter. The images are the demo generator's (96 px, resized to 224 as any photo would be).
Each measurement runs in a fresh process, so its peak RSS is its own. The baseline is stopped
before it starts when the activations it would keep exceed ``--baseline-limit`` GB (its
``predict`` holds every image's map of a layer at once, and concatenating them holds it twice).
The yardstick is the forward pass alone: VGG16's conv trunk on as many images, no files read.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def make_images(folder: Path, count: int) -> None:
    """``count`` generated images (the demo's 12 classes, round robin), one sub-folder per class."""
    import importlib.util

    from PIL import Image

    spec = importlib.util.spec_from_file_location("train_demo_model", ROOT / "examples" / "train_demo_model.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    rng = np.random.default_rng(0)
    for number in range(count):
        label = number % len(generator.CLASSES)
        target = folder / f"class{label:02d}"
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(generator.make_image(rng, label)).save(target / f"{number:05d}.png")


def ours(folder: str, out: str) -> dict:
    """The streamed pass for all 13 layers and the crops of every filter."""
    import keras

    from cnnviz_report.analysis.activations import PeakProbe
    from cnnviz_report.datasets import list_dataset
    from cnnviz_report.analysis.keras_walk import inspect_model
    from cnnviz_report.analysis.keras_loading import _preprocess_for_mode
    from cnnviz_report.phases.dataset_examples import InputCache, draw_examples, stream_examples

    model = keras.applications.VGG16(weights=None)
    layers = list(inspect_model(model).conv_layers)
    dataset = list_dataset(folder)
    preprocess = _preprocess_for_mode("caffe")
    started = time.perf_counter()
    found = stream_examples(PeakProbe(model, layers), preprocess, dataset, layers, (224, 224), 3, 32, False, 9)
    passed = time.perf_counter()
    inputs = InputCache(dataset, (224, 224), 3)
    for info in layers:
        draw_examples(found[info.index], info, f"{info.index:03d}", range(info.filters), dataset, inputs, out)
    return {"pass_seconds": passed - started, "crops_seconds": time.perf_counter() - passed}


def forward(folder: str) -> dict:
    """The yardstick: VGG16's conv trunk alone on as many batches of 32, compiled, no files read."""
    import keras
    import tensorflow as tf

    model = keras.applications.VGG16(weights=None)
    trunk = keras.Model(model.inputs, model.get_layer("block5_conv3").output)
    step = tf.function(lambda x: trunk(x, training=False))
    count = sum(1 for path in Path(folder).rglob("*.png"))
    batch = np.random.default_rng(0).uniform(-120, 120, (32, 224, 224, 3)).astype(np.float32)
    step(batch[:1])  # traced outside the timing, as our pass is not
    started = time.perf_counter()
    for start in range(0, count, 32):
        np.asarray(step(batch[: min(32, count - start)]))
    return {"seconds": time.perf_counter() - started}


def baseline(folder: str) -> dict:
    """The seeds' way: a model per layer, predict on every image, keep it all, then rank."""
    import keras

    from cnnviz_report.datasets import list_dataset
    from cnnviz_report.loading import load_image
    from cnnviz_report.analysis.keras_loading import _preprocess_for_mode

    model = keras.applications.VGG16(weights=None)
    dataset = list_dataset(folder)
    started = time.perf_counter()
    images = np.stack([load_image(item.path, i, (224, 224), 3).pixels for i, item in enumerate(dataset.items)])
    images = _preprocess_for_mode("caffe")(images)
    top = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        extractor = keras.Model(model.inputs, layer.output)
        maps = extractor.predict(images, batch_size=32, verbose=0)  # every image's map, all at once
        peaks = maps.reshape(len(maps), -1, maps.shape[-1]).max(axis=1)
        top[layer.name] = np.argsort(-peaks, axis=0)[:9]
        del maps
    return {"seconds": time.perf_counter() - started}


def baseline_bytes(count: int) -> float:
    """What the baseline's largest layer (block1, 224 x 224 x 64 floats) holds, twice over."""
    return 2 * count * 224 * 224 * 64 * 4


def run_child(kind: str, folder: Path, out: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", kind, str(folder), str(out)], capture_output=True,
                          text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    result["peak_rss_gb"] = result.pop("rss_kb") / 1024 / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--baseline-limit", type=float, default=16.0, help="GB (default: %(default)s)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, folder, out = args.child
        result = {"ours": ours, "forward": lambda folder, out: forward(folder),
                  "baseline": lambda folder, out: baseline(folder)}[kind](folder, out)
        result["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps(result))
        return
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for count in args.sizes:
            folder = Path(work) / f"images{count}"
            make_images(folder, count)
            row = {"images": count, "ours": run_child("ours", folder, Path(work) / f"site{count}"),
                   "forward": run_child("forward", folder, Path(work))}
            if baseline_bytes(count) / 1e9 <= args.baseline_limit:
                row["baseline"] = run_child("baseline", folder, Path(work))
            else:
                row["baseline"] = {"stopped": f"would hold {baseline_bytes(count) / 1e9:.1f} GB of block1 maps"}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| images | ours: pass | crops | wall | peak RSS | forward alone | ours / forward | baseline wall "
          "| baseline peak RSS | speedup |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        mine, base, alone = row["ours"], row["baseline"], row["forward"]["seconds"]
        speed = f"{base['wall_seconds'] / mine['wall_seconds']:.1f}x" if "wall_seconds" in base else "—"
        base_cells = (f"{base['wall_seconds']:.0f} s | {base['peak_rss_gb']:.1f} GB" if "wall_seconds" in base
                      else f"stopped: {base['stopped']} |")
        print(f"| {row['images']} | {mine['pass_seconds']:.0f} s | {mine['crops_seconds']:.0f} s | "
              f"{mine['wall_seconds']:.0f} s | {mine['peak_rss_gb']:.2f} GB | {alone:.0f} s | "
              f"{(mine['pass_seconds'] + mine['crops_seconds']) / alone:.2f}x | {base_cells} | {speed} |")


if __name__ == "__main__":
    main()
