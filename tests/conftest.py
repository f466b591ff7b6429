"""Shared fixtures: tiny models built in the test, the sample photograph, a site link checker."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite runs two workers on two cores, each may start PyTorch builds: OpenMP threads that spin
# while they wait would take the cores from each other's (two small builds at once: 52 s each,
# 9 s with this; one alone is 20% slower with it, so the tool itself leaves it to the user).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import html.parser
import json
import posixpath
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Each test starts with an empty mosaic cache of its own: a hit must never hide a bug."""
    directory = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(directory))
    return directory / "cnnviz_report"


@pytest.fixture(scope="session")
def keras():
    import keras as keras_module

    return keras_module


def make_tiny_model(keras):
    """8x8x3 input into two Conv2D layers with fixed weights (the CONVENTIONS test model)."""
    inputs = keras.Input((8, 8, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv_b")(x)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    model = keras.Model(inputs, outputs, name="tiny")
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def make_chain_model(keras, filters: int = 4, side: int = 16):
    """Three Conv2D layers in a row (conv_a, conv_b, conv_c): a change in conv_b reaches conv_c's
    maps although conv_c's kernels stay the same, and conv_a's stay untouched."""
    inputs = keras.Input((side, side, 3), name="pixels")
    x = inputs
    for name in ("conv_a", "conv_b", "conv_c"):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    model = keras.Model(inputs, outputs, name="chain")
    rng = np.random.default_rng(5)
    model.set_weights([rng.normal(0.05, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    return model


def make_nested_model(keras):
    """Transfer-learning shape: a Functional model around a Sequential and a Functional backbone."""
    rng = np.random.default_rng(11)
    backbone = keras.Sequential(
        [keras.Input((16, 16, 4)), keras.layers.Conv2D(6, 3, activation="relu", name="inner_conv"),
         keras.layers.DepthwiseConv2D(3, name="inner_depthwise")],
        name="backbone",
    )
    head_in = keras.Input((12, 12, 6))
    head = keras.Model(head_in, keras.layers.SeparableConv2D(5, 3, name="head_separable")(head_in), name="head_block")
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    x = head(backbone(x))
    x = keras.layers.Conv2DTranspose(3, 3, strides=2, name="up")(x)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    model = keras.Model(inputs, outputs, name="nested")
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.fixture
def tiny_model(keras):
    return make_tiny_model(keras)


@pytest.fixture
def nested_model(keras):
    return make_nested_model(keras)


@pytest.fixture
def tiny_model_file(keras, tmp_path):
    path = tmp_path / "tiny.keras"
    make_tiny_model(keras).save(path)
    return str(path)


@pytest.fixture
def nested_model_file(keras, tmp_path):
    path = tmp_path / "nested.keras"
    make_nested_model(keras).save(path)
    return str(path)


@pytest.fixture(scope="session")
def photo_path():
    from cnnviz_report.loading import demo_image_path

    return demo_image_path()


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.links.append(value)


def site_links(site: Path) -> dict[str, list[str]]:
    """Every page's href/src values, keyed by the page's site path."""
    result = {}
    for page in sorted(site.rglob("*.html")):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        result[page.relative_to(site).as_posix()] = parser.links
    return result


def site_files(site: Path) -> dict[str, bytes]:
    """Every file of a built site by its path, each manifest without its timings (what two builds
    of the same inputs may differ in)."""
    files = {}
    for path in sorted(site.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "manifest.json":
                manifest = json.loads(data)
                manifest.pop("seconds_per_phase", None)  # a gallery's own manifest has none
                data = json.dumps(manifest, sort_keys=True).encode()
            files[str(path.relative_to(site))] = data
    return files


def assert_valid_links(site: Path) -> int:
    """coverage.py's assert_valid_hrefs: every link is relative and resolves to a file."""
    checked = 0
    for page, links in site_links(site).items():
        for link in links:
            assert not link.startswith(("/", "http:", "https:", "file:")), f"{page}: non-relative link {link}"
            target = link.split("#", 1)[0]
            if not target:
                continue
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), target))
            assert not resolved.startswith(".."), f"{page}: link {link} leaves the site"
            assert (site / resolved).is_file(), f"{page}: dead link {link}"
            checked += 1
    return checked


# --------------------------------------------------------------------------- the figures line

FIGURE_GROUPS = (
    ("model files tried", "refused", "code executed"),
    ("image files tried", "handled cleanly"),
    ("crash points injected", "partial sites left", "user folders damaged"),
    ("XSS names tried", "unescaped in output"),
)
_FIGURES: dict[str, int] = {name: 0 for group in FIGURE_GROUPS for name in group}


@pytest.fixture
def figures():
    """Counters the hostile-input tests add to; printed as one line at the end of the run."""
    return _FIGURES


def pytest_terminal_summary(terminalreporter):
    if not any(_FIGURES.values()):
        return  # a run that selected none of the hostile-input tests
    line = "; ".join(" / ".join(f"{name} {_FIGURES[name]}" for name in group) for group in FIGURE_GROUPS)
    terminalreporter.write_sep("=", "hostile-input figures")
    terminalreporter.write_line(line)
