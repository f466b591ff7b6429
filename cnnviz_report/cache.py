"""Gradient-ascent results on disk, keyed by everything that decides them.

The ascent is the slow part of a build and depends on no image, so rebuilding with new images
or new notes should not redo it. A result's key covers the configuration and weights of every
layer up to the target (in walk order, a superset of what the target depends on: fine-tuning
only a model's head keeps every conv layer's entry), the layer, the ascent settings, the input
geometry and preprocessing, and the tool version.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from . import __version__
from .inspection import LayerInfo, resolve_layer

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnviz_report"


def weights_digests(model, layers: tuple[LayerInfo, ...]) -> dict[int, str]:
    """layer index -> digest of the configuration and weights of every layer up to it."""
    running = hashlib.sha256()
    digests = {}
    for info in layers:
        if not info.is_submodel:  # a sub-model's weights are its inner layers', walked next
            layer = resolve_layer(model, info)
            running.update(json.dumps(layer.get_config(), sort_keys=True, default=str).encode())
            for weight in layer.get_weights():
                array = np.ascontiguousarray(weight)
                running.update(f"{array.dtype}{array.shape}".encode())
                running.update(array.tobytes())
        digests[info.index] = running.hexdigest()
    return digests


def ascent_key(weights_digest: str, info: LayerInfo, settings: dict) -> str:
    payload = json.dumps(
        {"tool": __version__, "format": FORMAT_VERSION, "weights": weights_digest,
         "layer": info.qualified_name, "settings": settings},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class AscentCache:
    """A folder of ``<key>.npz`` files; ``directory=None`` disables it."""

    def __init__(self, directory: Path | None):
        self.directory = Path(directory) / "ascent" if directory is not None else None
        self.hits = 0
        self.misses = 0
        self.write_errors = 0

    def load(self, key: str) -> dict | None:
        if self.directory is None:
            self.misses += 1  # computed, as with an empty cache
            return None
        path = self.directory / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as stored:
                entry = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, KeyError):  # absent, or unreadable: recompute
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def store(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        """Write atomically, so a killed build never leaves a half-written entry.

        A cache that cannot be written (read-only home, full disk) costs a recomputation next
        time, never the build: the failure is counted in ``write_errors`` and the build goes on.
        """
        if self.directory is None:
            return
        temporary = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **arrays)
            os.replace(temporary, self.directory / f"{key}.npz")
        except OSError:
            self.write_errors += 1
            if temporary:
                Path(temporary).unlink(missing_ok=True)
        except BaseException:
            if temporary:
                Path(temporary).unlink(missing_ok=True)
            raise
