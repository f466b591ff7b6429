"""Many models, one site: a report for each under one gallery index (OpenAI Microscope's shape).

Each model's report is an ordinary build (``build_site``) into ``NN-name/`` of the gallery, all
on one executor (one Ray cluster for the whole gallery) and through the same caches; the index
gets a card per model (its size, layers, a few mosaic tiles, its health in numbers). Like a
build, the gallery is staged: a failure leaves the previous gallery as it was.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from typing import Callable

from . import paths
from .build import build_site
from .config import ReportConfig
from .executors import make_executor
from .analysis.model_loading import check_model_argument
from .analysis.torch_loading import is_torch_model
from .records import BuildResult
from .site import write_gallery_site
from .staging import check_output_folder, folder_bytes, staged_site, write_text
from .summary import gallery_summary


@dataclass(frozen=True)
class GalleryEntry:
    """One model of the gallery: its folder and its build."""

    slug: str
    build: BuildResult


@dataclass(frozen=True)
class GalleryResult:
    out_dir: str
    title: str
    entries: tuple[GalleryEntry, ...]
    seconds: float
    site_bytes: int


def gallery_configs(models: list[str], common: dict) -> list[ReportConfig]:
    """One build configuration a model; ``demo`` names the bundled demo model, and ``weights``
    (imagenet, none or a file) applies to application names only: a model file keeps its own, and
    a PyTorch function of the user's (``net.py:make_net``) builds with its seeded random weights."""
    configs = []
    for model in models:
        is_file = os.path.exists(model) or model.lower().endswith((".keras", ".h5")) or is_torch_model(model)
        changes = dict(common, model=None if model.lower() == "demo" else model)
        if is_file or model.lower() == "demo":
            changes["weights"] = None
        configs.append(ReportConfig(**changes))
    return configs


def build_gallery(configs: list[ReportConfig], out: str, title: str | None = None,
                  progress: Callable[[str, object], None] | None = None, executor=None) -> GalleryResult:
    """Build every model's report under ``out`` and the gallery index; ``progress(slug, event)``
    hears each model's build steps."""
    started = time.monotonic()
    for config in configs:
        config.validate()
    for config in configs:  # a missing or unsafe last model stops the gallery before the first is built
        check_model_argument(config.model)
    outside = tuple(path for config in configs for path in config.outside_files)
    check_output_folder(out, outside)
    owned = executor is None
    executor = executor or make_executor(configs[0].executor, configs[0].ray_address)
    try:
        with staged_site(out, outside) as root:
            entries = []
            for position, config in enumerate(configs):
                slug = paths.model_slug(position, config.model or "demo")
                tell = (lambda event, _slug=slug: progress(_slug, event)) if progress else None
                # --input-size applies to the models that take it; the others are built at their own
                result = build_site(replace(config, out=os.path.join(root, slug), single_file=None, stream=False,
                                            input_size_if_free=True), tell, executor)
                entries.append(GalleryEntry(slug, result))
            title = title or f"A gallery of {len(entries)} models"
            models = [(entry.slug, entry.build.report) for entry in entries]
            asked = configs[0].input_size if configs else None
            write_gallery_site(title, models, root, asked, tuple(
                report for config, (_, report) in zip(configs, models)
                if config.input_size and report.settings["input_size"] is None))
            write_text(root, paths.SUMMARY_FILE, gallery_summary(title, models))
            manifest = {"tool": "cnnviz_report", "kind": "gallery", "title": title,
                        "models": [{"folder": entry.slug, "model": entry.build.report.model_name,
                                    "manifest": f"{entry.slug}/{paths.MARKER_FILE}"} for entry in entries]}
            write_text(root, paths.MARKER_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            site_bytes = folder_bytes(root)
    finally:
        if owned:
            executor.close()
    return GalleryResult(os.path.abspath(out), title, tuple(entries), time.monotonic() - started, site_bytes)
