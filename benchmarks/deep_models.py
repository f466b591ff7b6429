"""Many-layer models, side by side in one run: cnnviz_report's whole build against the blog posts'
one-filter-at-a-time loop on a sample of filters (issue "4 of 7").

    python benchmarks/deep_models.py                        # resnet50v2 efficientnetb0 mobilenetv2 vgg16 densenet121
    python benchmarks/deep_models.py --models mobilenetv2   # one model
    python benchmarks/deep_models.py --fixed-only           # only the --ascent-steps 1 builds
    python benchmarks/deep_models.py --models resnet50v2 --full-site DIR   # the loop against a report built before

Per model (``--weights none``: offline, random weights, the same for both sides):

1. ``build MODEL --images PHOTO --ascent-steps 1 --max-filters 8 --no-cache``: wall time over the
   conv layers is the fixed cost a layer pays before useful work (tracing, graph set-up, the
   other phases).
2. ``build MODEL --images PHOTO --no-cache`` (the default report: 64 filters a layer, 30 steps):
   wall time, gradient-ascent phase time, peak RSS of the build process.
3. The keras.io loop ("Visualizing what convnets learn", as the seeds copy it: a 180x180 canvas in
   [-1, 1], 30 steps of lr 10 along the l2-normalised gradient, one filter per call, the step
   compiled once with the filter index as a tensor) on the first filters of a shallow, a middle
   and a deep conv layer, climbing the same unit response the report climbs. Its seconds per
   filter, fitted against the layers' upstream FLOPs, estimate the loop's time for every filter
   the report draws; its final mean activation is compared filter for filter with the
   report's (health.csv's ``ascent_activation``).

Results go to stdout as JSON lines and a Markdown table; absolute times on a 2-core machine are
noisy, the ratios less so.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from ascent_benchmark import Baseline  # noqa: E402

MODELS = ["resnet50v2", "efficientnetb0", "mobilenetv2", "vgg16", "densenet121"]
SAMPLE_FILTERS = 2


def photo_path() -> str:
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")


def run_build(model: str, out: Path, extra: list[str]) -> dict:
    """One CLI build in its own process: wall seconds, peak RSS, phase seconds from the manifest."""
    command = [sys.executable, "-m", "cnnviz_report", "build", model, "--weights", "none", "--images", photo_path(),
               "--out", str(out), "--no-cache", "--quiet", *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {stderr.strip()[-500:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    return {"seconds": seconds, "peak_rss_gb": usage.ru_maxrss / 1024 / 1024,
            "phases": manifest["seconds_per_phase"]}


def engine_activations(site: Path) -> dict[tuple[str, int], float]:
    with open(site / "health.csv", newline="") as handle:
        return {(row["layer"], int(row["filter"])): float(row["ascent_activation"])
                for row in csv.DictReader(handle) if row.get("ascent_activation")}


def loop_sample(model_name: str, layers: list, upstream_flops: dict) -> list[dict]:
    """The keras.io loop on the first SAMPLE_FILTERS filters of each of ``layers``."""
    import keras

    from cnnviz_report.config import ReportConfig
    from cnnviz_report.analysis.keras_loading import load_model

    loaded = load_model(ReportConfig(model=model_name, weights="none"))
    rows = []
    for info in layers:
        end = info.unit_layers[-1] if info.unit_layers else info.name
        cut = keras.Model(loaded.model.inputs, loaded.model.get_layer(end).output)
        free = _free_size(loaded, cut)
        pixels_in_tf_scale = keras.Input((None, None, loaded.channels))
        extractor = keras.Model(pixels_in_tf_scale, free(loaded.preprocess((pixels_in_tf_scale + 1.0) * 127.5)))
        baseline = Baseline(extractor)
        baseline.visualize_filter(0, seed=0, steps=1)  # compile outside the timing
        for number in range(SAMPLE_FILTERS):
            started = time.perf_counter()
            _, activation = baseline.visualize_filter(number, seed=number)
            rows.append({"layer": info.name, "filter": number, "seconds": time.perf_counter() - started,
                         "activation": activation, "upstream_flops_per_pixel": upstream_flops[info.index]})
            print(json.dumps({"loop": rows[-1]}), flush=True)
    return rows


def _free_size(loaded, cut):
    """``cut`` replayed on an input of any size (the loop's 180 px canvas)."""
    import keras

    from cnnviz_report.analysis.activations import replay_graph

    new_input = keras.Input((None, None, loaded.channels))
    outputs = replay_graph(cut, [new_input], {}, set())
    return keras.Model(new_input, outputs[0])


def measure(model_name: str, fixed_only: bool, work: Path, full_site: Path | None = None) -> dict:
    from cnnviz_report.analysis.ascent import upstream_cost
    from cnnviz_report.config import ReportConfig
    from cnnviz_report.analysis.keras_walk import inspect_model
    from cnnviz_report.analysis.keras_loading import load_model

    loaded = load_model(ReportConfig(model=model_name, weights="none"))
    info = inspect_model(loaded.model)
    conv = [layer for layer in info.conv_layers if layer.takes_images]
    result = {"model": model_name, "conv_layers": len(conv)}
    fixed = run_build(model_name, work / f"{model_name}-fixed", ["--ascent-steps", "1", "--max-filters", "8"])
    result["fixed"] = dict(fixed, per_layer=fixed["seconds"] / len(conv))
    print(json.dumps({"fixed": result}), flush=True)
    if fixed_only:
        return result
    site = full_site or work / f"{model_name}-full"
    if full_site is None:
        result["full"] = run_build(model_name, site, [])
    else:  # a default report built before (a run stopped after its build): its manifest's figures
        manifest = json.loads((site / "manifest.json").read_text())
        result["full"] = {"seconds": float("nan"), "peak_rss_gb": float("nan"), "phases": manifest["seconds_per_phase"]}
    print(json.dumps({"full": result}), flush=True)
    flops = {layer.index: upstream_cost(list(info.conv_layers), layer, loaded.input_hw).flops_per_pixel
             for layer in conv}
    sampled = [conv[0], conv[len(conv) // 2], conv[-1]]
    del loaded
    loop = loop_sample(model_name, sampled, flops)
    # seconds per filter ~ a + b * upstream FLOPs, fitted on the sample, summed over the report's filters
    x = np.array([row["upstream_flops_per_pixel"] for row in loop])
    y = np.array([row["seconds"] for row in loop])
    slope, intercept = np.polyfit(x, y, 1)
    per_layer = {layer.index: max(float(intercept + slope * flops[layer.index]), float(y.min())) for layer in conv}
    filters = {layer.index: min(64, layer.filters or 0) for layer in conv}
    loop_seconds = sum(per_layer[i] * filters[i] for i in per_layer)
    ours = engine_activations(site)
    pairs = [(row["activation"], ours.get((row["layer"], row["filter"]))) for row in loop]
    pairs = [(a, b) for a, b in pairs if b is not None]
    ascent_seconds = result["full"]["phases"].get("gradient ascent", result["full"]["seconds"])
    result["loop"] = {"sample": loop, "estimated_seconds": loop_seconds, "speedup": loop_seconds / ascent_seconds,
                      "activation_loop": float(np.mean([a for a, _ in pairs])),
                      "activation_report": float(np.mean([b for _, b in pairs])),
                      "report_at_least_loop": sum(b >= a for a, b in pairs), "pairs": len(pairs)}
    return result


def table(results: list[dict]) -> str:
    lines = ["| model | conv layers | `--ascent-steps 1` build | fixed cost a layer | default report | "
             "ascent phase | peak RSS | loop estimate (same filters) | speedup | mean activation loop / report |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        fixed = r["fixed"]
        row = f"| {r['model']} | {r['conv_layers']} | {fixed['seconds']:.0f} s | {fixed['per_layer']:.2f} s |"
        if "full" in r:
            full, loop = r["full"], r["loop"]
            ascent = full["phases"].get("gradient ascent", float("nan"))
            row += (f" {full['seconds'] / 60:.1f} min | {ascent / 60:.1f} min | {full['peak_rss_gb']:.2f} GB |"
                    f" {loop['estimated_seconds'] / 60:.0f} min | {loop['speedup']:.1f}x |"
                    f" {loop['activation_loop']:.3g} / {loop['activation_report']:.3g}"
                    f" ({loop['report_at_least_loop']}/{loop['pairs']} filters report >= loop) |")
        else:
            row += " | | | | | |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--fixed-only", action="store_true", help="only the --ascent-steps 1 builds")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--full-site", type=Path,
                        help="a default report of the one model given, built before: compare the loop against it")
    args = parser.parse_args()
    if args.full_site and len(args.models) != 1:
        parser.error("--full-site needs exactly one model in --models")
    work = Path(tempfile.mkdtemp(prefix="cnnviz-deep-"))
    results = []
    for model in args.models:
        results.append(measure(model, args.fixed_only, work, args.full_site))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
