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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .analysis.framework import backend_and_device
from .layers import LayerInfo

FORMAT_VERSION = 4  # 2: the key holds every AscentSettings field; 3: entries hold the quality measures;
# 4: each filter starts from its own seed (pictures no longer depend on the batch they climbed in)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnviz_report"


def ascent_key(weights_digest: str, info: LayerInfo, settings, geometry: dict, selection: dict) -> str:
    """The one key of a layer's mosaic: every field of the ascent settings dataclass (so a new
    setting is part of it without anyone listing it), the input geometry, which filters were
    chosen and how, the unit, the weights up to the unit's end, the tool's version and the backend
    and device that climbed (their arithmetic differs in the last bits, and pictures with it)."""
    payload = json.dumps(
        {"tool": __version__, "format": FORMAT_VERSION, "weights": weights_digest, "layer": info.qualified_name,
         "unit": info.unit_layers, "settings": dict(asdict(settings), step_count=settings.step_count, rate=settings.rate,
                                                  betas=settings.betas), "geometry": geometry, "selection": selection,
         "backend": backend_and_device()},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def dataset_key(weights_digest: str, info: LayerInfo, dataset_digest: str, geometry: dict, top: int) -> str:
    """The key of one layer's pass over a data set: the weights up to the unit's end, the unit,
    every data-set file's bytes, name and class, the input geometry, k and the tool's version."""
    payload = json.dumps({"tool": __version__, "format": FORMAT_VERSION, "weights": weights_digest,
                          "layer": info.qualified_name, "unit": info.unit_layers, "dataset": dataset_digest,
                          "geometry": geometry, "top": top, "backend": backend_and_device()}, sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class MosaicEntry:
    """One layer's finished ascent, in mosaic order: what the cache keeps and the mosaic draws."""

    filter_indices: np.ndarray  # int64 (F,)
    images: np.ndarray  # uint8 (F, h, w, C)
    activations: np.ndarray  # float32 (F,), the unit's mean response on the final canvas
    transformed: np.ndarray  # float32 (F,), its mean under the quality measure's transforms
    high_frequency: np.ndarray  # float32 (F,), the pictures' share of power in the top octave
    canvas_hw: tuple[int, int]
    floor: np.ndarray | None  # float64 per filter of the layer; None: the response has no floor

    def to_npz(self, stream) -> None:
        np.savez(stream, filter_indices=self.filter_indices, images=self.images, activations=self.activations,
                 transformed=self.transformed, high_frequency=self.high_frequency,
                 canvas=np.asarray(self.canvas_hw, np.int64),
                 floor=np.asarray([] if self.floor is None else self.floor, np.float64))

    @classmethod
    def from_npz(cls, stored) -> "MosaicEntry":
        floor = stored["floor"]
        return cls(stored["filter_indices"], stored["images"], stored["activations"], stored["transformed"],
                   stored["high_frequency"], tuple(int(v) for v in stored["canvas"]), floor if len(floor) else None)


class ResultCache:
    """A folder of ``<key>.npz`` files of one kind of result (a class with ``to_npz(stream)`` and
    ``from_npz(stored)``); ``directory=None`` disables it."""

    def __init__(self, directory: Path | None, kind: str, entry_type):
        self.directory = Path(directory) / kind if directory is not None else None
        self.entry_type = entry_type
        self.hits = 0
        self.misses = 0
        self.write_errors = 0  # entries that could not be stored (shown after the build)

    def load(self, key: str, entry_type=None):
        """The entry of ``key`` (as ``entry_type``, default the cache's own), or None."""
        if self.directory is None:
            self.misses += 1  # computed, as with an empty cache
            return None
        path = self.directory / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as stored:
                entry = (entry_type or self.entry_type).from_npz(stored)
        except (OSError, ValueError, KeyError):  # absent, or unreadable: recompute
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def discard(self, key: str) -> None:
        """Forget an entry that a larger one now holds (a layer's units once the layer is stored)."""
        if self.directory is not None:
            try:
                (self.directory / f"{key}.npz").unlink(missing_ok=True)
            except OSError:
                pass

    def store(self, key: str, entry) -> None:
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
                entry.to_npz(stream)
            os.replace(temporary, self.directory / f"{key}.npz")
        except OSError:
            self.write_errors += 1
            if temporary:
                Path(temporary).unlink(missing_ok=True)
        except BaseException:
            if temporary:
                Path(temporary).unlink(missing_ok=True)
            raise


class AscentCache(ResultCache):
    """Finished mosaics (``MosaicEntry``), under ``<cache>/ascent``."""

    def __init__(self, directory: Path | None):
        super().__init__(directory, "ascent", MosaicEntry)
