"""Issue 30's speed targets, side by side in one run: the whole one-layer build of VGG16's
block4_conv3 against the seeds' one-filter loop, and (with --full) the whole default VGG16 report
against the report as it was when the issue was filed.

    python benchmarks/report_speed.py           # one layer (~6 min)
    python benchmarks/report_speed.py --full    # and the whole report, twice (~15 min)
    python benchmarks/report_speed.py --model resnet50v2 --variants "issue 30" default   # whole reports only

* The seeds' loop: keras.io's "Visualizing what convnets learn" (ascent_benchmark.Baseline),
  one filter a call, 180x180 canvas, 30 steps; timed on a few filters of the layer and counted
  for the 64 a mosaic shows.
* The builds: ``python -m cnnviz_report build vgg16 --weights none --images PHOTO`` as a user runs
  it (random weights, so offline), in a subprocess with an empty cache, wall time from start to
  exit, in three variants:
  - ``issue 30``: the recipe of the day the issue was filed, 30 float32 steps a filter
    (``--ascent-steps 30 --ascent-lr 0.15 --precision float32``; the betas differ from that
    day's, the arithmetic does not);
  - ``float32``: today's default recipe, 20 steps, on float32 only (``--precision float32``);
  - ``default``: the command with no options (``--precision auto``: bfloat16 for the dense layers
    where the CPU has AMX).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

LAYER = "block4_conv3"
MOSAIC = 64
VARIANTS = {
    "issue 30": ["--ascent-steps", "30", "--ascent-lr", "0.15", "--precision", "float32"],
    "float32": ["--precision", "float32"],
    "default": [],
}


def seeds_loop_seconds(filters: int) -> float:
    """The keras.io loop's seconds a filter on ``LAYER`` (its first call, which traces, untimed)."""
    import keras

    from ascent_benchmark import Baseline, baseline_extractor

    keras.utils.set_random_seed(0)
    baseline = Baseline(baseline_extractor(keras.applications.VGG16(weights=None), LAYER))
    sample = [int(f) for f in np.linspace(0, MOSAIC - 1, filters).round()]
    baseline.visualize_filter(sample[0], 0, steps=1)
    started = time.perf_counter()
    for number in sample:
        baseline.visualize_filter(number, number)
    return (time.perf_counter() - started) / len(sample)


def build_seconds(options: list[str], folder: Path, photo: str, model: str = "vgg16") -> tuple[float, str]:
    """Wall seconds of one build with an empty cache, and its summary line."""
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "cnnviz_report", "build", model, "--weights", "none", "--images", photo,
               "--out", str(folder / "site"), "--cache-dir", str(folder / "cache"), *options]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return time.perf_counter() - started, done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="also the whole default report (issue 30 and default)")
    parser.add_argument("--seed-filters", type=int, default=3, help="filters the seeds' loop is timed on")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="the one-layer builds to run (default: all three)")
    parser.add_argument("--model", default="vgg16",
                        help="another application (e.g. resnet50v2): its whole reports only, no one-layer build")
    args = parser.parse_args()
    if args.model != "vgg16":
        whole_reports(args.model, [name for name in VARIANTS if name in args.variants])
        return

    from cnnviz_report.loading import demo_image_path

    photo, work = demo_image_path(), Path(tempfile.mkdtemp(prefix="cnnviz-report-speed-"))
    per_filter = seeds_loop_seconds(args.seed_filters)
    seeds = per_filter * MOSAIC
    print(json.dumps({"seeds_loop_s_per_filter": per_filter, "seeds_loop_s_64": seeds}), flush=True)
    one_layer = {}
    for name in args.variants:
        options = VARIANTS[name]
        seconds, summary = build_seconds([*options, "--layers", LAYER], work / f"one-{len(one_layer)}", photo)
        one_layer[name] = seconds
        print(json.dumps({"one_layer": name, "seconds": seconds, "summary": summary}), flush=True)
    full = {}
    if args.full:
        for name in [variant for variant in ("issue 30", "default") if variant in args.variants]:
            seconds, summary = build_seconds(VARIANTS[name], work / f"full-{len(full)}", photo)
            full[name] = seconds
            print(json.dumps({"full": name, "seconds": seconds, "summary": summary}), flush=True)

    print(f"\nthe seeds' loop on {LAYER}: {per_filter:.1f} s a filter, {seeds:.0f} s for a mosaic's {MOSAIC}")
    print("| build | one layer s | vs the seeds' loop | whole report s | vs issue 30 |")
    print("|---|---|---|---|---|")
    for name, seconds in one_layer.items():
        whole = f"{full[name]:.0f} | {full['issue 30'] / full[name]:.2f}x" if name in full and "issue 30" in full \
            else " | "
        print(f"| {name} | {seconds:.0f} | {seeds / seconds:.1f}x | {whole} |")


def whole_reports(model: str, variants: list[str]) -> None:
    """``model``'s whole default report in each variant, side by side."""
    from cnnviz_report.loading import demo_image_path

    work, seconds = Path(tempfile.mkdtemp(prefix="cnnviz-report-speed-")), {}
    for number, name in enumerate(variants):
        seconds[name], summary = build_seconds(VARIANTS[name], work / f"full-{number}", demo_image_path(), model)
        print(json.dumps({"full": name, "model": model, "seconds": seconds[name], "summary": summary}), flush=True)
    print(f"\n| {model} build | whole report s | vs issue 30 |\n|---|---|---|")
    for name, value in seconds.items():
        ratio = f"{seconds['issue 30'] / value:.2f}x" if "issue 30" in seconds else ""
        print(f"| {name} | {value:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
