"""manifest.json: what a site was built from, with which versions and settings, and how long it took.

Its ``"tool": "cnnviz_report"`` is also the mark that lets a later build replace the folder.
"""

from __future__ import annotations

import json
import os

from . import __version__ as report_version
from . import paths
from .analysis.framework import versions
from .records import Report
from .staging import replace_file


def write_manifest(report: Report, model_sha256: str | None, root: str, phase_seconds: dict,
                   libraries: tuple[str, ...] = ()) -> None:
    """``libraries``: packages the model's classes came from (KerasHub), whose versions are kept."""
    manifest = {
        "tool": "cnnviz_report",
        "version": report.version,
        "versions": {"cnnviz_report": report_version, **versions(libraries)},
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
    if report.state is not None:  # a streamed build's first look or updates, or a stopped build's site
        manifest["state"] = {"not_drawn": report.state.words,
                             "ascent_waiting": [r.info.qualified_name for r in report.layers
                                                if report.state.layer_waits(r.info.index)]}
    replace_file(os.path.join(root, paths.MARKER_FILE),
                 (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))
