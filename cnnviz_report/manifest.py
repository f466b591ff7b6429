"""manifest.json: what a site was built from, with which versions and settings, and how long it took.

Its ``"tool": "cnnviz_report"`` is also the mark that lets a later build replace the folder.
"""

from __future__ import annotations

import json
import os
import platform

import numpy as np
import PIL

from . import __version__ as report_version
from . import paths
from .records import Report


def versions() -> dict:
    import keras
    import tensorflow

    return {"cnnviz_report": report_version, "python": platform.python_version(),
            "tensorflow": tensorflow.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__}


def write_manifest(report: Report, model_sha256: str | None, root: str, phase_seconds: dict) -> None:
    manifest = {
        "tool": "cnnviz_report",
        "version": report.version,
        "versions": versions(),
        "model": {"name": report.model_name, "source": report.model_source, "weights": report.weights,
                  "file_sha256": model_sha256},
        "images": [{"name": i.name, "sha256": i.sha256, "page": paths.image_page(i.slug)} for i in report.images],
        "layers": [{"name": r.info.qualified_name, "page": paths.layer_page(r.slug),
                    "health": r.health.counts if r.health else {}, "failure": r.failure} for r in report.layers],
        "settings": report.settings,
        "seconds_per_phase": {phase: round(seconds, 3) for phase, seconds in phase_seconds.items()},
        "skipped_images": [{"file": name, "reason": reason} for name, reason in report.skipped_images],
        "failed_layers": [{"name": r.info.qualified_name, "type": r.info.type_name, "reason": r.failure}
                          for r in report.failed_layers],
    }
    with open(os.path.join(root, paths.MARKER_FILE), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
