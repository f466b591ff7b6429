"""Command line: argparse, console progress, exit codes and one-line errors.

TensorFlow is imported only once a build starts, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings

from . import __version__
from .analysis.framework import BACKENDS, backend_problem, choose_backend, quiet_framework_start
from .analysis.torch_loading import STATE_DICT_EXTENSIONS, is_torch_model
from .config import (ALL_FILTERS, ASCENT_MODES, EXECUTORS, PER_STAGE_MODES, PRECISIONS, PREPROCESS_MODES, SELECT_MODES,
                     UNIT_MODES, ReportConfig)
from .errors import CnnvizError, UsageError

PROG = "cnnviz_report"

EPILOG = """examples:
  python -m cnnviz_report build                       the bundled demo model and photograph
  python -m cnnviz_report build vgg16 --images bird.jpg --out vgg16-site
  python -m cnnviz_report build vgg16 --weights none --images photos/   (offline, random weights)
  python -m cnnviz_report build my_model.keras --images a.png b.png --layers conv1 conv2
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Turn a convolutional neural network into a browsable static website.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    build = commands.add_parser(
        "build",
        help="build a report site for a model",
        description="Build a static site: filter grids, feature maps, image belts and "
        "gradient-ascent mosaics for every convolution layer, with layer shape tables.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument(
        "model", nargs="?", metavar="MODEL",
        help="a keras.applications name (vgg16, resnet50v2, mobilenetv2, efficientnetb0, convnext_tiny, "
        "...; any case), a .keras/.h5 model file (KerasHub models too, with keras-hub installed), or a "
        "KerasHub preset from its local cache (keras_hub:resnet_50_imagenet), or a function of your own code "
        "that returns a PyTorch nn.Module (net.py:make_net or package.module:make_net: your code is run, as "
        "python would run it; the build then runs on the torch backend); omit it for the bundled demo model",
    )
    build.add_argument("--out", default="cnnviz-site", metavar="DIR",
                       help="folder for the site (default: %(default)s); an existing site made by this "
                       "tool is replaced, any other non-empty folder is refused")
    build.add_argument("--layers", nargs="+", default=[], metavar="NAME",
                       help="draw only these conv layers: names or shell-style patterns such as "
                       "'conv*_block*_2_conv' (quote them), matched against plain and sub/layer names "
                       "(default: every conv layer)")
    build.add_argument("--title", metavar="TEXT", help="title of the site (default: the model's name)")
    _report_options(build)
    build.add_argument("--notes", metavar="FILE.md",
                       help="a reviewer's Markdown notes: shown on the index; a '## <layer name>' section "
                       "goes on that layer's page (raw HTML in them is shown as text)")
    build.add_argument("--single-file", metavar="FILE.html",
                       help="also write the report as one self-contained HTML file (pictures embedded, "
                       "shrunk) to attach where only one file can go")
    build.add_argument("--single-file-images", type=int, default=3, metavar="N",
                       help="feature maps of at most N images in the single file (default: %(default)s)")
    build.add_argument("--no-stream", action="store_true",
                       help="publish the site once, at the end (default: a first look as soon as the pictures "
                       "that need no gradient ascent are drawn, then each layer as it lands)")
    build.add_argument("--serve", action="store_true",
                       help="serve the site on http://127.0.0.1:PORT/ while it builds (open pages reload as their "
                       "layer lands) and after, until Ctrl-C")
    build.add_argument("--port", type=int, default=8000, metavar="N", help="the port for --serve (default: %(default)s)")
    build.add_argument("--bind", default="127.0.0.1", metavar="ADDRESS",
                       help="the address --serve listens on (default: %(default)s, this machine only)")
    _console_options(build)

    gallery = commands.add_parser(
        "gallery",
        help="build one report per model under one gallery index",
        description="Build a report for each model (as build does, with the same options) under one folder, "
        "and a gallery index with a card per model: its size, layers, a few gradient-ascent pictures and its "
        "health. With --executor ray every model's units of work run on one Ray cluster.",
        epilog="examples:\n  python -m cnnviz_report gallery vgg16 resnet50v2 my_model.keras --images photos/ --out gallery\n"
        "  python -m cnnviz_report gallery vgg16 resnet50v2 --weights none --max-filters all --executor ray",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gallery.add_argument("models", nargs="+", metavar="MODEL",
                         help="keras.applications names, .keras/.h5 model files, or demo (the bundled model)")
    gallery.add_argument("--out", default="cnnviz-gallery", metavar="DIR",
                         help="folder for the gallery (default: %(default)s); an existing gallery or site made "
                         "by this tool is replaced, any other non-empty folder is refused")
    gallery.add_argument("--title", metavar="TEXT", help="title of the gallery (default: A gallery of N models)")
    _report_options(gallery)
    _console_options(gallery)

    diff = commands.add_parser(
        "diff",
        help="compare two checkpoints of one architecture, filter by filter",
        description="Compare two checkpoints of the same architecture: per-filter kernel change and, on the "
        "images, response change, each ranked (a layer downstream of a change shows too); each changed "
        "filter's kernel and map in A, B and B - A; feature maps of A and B on one scale with their "
        "difference; filters that became dead or came alive. Builds a report for each under DIR/a and "
        "DIR/b (reusing the mosaic cache).",
        epilog="examples:\n  python -m cnnviz_report diff before.keras after.keras --images photos/\n"
        "  python -m cnnviz_report diff vgg16 finetuned.weights.h5 --images bird.jpg   (B: A's architecture with these weights)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    diff.add_argument("model_a", metavar="A", help="a .keras/.h5 model file, an application name, or a function "
                      "that returns a PyTorch nn.Module (net.py:make_net, as in build)")
    diff.add_argument("model_b", metavar="B", help="a model file of the same architecture, or a .weights.h5 file "
                      "to load into A's architecture (for a PyTorch A: a .pt/.pth/.safetensors state dict)")
    diff.add_argument("--weights-a", metavar="imagenet|none|PATH", help="weights for A (as build's --weights)")
    diff.add_argument("--images", nargs="+", default=[], metavar="IMG", help="images to compare the feature maps on")
    diff.add_argument("--out", default="cnnviz-diff", metavar="DIR", help="folder for the diff site (default: %(default)s)")
    diff.add_argument("--layers", nargs="+", default=[], metavar="NAME",
                      help="only these conv layers (names or shell-style patterns)")
    _per_stage_option(diff)
    diff.add_argument("--max-filters", type=int, default=64, metavar="N")
    diff.add_argument("--seed", type=int, default=0, metavar="N")
    diff.add_argument("--preprocess", choices=PREPROCESS_MODES, default="auto")
    diff.add_argument("--ascent-steps", type=int, metavar="N")
    _precision_option(diff)
    diff.add_argument("--cache-dir", metavar="DIR")
    diff.add_argument("--no-cache", action="store_true")
    _console_options(diff)
    return parser


def _report_options(parser: argparse.ArgumentParser) -> None:
    """What a report is made of and how: shared by build and gallery."""
    parser.add_argument(
        "--images", nargs="+", default=[], metavar="IMG",
        help="image files (JPEG, PNG, BMP, GIF, WebP, TIFF) or folders of them; each is resized to the "
        "model's input size (the demo uses a photograph of Grace Hopper when none are given)",
    )
    parser.add_argument(
        "--weights", metavar="imagenet|none|PATH",
        help="for application names: imagenet (default; from the Keras cache ~/.keras/models or a "
        "download), none (random initialisation, works offline) or a weights file; for model files: "
        "a weights file to load on top",
    )
    _per_stage_option(parser)
    parser.add_argument("--max-filters", type=_filter_count, default=64, metavar="N|all",
                        help="at most N filters per layer in filter grids, mosaics and cards (default: %(default)s); "
                        "all: every filter of every layer, the cards in pages of 64")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="random seed for the gradient-ascent noise (default: %(default)s)")
    parser.add_argument(
        "--preprocess", choices=PREPROCESS_MODES, default="auto",
        help="how pixels 0..255 are fed to the model: auto (default: the application's own "
        "preprocess_input; for model files 'raw' if the model starts with a Rescaling layer, the "
        "application's if it is or starts with a keras.applications model, else 'unit'), raw (0..255), "
        "unit (0..1), tf (-1..1), caffe or torch (ImageNet mean/std)",
    )
    parser.add_argument(
        "--ascent", choices=ASCENT_MODES, default="balanced",
        help="how the filter pictures are made: balanced (default: lucid's Fourier image, decorrelated "
        "colour and random transforms, 20 steps of Adam; the first layers' small canvases the fast way), "
        "fast (the keras.io method: pixels, no transforms; noise in deep layers of trained models) or "
        "robust (lucid's full recipe, 128 steps; about 4x balanced's time)",
    )
    parser.add_argument("--select", choices=SELECT_MODES, default="first",
                        help="which 64 filters get a picture: first (default) or top (scan every filter "
                        "briefly, keep the 64 most activated)")
    parser.add_argument("--input-size", type=_input_size, metavar="N|HxW",
                        help="the input size for models that accept any size (default 224); a model with one "
                        "free side takes it for that side; a fixed size that differs is refused (in a gallery, such "
                        "a model is built at its own size and the index says so)")
    parser.add_argument("--unit", choices=UNIT_MODES, default="response",
                        help="what a filter's pictures and verdicts are taken from: response (default: the conv's "
                        "output after the BatchNormalization/activation layers that follow it alone, i.e. what "
                        "the next layer sees) or raw (the conv layer's own output)")
    parser.add_argument("--ascent-steps", type=int, metavar="N",
                        help="gradient-ascent steps per filter (default: 20 balanced, 30 fast, 128 robust); 0 skips "
                        "the mosaics")
    parser.add_argument("--ascent-lr", type=float, metavar="LR",
                        help="step size (default: Adam 0.25 for balanced, 10 on the keras.io scale for fast, Adam "
                        "0.05 for robust)")
    _precision_option(parser)
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where finished mosaics are kept between builds (default: ~/.cache/cnnviz_report)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the mosaic cache")
    parser.add_argument("--dataset", metavar="DIR|LIST",
                        help="a folder of images (read recursively; one sub-folder per class gives classes) or a "
                        "list file (one path a line, a class after a tab): each filter's card shows the images "
                        "it fires on most, cropped to its receptive field, and with classes its response per class")
    parser.add_argument("--dataset-top", type=int, default=9, metavar="K",
                        help="dataset examples a filter (default: %(default)s)")
    parser.add_argument("--labels", metavar="FILE",
                        help="class names, one a line in the model's output order, for the predictions and the "
                        "explanations (keras.applications classifiers have ImageNet's names already)")
    parser.add_argument("--class", dest="target_class", metavar="NAME|INDEX",
                        help="the class each image's Grad-CAM and deciding units explain (default: its top "
                        "prediction)")
    parser.add_argument("--no-explain", action="store_true",
                        help="skip each image's Grad-CAM and the units that made its decision")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="where the gradient ascents and the data-set pass run: local (default: this process) "
                        "or ray (Ray tasks: on --ray-address, or a local cluster started for the build); the site "
                        "is the same either way")
    parser.add_argument("--ray-address", metavar="HOST:PORT",
                        help="the Ray cluster to use with --executor ray (e.g. 10.0.0.5:6379, or auto)")
    parser.add_argument("--keep-going", action="store_true",
                        help="skip images that cannot be read, and layers that fail to draw, instead of "
                        "stopping; they are listed in the report and on the console, and the exit code is 2")


def _precision_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="what the gradient-ascent steps compute in: auto (default: bfloat16 for the layers "
                        "whose convolutions gain from a CPU's bfloat16 matrix units (AMX), float32 elsewhere), "
                        "float32, or bfloat16 everywhere; responses and verdicts are always measured in float32")


def _per_stage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--per-stage", choices=PER_STAGE_MODES, default="all",
                        help="all (default): every conv layer (that --layers keeps); last: in each stage, the last "
                        "conv layer with a kernel larger than 1x1, as the ResNet post draws them")


def _pages(count: int) -> str:
    return f"{count} conv-layer page" + ("" if count == 1 else "s")


def _backend_for(args: argparse.Namespace) -> str | None:
    """--backend, except that a PyTorch model (build's MODEL, diff's A, any of a gallery's) runs
    on Keras's torch backend (its ascent climbs through keras.ops on torch tensors): another
    backend is an error. Keras fixes its backend per process, so a gallery that holds a PyTorch
    model builds its Keras models on the torch backend too (the same verdicts: docs/backends.md)."""
    models = [args.model] if args.command == "build" else [args.model_a] if args.command == "diff" else args.models
    model = next((model for model in models if is_torch_model(model)), None)
    if model is None:
        return args.backend
    if args.backend not in (None, "torch"):
        raise ValueError(f"{model} is a PyTorch model: it runs on the torch backend, not --backend {args.backend}")
    return "torch"


def _backend_name(text: str) -> str:
    """A backend in any case, with the names people also use (tf, pytorch)."""
    name = text.strip().lower()
    return {"tf": "tensorflow", "pytorch": "torch"}.get(name, name)


def _console_options(parser: argparse.ArgumentParser) -> None:
    _backend_option(parser)
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")


def _backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, metavar="|".join(BACKENDS), type=_backend_name,
                        help="the Keras backend to run on (default: KERAS_BACKEND, else ~/.keras/keras.json, "
                        "else tensorflow); any GPU it sees is used")


def _filter_count(text: str) -> int:
    """``N`` or ``all``."""
    if text.strip().lower() == "all":
        return ALL_FILTERS
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or all, got {text!r}") from None


def _input_size(text: str) -> tuple[int, int]:
    """``224`` or ``240x320`` (height x width)."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected N or HxW in pixels, got {text!r}")
    sides = [int(p) for p in parts]
    return (sides[0], sides[-1])


def _diff_configs(args: argparse.Namespace) -> tuple[ReportConfig, ReportConfig]:
    common = dict(images=tuple(args.images), layers=tuple(args.layers), per_stage=args.per_stage,
                  max_filters=args.max_filters, seed=args.seed,
                  preprocess=args.preprocess, ascent_steps=args.ascent_steps, precision=args.precision,
                  cache_dir=args.cache_dir,
                  use_cache=not args.no_cache)
    config_a = ReportConfig(model=args.model_a, weights=args.weights_a, **common)
    state_dict = is_torch_model(args.model_a) and args.model_b.lower().endswith(STATE_DICT_EXTENSIONS)
    if args.model_b.lower().endswith(".weights.h5") or state_dict:  # B: A's architecture, these weights
        config_b = ReportConfig(model=args.model_a, weights=args.model_b, **common)
    else:
        config_b = ReportConfig(model=args.model_b, **common)
    return config_a.validate(), config_b.validate()


def _report_settings(args: argparse.Namespace) -> dict:
    """The ReportConfig fields of ``_report_options``."""
    return dict(
        images=tuple(args.images),
        weights=args.weights,
        per_stage=args.per_stage,
        max_filters=args.max_filters,
        seed=args.seed,
        preprocess=args.preprocess,
        ascent_mode=args.ascent,
        select=args.select,
        unit=args.unit,
        input_size=args.input_size,
        ascent_steps=args.ascent_steps,
        ascent_learning_rate=args.ascent_lr,
        precision=args.precision,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        keep_going=args.keep_going,
        dataset=args.dataset,
        dataset_top=args.dataset_top,
        labels=args.labels,
        target_class=args.target_class,
        explain=not args.no_explain,
        executor=args.executor,
        ray_address=args.ray_address,
    )


def _config(args: argparse.Namespace) -> ReportConfig:
    return ReportConfig(model=args.model, out=args.out, layers=tuple(args.layers), title=args.title, notes=args.notes,
                        single_file=args.single_file, single_file_images=args.single_file_images,
                        stream=not args.no_stream,
                        **_report_settings(args))


class ConsoleProgress:
    """``[ 3/41] block1_conv2: feature maps  (ETA 1m20s)`` on stderr as each step starts, and as a
    long step goes on (``gradient ascent, 16 of 64 filters``)."""

    def __init__(self, stream=None):
        self.stream = stream  # None: whatever sys.stderr is when a line is printed
        self.started = time.monotonic()

    def __call__(self, event, prefix: str = "") -> None:
        elapsed = time.monotonic() - self.started
        eta = ""
        if 0.01 <= event.work_done < 1.0:  # too early, the first steps' times say little
            remaining = elapsed / event.work_done * (1.0 - event.work_done)
            eta = f"  (ETA {int(remaining // 60)}m{int(remaining % 60):02d}s)"
        width = len(str(event.total))
        detail = f", {event.detail}" if event.detail else ""
        print(f"{prefix}[{event.step:>{width}}/{event.total}] {event.subject}: {event.phase}{detail}{eta}",
              file=self.stream or sys.stderr, flush=True)


PAGES_WARN_BYTES = 800 * 1024 ** 2  # GitHub Pages' published-site limit is 1 GB


def _size(count: int) -> str:
    return f"{count / 1024 ** 2:.1f} MB" if count >= 1024 ** 2 else f"{count / 1024:.0f} KB"


def _exit_on_sigterm(signum, frame):
    """Turn SIGTERM into an exception so the build removes its staging folder on the way out."""
    raise SystemExit(128 + signum)


def _run_diff(args: argparse.Namespace) -> int:
    from .diff import diff_models
    from .diff_records import ranked_by_response

    config_a, config_b = _diff_configs(args)
    found = diff_models(config_a, config_b, args.out, progress=None if args.quiet else ConsoleProgress())
    if not args.quiet:
        for diff in ranked_by_response(found["layers"])[:5]:  # as the index and summary.md list them
            top = ", ".join(f"{c.number} ({c.relative_l2:.2g})" for c in diff.changed[:3]) or "none"
            response = "" if diff.response_change is None else f"response change {diff.response_change:.3g}; "
            print(f"  {diff.info.qualified_name}: {response}mean change {diff.mean_change:.3g}; "
                  f"most changed filters {top}")
        print(f"Diff of {len(found['layers'])} conv layers in {found['seconds']:.1f} s (mosaic cache: "
              f"{found['cache_hits']} reused, {found['cache_misses']} computed): {os.path.join(args.out, 'index.html')}")
    return 0


def _run_gallery(args: argparse.Namespace) -> int:
    from .gallery import build_gallery, gallery_configs

    configs = gallery_configs(args.models, _report_settings(args))
    console = None if args.quiet else ConsoleProgress()
    result = build_gallery(configs, args.out, args.title,
                           progress=(lambda slug, event: console(event, prefix=f"{slug} ")) if console else None)
    whole = True
    for entry in result.entries:
        report = entry.build.report
        for name, reason in report.skipped_images:
            print(f"{PROG}: skipped: {entry.slug}: {name}: {reason}", file=sys.stderr)
        for layer in report.failed_layers:
            print(f"{PROG}: layer not drawn: {entry.slug}: {layer.info.qualified_name}: {layer.failure}", file=sys.stderr)
        whole = whole and not report.skipped_images and not report.failed_layers
    if not args.quiet:
        for entry in result.entries:
            build = entry.build
            print(f"  {entry.slug}: {_pages(len(build.report.layers))} in {build.seconds:.1f} s "
                  f"(mosaic cache: {build.cache_hits} reused, {build.cache_misses} computed)")
        print(f"Gallery of {len(result.entries)} models in {result.seconds:.1f} s: "
              f"{os.path.join(result.out_dir, 'index.html')} ({_size(result.site_bytes)})")
    if result.site_bytes > PAGES_WARN_BYTES:
        print(f"{PROG}: warning: the gallery is {_size(result.site_bytes)}; GitHub Pages publishes at most 1 GB.",
              file=sys.stderr)
    return 0 if whole else 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command not in ("build", "diff", "gallery"):
        parser.print_help()
        return 2
    try:
        choose_backend(_backend_for(args))
        if not args.debug:
            quiet_framework_start()
    except ValueError as error:  # also Keras's own, for a backend KERAS_BACKEND or keras.json names
        print(f"{PROG}: error: {backend_problem(error)}", file=sys.stderr)
        return 2
        # Keras's and TensorFlow's Python warnings (default input sizes, deprecations) are noise
        # on a report's console; --debug shows them.
        for module in ("keras", "tensorflow", "absl"):
            warnings.filterwarnings("ignore", module=module)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    published: list = []  # the first look, once a streamed build has published it
    server = None
    try:
        if args.command == "diff":
            return _run_diff(args)
        if args.command == "gallery":
            return _run_gallery(args)
        from .build import build_site

        config = _config(args)
        server = _start_server(args) if args.serve else None  # first: a busy port stops the build at once
        where = server.url if server else os.path.join(os.path.abspath(config.out), "index.html")
        if server and not args.quiet:
            print(f"Serving {where} (the first look appears there when it is drawn; Ctrl-C stops)", flush=True)

        def first_look(report) -> None:
            published.append(report)
            if not args.quiet:
                print(f"First look: {where} (the rest is {report.state.words})", flush=True)

        result = build_site(config, progress=None if args.quiet else ConsoleProgress(), first_look=first_look)
    except CnnvizError as error:
        if server:
            server.stop()
        if args.debug:
            raise
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        if server:
            server.stop()
        if published:
            print(f"{PROG}: interrupted; {args.out} shows what was drawn and says what was not; the same command "
                  "draws only what is missing", file=sys.stderr)
        else:
            print(f"{PROG}: interrupted; the previous site, if any, is untouched", file=sys.stderr)
        return 130
    except Exception as error:  # a bug or an environment problem: still one line unless --debug
        if server:
            server.stop()
        if args.debug:
            raise
        print(f"{PROG}: error: {type(error).__name__}: {' '.join(str(error).split())[:400]} "
              "(run with --debug for a traceback)", file=sys.stderr)
        return 1
    for name, reason in result.report.skipped_images:
        print(f"{PROG}: skipped: {name}: {reason}", file=sys.stderr)
    for layer in result.report.failed_layers:
        print(f"{PROG}: layer not drawn: {layer.info.qualified_name} ({layer.info.type_name}): {layer.failure}",
              file=sys.stderr)
    if not args.quiet:
        index = os.path.join(result.out_dir, "index.html")
        phases = ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in result.phase_seconds.items())
        print(f"Built {_pages(len(result.report.layers))} in {result.seconds:.1f} s ({phases}; "
              f"mosaic cache: {result.cache_hits} reused, {result.cache_misses} computed): {index} "
              f"({_size(result.site_bytes)})")
        if result.cache_write_errors:
            print(f"{PROG}: warning: {result.cache_write_errors} mosaic(s) could not be written to the cache; "
                  "the next build computes them again", file=sys.stderr)
        if result.single_file:
            print(f"Single-file report: {result.single_file} ({_size(result.single_file_bytes)})")
    if result.site_bytes > PAGES_WARN_BYTES:
        print(f"{PROG}: warning: the site is {_size(result.site_bytes)}; GitHub Pages publishes at most 1 GB. "
              "Use --layers, --max-filters or fewer images.", file=sys.stderr)
    code = 2 if result.report.skipped_images or result.report.failed_layers else 0  # built, but not whole
    if server:
        _serve_until_interrupted(server, args.quiet)
    return code


def _start_server(args: argparse.Namespace):
    """The --serve server, listening before the build starts (so a busy port is said at once)."""
    from .serve import LiveServer

    try:
        return LiveServer(args.out, args.bind, args.port).start()
    except OSError as error:
        raise UsageError("--serve", f"cannot listen on {args.bind}:{args.port}: {error.strerror or error}; "
                         "choose another --port") from error


def _serve_until_interrupted(server, quiet: bool) -> None:
    """After the build: the site stays served until Ctrl-C (or SIGTERM)."""
    if not quiet:
        print(f"Serving {server.url} until Ctrl-C", flush=True)
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
