"""One architecture from each framework, side by side in one run (issue 33): torchvision's ResNet50
and Keras's (TensorFlow) ResNet50, the whole report, ``--weights none --ascent-steps 5
--max-filters 16``. Prints each build's wall time and phases, and the PyTorch/Keras ratio.

    python benchmarks/torch_speed.py                  # torchvision:resnet50 against resnet50
    python benchmarks/torch_speed.py --pairs torchvision:vgg16=vgg16 --repeats 1

Each build runs in a process of its own (Keras fixes its backend per process: the PyTorch model on
the torch backend, the Keras one on TensorFlow), with ``--no-cache --no-stream``; the runs
alternate (A B A B ...) so that a machine that slows down in the middle favours neither. The
numbers are the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def run_once(model: str, args, out: Path) -> tuple[float, dict]:
    """(wall seconds, seconds per phase) of one build."""
    command = [sys.executable, "-m", "cnnviz_report", "build", model, "--weights", "none", "--out", str(out),
               "--max-filters", str(args.filters), "--ascent-steps", str(args.steps), "--no-cache", "--no-stream",
               "--quiet", *(["--images", *args.images] if args.images else [])]
    backend = "torch" if model.startswith(("torchvision:", "timm:")) or ".py:" in model else "tensorflow"
    env = dict(os.environ, PYTHONPATH=str(HERE), KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{model}: {done.stderr.strip()[-500:]}")
    wall = time.perf_counter() - start
    return wall, json.loads((out / "manifest.json").read_text())["seconds_per_phase"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["torchvision:resnet50=resnet50"],
                        help="PYTORCH=KERAS model pairs (default: torchvision:resnet50=resnet50)")
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--images", nargs="*", default=[])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pairs = [tuple(pair.split("=", 1)) for pair in args.pairs]
    models = [model for pair in pairs for model in pair]
    walls: dict[str, list[float]] = {model: [] for model in models}
    phases: dict[str, list[dict]] = {model: [] for model in models}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for number, model in enumerate(models):
                wall, timings = run_once(model, args, Path(scratch) / f"{repeat}-{number}")
                walls[model].append(wall)
                phases[model].append(timings)
                print(f"  run {repeat + 1}: {model}: {wall:.1f} s", flush=True)
    print(f"\n--weights none --ascent-steps {args.steps} --max-filters {args.filters}, median of {args.repeats}")
    for torch_model, keras_model in pairs:
        for model in (torch_model, keras_model):
            median = statistics.median(walls[model])
            ascent = statistics.median(timing.get("gradient ascent", 0.0) for timing in phases[model])
            print(f"{model:28s} {median:7.1f} s   (gradient ascent {ascent:.1f} s)")
        ratio = statistics.median(walls[torch_model]) / statistics.median(walls[keras_model])
        print(f"{torch_model} / {keras_model}: {ratio:.2f}x the Keras build's time")


if __name__ == "__main__":
    main()
