"""What a build is asked to do, as one frozen value checked before any heavy work starts."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from .errors import UsageError

PREPROCESS_MODES = ("auto", "raw", "unit", "tf", "caffe", "torch")
WEIGHT_KEYWORDS = ("imagenet", "none")
ASCENT_MODES = ("balanced", "fast", "robust")
SELECT_MODES = ("first", "top")
UNIT_MODES = ("response", "raw")
PER_STAGE_MODES = ("all", "last")
EXECUTORS = ("local", "ray")
PRECISIONS = ("auto", "float32", "bfloat16")  # what the ascent steps compute in (--precision)
MOSAIC_FILTERS = 64  # a mosaic's filters, unless --max-filters all
ALL_FILTERS = 2 ** 31 - 1  # --max-filters all: every filter of every layer (grids, mosaics, cards)
DATASET_TOP_MAX = 16  # the stylesheet places this many dataset-example tiles a card


@dataclass(frozen=True)
class ReportConfig:
    """Every setting of one build. ``model=None`` means the bundled demo model."""

    model: str | None = None
    images: tuple[str, ...] = ()
    out: str = "cnnviz-site"
    weights: str | None = None  # None: the source's own (imagenet for names, the file's for files)
    layers: tuple[str, ...] = ()  # names or shell-style patterns (plain or sub/layer names); () every conv layer
    per_stage: str = "all"  # "last": of the layers kept, each stage's last conv with a kernel larger than 1x1
    max_filters: int = 64
    title: str | None = None
    seed: int = 0
    preprocess: str = "auto"
    ascent_mode: str = "balanced"
    select: str = "first"  # "first": filters 0-63; "top": scan them all, keep the 64 most activated
    input_size: tuple[int, int] | None = None  # (height, width) for models that take any size; None: 224
    # a model input_size does not fit (a fixed side differs) is built at its own size rather than
    # refused, and the report's settings say so (a gallery's models, some fixed, some free)
    input_size_if_free: bool = False
    unit: str = "response"  # "response": after the conv's BN/activation chain; "raw": the conv's own output
    ascent_steps: int | None = None  # None: the mode's own (balanced 20, fast 30, robust 128)
    ascent_learning_rate: float | None = None  # None: the mode's own
    precision: str = "auto"  # the ascent steps' arithmetic; auto: bfloat16 where this CPU's matrix units gain
    cache_dir: str | None = None  # None: ~/.cache/cnnviz_report (XDG_CACHE_HOME honoured)
    use_cache: bool = True
    keep_going: bool = False  # skip unreadable images (listed in the report) instead of stopping
    image_batch_size: int = 8
    dataset: str | None = None  # a folder (class sub-folders optional) or list file: each filter's top images
    dataset_top: int = 9  # dataset examples a filter
    dataset_batch_size: int = 32
    labels: str | None = None  # a text file, one class name a line in output order (not keras.applications)
    target_class: str | None = None  # --class NAME|INDEX: the class explained on every image (None: its top one)
    explain: bool = True  # each image's Grad-CAM and deciding units (--no-explain skips them)
    notes: str | None = None  # a Markdown file: the index gets it, "## <layer>" sections their layer
    single_file: str | None = None  # also write one self-contained HTML file here
    single_file_images: int = 3  # feature maps of at most this many images in the single file
    stream: bool = True  # publish a first look once the pictures that need no ascent are drawn, then each layer
    executor: str = "local"  # where units of work run: "local" (this process) or "ray"
    ray_address: str | None = None  # None with "ray": a local cluster started for the build

    @property
    def settings(self) -> dict:
        """Every setting that decides the report, as the index and the manifest list them: file
        names, never the build machine's paths (the site is meant to be published)."""
        settings = asdict(self)
        # where things go, run or are kept between builds: the site is the same either way
        for key in ("out", "cache_dir", "use_cache", "stream", "executor", "ray_address", "input_size_if_free"):
            settings.pop(key)
        settings["images"] = [os.path.basename(os.path.normpath(path)) for path in self.images]
        if self.dataset:
            settings["dataset"] = os.path.basename(os.path.normpath(self.dataset))
        settings["layers"] = list(self.layers)
        if self.max_filters == ALL_FILTERS:
            settings["max_filters"] = "all"
        for key in ("model", "weights", "notes", "single_file", "labels"):  # an application name has no folder
            if settings[key] and (os.sep in settings[key] or os.path.exists(settings[key])):
                settings[key] = os.path.basename(settings[key])
        return settings

    @property
    def outside_files(self) -> tuple[str, ...]:
        """Files the build reads or writes beside the site: the output folder must not hold them."""
        return self.images + tuple(path for path in (self.model, self.notes, self.single_file, self.dataset,
                                                     self.labels) if path)

    def validate(self) -> "ReportConfig":
        """Raise one UsageError listing every problem found, or return self."""
        problems = []
        if self.max_filters < 1:
            problems.append(f"--max-filters must be at least 1, got {self.max_filters}")
        if self.ascent_steps is not None and self.ascent_steps < 0:
            problems.append(f"--ascent-steps must be 0 or more, got {self.ascent_steps}")
        if self.ascent_learning_rate is not None and not self.ascent_learning_rate > 0:
            problems.append(f"--ascent-lr must be positive, got {self.ascent_learning_rate}")
        if self.precision not in PRECISIONS:
            problems.append(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.ascent_mode not in ASCENT_MODES:
            problems.append(f"--ascent must be one of {', '.join(ASCENT_MODES)}, got {self.ascent_mode!r}")
        if self.select not in SELECT_MODES:
            problems.append(f"--select must be one of {', '.join(SELECT_MODES)}, got {self.select!r}")
        if self.input_size is not None and not all(8 <= side <= 4096 for side in self.input_size):
            problems.append(f"--input-size sides must be 8 to 4096 pixels, got {self.input_size}")
        if self.per_stage not in PER_STAGE_MODES:
            problems.append(f"--per-stage must be one of {', '.join(PER_STAGE_MODES)}, got {self.per_stage!r}")
        if self.unit not in UNIT_MODES:
            problems.append(f"--unit must be one of {', '.join(UNIT_MODES)}, got {self.unit!r}")
        if self.executor not in EXECUTORS:
            problems.append(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.ray_address and self.executor != "ray":
            problems.append("--ray-address needs --executor ray")
        if not 1 <= self.dataset_top <= DATASET_TOP_MAX:
            problems.append(f"--dataset-top must be 1 to {DATASET_TOP_MAX}, got {self.dataset_top}")
        if self.dataset_batch_size < 1:
            problems.append(f"dataset batch size must be at least 1, got {self.dataset_batch_size}")
        if self.image_batch_size < 1:
            problems.append(f"image batch size must be at least 1, got {self.image_batch_size}")
        if self.preprocess not in PREPROCESS_MODES:
            problems.append(
                f"--preprocess must be one of {', '.join(PREPROCESS_MODES)}, got {self.preprocess!r}"
            )
        if self.weights is not None and self.weights.lower() not in WEIGHT_KEYWORDS:
            if not os.path.isfile(self.weights):
                problems.append(f"--weights {self.weights}: no such file")
        if self.model is None and self.weights is not None and self.weights.lower() == "imagenet":
            problems.append("--weights imagenet needs an application name such as vgg16")
        if self.labels is not None and not os.path.isfile(self.labels):
            problems.append(f"--labels {self.labels}: no such file")
        if self.target_class is not None and not self.target_class.strip():
            problems.append("--class must name a class or give its index")
        if self.notes is not None and not os.path.isfile(self.notes):
            problems.append(f"--notes {self.notes}: no such file")
        if self.single_file_images < 0:
            problems.append(f"--single-file-images must be 0 or more, got {self.single_file_images}")
        if not self.out.strip():
            problems.append("--out must name a folder")
        if problems:
            raise UsageError("options", "; ".join(problems))
        return self
