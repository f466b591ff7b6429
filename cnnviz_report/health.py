"""Filter health: which filters are dead, constant, broken, redundant or odd. numpy only.

Two halves, because they come from different phases: ``kernel_findings`` needs only the
weights (every filter, drawn or not); ``activation_findings`` needs the per-image statistics
the feature-map phase records. ``LayerHealth`` joins them with the ascent's dead filters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DUPLICATE_COSINE = 0.98  # kernels this parallel (or more) do the same work
ASCENT_JUDGE_STEPS = 10  # fewer ascent steps than this cannot tell a dead filter from a slow one
OUTLIER_Z = 3.5  # robust z-score (median and MAD) of a kernel's L2 norm that counts as an outlier


BADGE_LABELS = {"dead": "dead", "constant": "constant", "nonfinite": "NaN/Inf kernel", "duplicates": "duplicate",
                "norm_outliers": "norm outlier", "ascent_dead": "ascent-dead"}


@dataclass(frozen=True)
class KernelFindings:
    norms: tuple[float, ...]  # L2 norm of each filter's kernel (NaN if it holds NaN/Inf)
    nonfinite: tuple[int, ...]
    duplicates: tuple[tuple[int, int, float], ...]  # (filter, earlier filter it repeats, cosine)
    norm_outliers: tuple[int, ...]


@dataclass(frozen=True)
class LayerHealth:
    filters: int
    kernel: KernelFindings
    images: int  # how many images the activation findings rest on (0: none given)
    dead: tuple[int, ...] = ()  # response at its floor everywhere on every image
    constant: tuple[int, ...] = ()  # one value everywhere on every image, not dead
    ascent_dead: tuple[int, ...] = ()  # gradient ascent could not make it fire (of the filters tried)
    rule: str = ""  # which rule decided "dead", in words, for the page
    ascent_judged: bool = True  # False: too few ascent steps ran to call a filter ascent-dead

    @property
    def counts(self) -> dict[str, int]:
        return {"dead": len(self.dead), "constant": len(self.constant), "nonfinite": len(self.kernel.nonfinite),
                "duplicates": len(self.kernel.duplicates), "norm_outliers": len(self.kernel.norm_outliers),
                "ascent_dead": len(self.ascent_dead)}

    def filters_of(self, finding: str) -> tuple[int, ...]:
        """The filters a finding (a key of ``counts``) counts, in order."""
        if finding == "duplicates":
            return tuple(sorted(number for number, _, _ in self.kernel.duplicates))
        if finding in ("nonfinite", "norm_outliers"):
            return tuple(getattr(self.kernel, finding))
        return tuple(getattr(self, finding))

    @property
    def badges(self) -> list[tuple[str, int, str]]:
        """(finding, count, explanation) of every finding present, for the pages (the finding's
        words are BADGE_LABELS[finding])."""
        meaning = {
            "dead": f"response at its floor everywhere on all {self.images} image(s)",
            "constant": f"the same value everywhere on all {self.images} image(s)",
            "nonfinite": "NaN or Inf in the kernel",
            "duplicates": f"kernel within cosine {DUPLICATE_COSINE} of an earlier filter's that reads the same inputs",
            "norm_outliers": f"kernel norm more than {OUTLIER_Z} robust deviations from the layer's median",
            "ascent_dead": "gradient ascent could not move its response off its floor",
        }
        return [(name, count, meaning[name]) for name, count in self.counts.items() if count]


def kernel_findings(kernel: np.ndarray, input_sets: np.ndarray | None = None) -> KernelFindings:
    """From a (kh, kw, in, out) kernel: norms, NaN/Inf filters, near-duplicates, norm outliers.

    A duplicate does the same work as an earlier filter, so it must read the same inputs: with
    ``input_sets`` (per filter, which inputs it reads: a depthwise filter its channel, a grouped
    conv's filter its group) only filters of one set are compared. Depthwise filters of different
    channels with alike kernels are not redundant (MobileNetV2 trained: 3,039 false duplicates)."""
    flat = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1]).T  # (filters, weights)
    finite = np.isfinite(flat).all(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.where(finite, np.linalg.norm(np.where(np.isfinite(flat), flat, 0.0), axis=1), np.nan)
    duplicates = []
    usable = np.flatnonzero(finite & (norms > 0))
    if input_sets is not None and len(usable) and len(np.unique(input_sets[usable])) == len(usable):
        usable = usable[:0]  # every filter reads inputs of its own (depthwise, multiplier 1): nothing to compare
    if len(usable) > 1:
        unit = flat[usable] / norms[usable, None]
        cosine = unit @ unit.T
        if input_sets is not None:
            sets = np.asarray(input_sets)[usable]
            cosine[sets[:, None] != sets[None, :]] = -np.inf
        for row in range(1, len(usable)):
            earlier = int(np.argmax(cosine[row, :row]))
            if cosine[row, earlier] >= DUPLICATE_COSINE:
                duplicates.append((int(usable[row]), int(usable[earlier]), round(float(cosine[row, earlier]), 4)))
    outliers = ()
    good = norms[finite]
    if len(good) >= 8:  # too few filters make any spread look odd
        median = np.median(good)
        deviation = np.median(np.abs(good - median)) * 1.4826
        if deviation > 0:
            z = np.abs(norms - median) / deviation
            outliers = tuple(int(f) for f in np.flatnonzero(finite & (z > OUTLIER_Z)))
    return KernelFindings(tuple(float(n) for n in norms), tuple(int(f) for f in np.flatnonzero(~finite)),
                          tuple(duplicates), outliers)


def at_floor(values: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """True where ``values`` equal the unit's floor (to float32 rounding)."""
    return np.abs(np.asarray(values, np.float64) - floor) <= 1e-6 * (1.0 + np.abs(floor))


def floor_rule(floor: np.ndarray | None) -> str:
    """The rule that decides "dead" for a unit with this floor, in words."""
    if floor is None:
        return ("the response has no floor (linear, or an activation with a negative slope such as PReLU or "
                "LeakyReLU), so no filter is called dead; a filter that never changes is called constant")
    if np.all(floor == 0):
        return "dead: the response sits at 0, its activation's floor, everywhere on every image"
    return ("dead: the response sits at its floor everywhere on every image (per filter, the value it takes when "
            "its input is very negative, e.g. a BatchNormalization's shift after a ReLU)")


def activation_findings(channel_min: np.ndarray | None, channel_max: np.ndarray | None,
                        floor: np.ndarray | None = None,
                        broken: tuple[int, ...] = ()) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(dead, constant) filters from per-image (rows) per-channel min and max of the responses.

    Dead: at the unit's ``floor`` everywhere (never, when the unit has no floor); constant: one
    value everywhere on each image, and not dead. A ``broken`` filter (NaN/Inf in its kernel) is
    neither, whatever its response shows: some kernels turn relu(NaN) into 0, its floor."""
    if channel_max is None or channel_min is None or not len(channel_max):
        return (), ()
    finite = np.isfinite(channel_max).all(axis=0) & np.isfinite(channel_min).all(axis=0)
    finite[[f for f in broken if f < finite.size]] = False
    if floor is None:
        dead = np.zeros(channel_max.shape[1], bool)
    else:
        dead = finite & (at_floor(channel_max, floor) & at_floor(channel_min, floor)).all(axis=0)
    constant = finite & ~dead & (channel_max == channel_min).all(axis=0)
    return tuple(int(f) for f in np.flatnonzero(dead)), tuple(int(f) for f in np.flatnonzero(constant))
