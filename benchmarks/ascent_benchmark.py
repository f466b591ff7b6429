"""Gradient ascent, side by side in one run: the seeds' loop against cnnviz_report's engine.

    python benchmarks/ascent_benchmark.py              # VGG16, all 13 conv layers (~25 min on 2 cores)
    python benchmarks/ascent_benchmark.py --quick      # 3 layers, fewer filters (~3 min)

1. Per layer of VGG16 (weights=None: offline; same weights for both): the keras.io loop,
   written out plainly below, one filter per call on a 180x180 canvas, 30 steps, lr 10, on a
   sample of the first 64 filters; and the engine on all first 64 filters. Reports the time
   ratio (baseline seconds per filter x 64 / engine seconds) and the ratio of mean achieved
   activation on the sampled filters, filter for filter.
2. The machine's peak convolution throughput (a large conv, forward and input gradient: the
   ascent's own mix of work) and the GFLOP/s the engine reaches over its ascent steps.
3. The whole `build vgg16 --weights none --images <photo>`: wall time, time per phase, peak
   RSS; then a rebuild with one more image (mosaic cache warm).

Fairness: the baseline climbs in keras.io's own image space ([-1, 1], with VGG16's
preprocess_input folded into the model), where its lr of 10 means what keras.io meant (taken
literally in VGG16's caffe space it would be a 128x smaller step). The filter index is passed as
a tensor, so the baseline is not charged for keras.io's retracing on every new filter.
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

ALL_LAYERS = ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
              "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
              "block5_conv3"]
QUICK_LAYERS = ["block1_conv1", "block3_conv1", "block5_conv3"]


# --------------------------------------------------------------------------- the baseline


class Baseline:
    """keras.io "Visualizing what convnets learn", one filter per call, as readers run it.

    The step is compiled once per layer (keras.io defines it once, at module level) and takes
    the filter index as a tensor, so no filter pays for a retrace.
    """

    def __init__(self, feature_extractor, size=180, steps=30, learning_rate=10.0):
        import tensorflow as tf

        self.size, self.steps, self.learning_rate = size, steps, learning_rate

        def compute_loss(input_image, index):
            activation = feature_extractor(input_image)
            # We avoid border artifacts by only involving non-border pixels in the loss.
            filter_activation = tf.gather(activation[:, 2:-2, 2:-2, :], index, axis=-1)
            return tf.reduce_mean(filter_activation)

        @tf.function
        def gradient_ascent_step(img, index, lr):
            with tf.GradientTape() as tape:
                tape.watch(img)
                loss = compute_loss(img, index)
            grads = tape.gradient(loss, img)
            grads = tf.math.l2_normalize(grads)
            img += lr * grads
            return loss, img

        self.compute_loss, self.step = tf.function(compute_loss), gradient_ascent_step

    def visualize_filter(self, filter_index: int, seed: int, steps: int | None = None):
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        img = tf.random.uniform((1, self.size, self.size, 3))
        img = (img - 0.5) * 0.25  # keras.io: "Initialize a random noisy image"
        index, lr = tf.constant(filter_index), tf.constant(self.learning_rate)
        for _ in range(self.steps if steps is None else steps):
            _, img = self.step(img, index, lr)
        return img, float(self.compute_loss(img, index))


def baseline_extractor(full_model, layer_name: str):
    """VGG16 without its top (any input size), VGG16's preprocessing in front, cut at the layer."""
    import keras

    base = keras.applications.VGG16(weights=None, include_top=False)
    for layer in base.layers:
        if layer.weights:
            layer.set_weights(full_model.get_layer(layer.name).get_weights())
    pixels_in_tf_scale = keras.Input((None, None, 3))
    pixels = (pixels_in_tf_scale + 1.0) * 127.5
    caffe = keras.layers.Lambda(lambda x: keras.applications.vgg16.preprocess_input(x))(pixels)
    cut = keras.Model(base.inputs, base.get_layer(layer_name).output)
    return keras.Model(pixels_in_tf_scale, cut(caffe))


# --------------------------------------------------------------------------- measurements


def peak_conv_gflops(repeats: int = 8) -> float:
    """A large 3x3 conv, forward plus gradient to its input, as fast as TensorFlow runs it (best run)."""
    import tensorflow as tf

    x = tf.random.normal((8, 56, 56, 256))
    kernel = tf.random.normal((3, 3, 256, 256))

    @tf.function
    def forward_backward(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = tf.reduce_sum(tf.nn.conv2d(inputs, kernel, 1, "SAME"))
        return tape.gradient(total, inputs)

    flops = 2 * (2 * 8 * 56 * 56 * 256 * 256 * 9)  # forward and input gradient
    return flops / _best_seconds(forward_backward, x, repeats) / 1e9


def _best_seconds(function, argument, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls, after one untimed call that compiles."""
    function(argument)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function(argument).numpy()
        best = min(best, time.perf_counter() - started)
    return best


def model_ceiling_gflops(repeats: int = 3) -> float:
    """VGG16's own conv trunk at 224 px, batch 16, forward plus input gradient (best run): the
    rate this model's mix of layers allows, the fair ceiling for an ascent on it."""
    import keras
    import tensorflow as tf

    from cnnviz_report.analysis.keras_walk import inspect_model

    trunk = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    flops = 2 * 16 * sum(layer.flops for layer in inspect_model(trunk).conv_layers)
    x = tf.random.normal((16, 224, 224, 3))

    @tf.function
    def forward_backward(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = tf.reduce_sum(trunk(inputs))
        return tape.gradient(total, inputs)

    return flops / _best_seconds(forward_backward, x, repeats) / 1e9


def compare_layers(layers: list[str], baseline_filters: int, engine_filters: int, seed: int) -> list[dict]:
    import keras

    from cnnviz_report.analysis.ascent import AscentSettings, LayerAscent
    from cnnviz_report.analysis.keras_walk import inspect_model

    keras.utils.set_random_seed(seed)
    model = keras.applications.VGG16(weights=None)
    conv = {layer.name: layer for layer in inspect_model(model).conv_layers}
    rows = []
    for name in layers:
        info = conv[name]
        upstream = [layer for layer in conv.values() if layer.index <= info.index]
        engine = LayerAscent.alone(model, info, upstream, (224, 224), 3, keras.applications.vgg16.preprocess_input,
                             AscentSettings(seed=seed))
        engine.run([0], steps=1)  # compile once, as the baseline's first filter also does below
        started = time.perf_counter()
        result = engine.run(list(range(engine_filters)))
        engine_seconds = time.perf_counter() - started

        baseline = Baseline(baseline_extractor(model, name))
        sample = [int(f) for f in np.linspace(0, engine_filters - 1, baseline_filters).round()]
        baseline.visualize_filter(sample[0], seed, steps=1)  # compile once, as keras.io does
        activations, started = [], time.perf_counter()
        for f in sample:
            activations.append(baseline.visualize_filter(f, seed + f)[1])
        baseline_per_filter = (time.perf_counter() - started) / len(sample)
        engine_sample = result.activations[sample]
        rows.append({
            "layer": name,
            "canvas": result.canvas_hw[0],
            "batch": result.batch_size,
            "baseline_s_per_filter": baseline_per_filter,
            "baseline_s_64": baseline_per_filter * engine_filters,
            "engine_s_64": engine_seconds,
            "time_ratio": baseline_per_filter * engine_filters / engine_seconds,
            "baseline_activation": float(np.mean(activations)),
            "engine_activation": float(np.mean(engine_sample)),
            "activation_ratio": float(np.mean(engine_sample) / max(1e-12, np.mean(activations))),
            "engine_wins": int(np.sum(engine_sample >= np.asarray(activations))),
            "sampled": len(sample),
            "engine_gflops": result.flops / engine_seconds / 1e9,
            "engine_flops": result.flops,
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def whole_build(photo: str) -> dict:
    """The CLI as a user runs it, twice: first build, then one more image with the cache warm."""
    work = Path(tempfile.mkdtemp(prefix="cnnviz-bench-"))
    extra = work / "second.png"
    from PIL import Image, ImageOps

    ImageOps.mirror(Image.open(photo).convert("RGB")).save(extra)
    command = [sys.executable, "-m", "cnnviz_report", "build", "vgg16", "--weights", "none", "--out",
               str(work / "site"), "--cache-dir", str(work / "cache")]
    runs = {}
    for label, images in (("first", [photo]), ("warm, one more image", [photo, str(extra)])):
        started = time.perf_counter()
        done = subprocess.run(command + ["--images", *images], capture_output=True, text=True, check=True)
        runs[label] = {"seconds": time.perf_counter() - started, "summary": done.stdout.strip().splitlines()[-1]}
        print(json.dumps({label: runs[label]}), flush=True)
    runs["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
    return runs


def compare_modes(seed: int) -> list[dict]:
    """fast against robust on the trained demo model: time, mean activation, dead tiles."""
    from cnnviz_report.analysis.ascent import AscentSettings, LayerAscent
    from cnnviz_report.config import ReportConfig
    from cnnviz_report.analysis.keras_walk import inspect_model
    from cnnviz_report.analysis.keras_loading import load_model

    loaded = load_model(ReportConfig())
    conv = list(inspect_model(loaded.model).conv_layers)
    rows = []
    for info in conv:
        filters = list(range(min(64, info.filters)))
        row = {"layer": info.name}
        for mode in ("fast", "robust"):
            engine = LayerAscent.alone(loaded.model, info, [c for c in conv if c.index <= info.index], loaded.input_hw,
                                 loaded.channels, loaded.preprocess, AscentSettings(mode=mode, seed=seed))
            engine.run([0], steps=1)
            started = time.perf_counter()
            result = engine.run(filters)
            row[mode] = {"seconds": time.perf_counter() - started, "activation": float(result.activations.mean()),
                         "dead": int((result.activations <= 0).sum())}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| layer | canvas | batch | baseline s/filter | baseline 64 filters s | engine 64 filters s | time ratio | "
             "activation baseline | activation engine | ratio | engine >= baseline | engine GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['canvas']} | {r['batch']} | {r['baseline_s_per_filter']:.2f} | "
                     f"{r['baseline_s_64']:.0f} | {r['engine_s_64']:.1f} | {r['time_ratio']:.1f}x | "
                     f"{r['baseline_activation']:.3g} | {r['engine_activation']:.3g} | {r['activation_ratio']:.2f} | "
                     f"{r['engine_wins']}/{r['sampled']} | {r['engine_gflops']:.0f} |")
    base = sum(r["baseline_s_64"] for r in rows)
    engine = sum(r["engine_s_64"] for r in rows)
    ratio = np.mean([r["activation_ratio"] for r in rows])
    flops = sum(r["engine_flops"] for r in rows)
    lines.append(f"| **total** | | | | **{base:.0f}** | **{engine:.0f}** | **{base / engine:.1f}x** | | | "
                 f"**{ratio:.2f}** (mean) | | **{flops / engine / 1e9:.0f}** |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 layers, 2 sampled and 16 engine filters, no build")
    parser.add_argument("--layers", nargs="+", help="VGG16 conv layers to compare (default: all 13)")
    parser.add_argument("--baseline-filters", type=int, default=4, help="filters per layer for the baseline loop")
    parser.add_argument("--no-build", action="store_true", help="skip the whole-build measurement")
    parser.add_argument("--build-only", action="store_true", help="only the whole-build measurement")
    parser.add_argument("--modes", action="store_true", help="only compare --ascent fast and robust on the demo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.modes:
        print("| demo layer | fast s | fast activation | fast dead | robust s | robust activation | robust dead |")
        print("|---|---|---|---|---|---|---|")
        for r in compare_modes(args.seed):
            f, b = r["fast"], r["robust"]
            print(f"| {r['layer']} | {f['seconds']:.1f} | {f['activation']:.3g} | {f['dead']} | {b['seconds']:.1f} | "
                  f"{b['activation']:.3g} | {b['dead']} |")
        return
    layers = args.layers or (QUICK_LAYERS if args.quick else ALL_LAYERS)
    engine_filters = 16 if args.quick else 64
    baseline_filters = 2 if args.quick else args.baseline_filters

    if args.build_only:
        report_whole_build()
        return
    peak, ceiling = peak_conv_gflops(), model_ceiling_gflops()
    print(json.dumps({"peak_conv_gflops": peak, "vgg16_trunk_gflops": ceiling}), flush=True)
    rows = compare_layers(layers, baseline_filters, engine_filters, args.seed)
    flops = sum(r["engine_flops"] for r in rows)
    seconds = sum(r["engine_s_64"] for r in rows)
    print()
    print(table(rows))
    rate = flops / seconds / 1e9
    print(f"\npeak conv throughput {peak:.0f} GFLOP/s; VGG16's own trunk (batch 16) {ceiling:.0f} GFLOP/s "
          f"= {100 * ceiling / peak:.0f} % of peak; engine {rate:.0f} GFLOP/s = {100 * rate / peak:.0f} % of peak, "
          f"{100 * rate / ceiling:.0f} % of the model's own rate")
    if not (args.quick or args.no_build):
        report_whole_build()


def report_whole_build() -> None:
    from cnnviz_report.loading import demo_image_path

    runs = whole_build(demo_image_path())
    first, warm = runs["first"]["seconds"], runs["warm, one more image"]["seconds"]
    print(f"\nwhole build: first {first:.0f} s; warm rebuild with one more image {warm:.0f} s "
          f"({100 * warm / first:.0f} % of the first); peak RSS {runs['peak_rss_gb']:.2f} GB")
    for label in ("first", "warm, one more image"):
        print(f"  {label}: {runs[label]['summary']}")


if __name__ == "__main__":
    main()
