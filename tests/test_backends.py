"""The report on every Keras backend: TensorFlow, JAX and PyTorch give the same verdicts.

Keras fixes its backend once per process, so each backend builds in a process of its own (the
CLI's ``--backend``), from model files this process saves. A backend whose package is not
installed is skipped, except when ``CNNVIZ_REQUIRE_BACKENDS=1`` (``.ci/run``, which installs the
``jax`` and ``torch`` extras). The comparisons are against TensorFlow's build of the same files:
verdicts exactly, top classes exactly, Grad-CAM centres and data-set examples the same, ascent
responses within 1 % (median over filters) on the demo.
"""

from __future__ import annotations

import csv
import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.backends

ROOT = Path(__file__).resolve().parent.parent
OTHER_BACKENDS = ("jax", "torch")
VERDICTS = ("nonfinite_kernel", "duplicate_of", "norm_outlier", "dead_on_images", "constant_on_images",
            "ascent_dead")


def _available(backend: str) -> bool:
    if importlib.util.find_spec(backend) is not None:
        return True
    if os.environ.get("CNNVIZ_REQUIRE_BACKENDS") == "1":
        pytest.fail(f"the {backend} backend is required here (CNNVIZ_REQUIRE_BACKENDS=1) but not installed")
    return False


def make_planted_model(keras):
    """Units every backend must judge alike: in ``plant``, filter 0 dead (a bias far below zero),
    filter 1 constant (no kernel, a positive bias), filter 3 a duplicate of filter 2; then a
    BatchNormalization with shifts of both signs and a swish (both replaced by inference
    stand-ins in the ascent's replay), a second conv and a softmax head."""
    inputs = keras.Input((24, 24, 3), name="pixels")
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="plant")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="deep")(x)
    x = keras.layers.BatchNormalization(name="deep_bn")(x)
    x = keras.layers.Activation("swish", name="deep_swish")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs, name="planted")
    rng = np.random.default_rng(11)
    model.set_weights([rng.normal(0, 0.4, w.shape).astype("float32") for w in model.get_weights()])
    kernel, bias = model.get_layer("plant").get_weights()
    bias[0] = -1000.0
    kernel[..., 1], bias[1] = 0.0, 0.5
    kernel[..., 3], bias[3] = kernel[..., 2], bias[2]
    model.get_layer("plant").set_weights([kernel, bias])
    gamma, beta, mean, variance = model.get_layer("deep_bn").get_weights()
    beta[:] = np.linspace(-1.5, 1.5, beta.size)
    model.get_layer("deep_bn").set_weights([np.abs(gamma) + 0.5, beta, mean, np.abs(variance) + 0.5])
    return model


def _build(backend: str, out: Path, *arguments: str, check_no_tensorflow: bool = False, command: str = "build") -> None:
    """``python -m cnnviz_report build ARGUMENTS --backend BACKEND`` in a process of its own."""
    command = [command, *arguments, "--out", str(out), "--backend", backend, "--no-cache", "--quiet"]
    code = (f"import sys; from cnnviz_report.cli import main; code = main({command!r}); "
            f"assert not ({check_no_tensorflow} and 'tensorflow' in sys.modules), 'tensorflow was imported'; "
            "sys.exit(code)")
    env = dict(os.environ, KERAS_BACKEND="tensorflow")  # --backend must win over the environment
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=900)
    assert result.returncode == 0, f"{backend}: {result.stderr[-3000:]}"


def _health(site: Path) -> dict:
    with open(site / "health.csv", newline="") as handle:
        return {(row["layer"], row["filter"]): row for row in csv.DictReader(handle)}


def _assert_same_verdicts(reference: dict, other: dict, backend: str) -> None:
    """Every verdict of every filter in ``reference`` (health.csv rows) is the same in ``other``."""
    for key, row in reference.items():
        for verdict in VERDICTS:
            assert other[key][verdict] == row[verdict], (backend, key, verdict)


def _explanations(site: Path) -> list:
    data = json.loads((site / "attribution.json").read_text())
    return [([top["class"] for top in image["top"]], image["gradcam"]["center"]) for image in data["images"]]


@pytest.fixture(scope="module")
def inputs(keras, photo_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("backend-inputs")
    model = make_planted_model(keras)
    model.save(folder / "planted.keras")
    kernel, bias = model.get_layer("plant").get_weights()
    kernel[..., 4] *= -3.0  # a big change
    kernel[..., 5] += 0.05  # a small one
    model.get_layer("plant").set_weights([kernel, bias])
    model.save(folder / "changed.keras")
    rng = np.random.default_rng(3)
    dataset = folder / "dataset"
    for name in ("a", "b"):
        (dataset / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(dataset / name / f"{i}.png")
    return {"planted": folder / "planted.keras", "changed": folder / "changed.keras", "dataset": dataset,
            "photo": photo_path}


@pytest.fixture(scope="module")
def sites(inputs, tmp_path_factory):
    """backend -> (planted model's site, demo's site, a diff's site), for TensorFlow and every
    other backend installed here."""
    built = {}
    for backend in ("tensorflow", *OTHER_BACKENDS):
        if backend != "tensorflow" and not _available(backend):
            continue
        root = tmp_path_factory.mktemp(f"sites-{backend}")
        _build(backend, root / "planted", str(inputs["planted"]), "--images", str(inputs["photo"]),
               "--dataset", str(inputs["dataset"]), "--dataset-top", "2", "--ascent-steps", "12",
               check_no_tensorflow=backend != "tensorflow")
        _build(backend, root / "demo", "--images", str(inputs["photo"]), "--max-filters", "32")
        _build(backend, root / "diff", str(inputs["planted"]), str(inputs["changed"]), "--images",
               str(inputs["photo"]), "--ascent-steps", "2", command="diff")
        built[backend] = (root / "planted", root / "demo", root / "diff")
    return built


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_planted_units_get_the_same_verdicts_classes_and_explanations(sites, backend):
    if backend not in sites:
        pytest.skip(f"{backend} is not installed")
    reference, other = _health(sites["tensorflow"][0]), _health(sites[backend][0])
    assert reference.keys() == other.keys()
    plant = {row["filter"]: row for (layer, _), row in reference.items() if layer == "plant"}
    assert plant["0"]["dead_on_images"] == "1" and plant["1"]["constant_on_images"] == "1"
    assert plant["3"]["duplicate_of"] == "2"  # what is planted is found, then the same on every backend
    _assert_same_verdicts(reference, other, backend)
    for (classes, centre), (other_classes, other_centre) in zip(_explanations(sites["tensorflow"][0]),
                                                                _explanations(sites[backend][0])):
        assert classes == other_classes
        assert np.allclose(centre, other_centre, atol=0.01)
    # the data-set pass: each card's examples are the same images, in the same order
    pages = sorted((sites["tensorflow"][0] / "layers").glob("*.html"))
    examples = {page.name: _dataset_examples(page.read_text()) for page in pages}
    assert sum(map(len, examples.values())) >= 2 * 14  # --dataset-top 2 on every card of both layers
    for page in pages:
        assert _dataset_examples((sites[backend][0] / "layers" / page.name).read_text()) == examples[page.name]


def _dataset_examples(page: str) -> list[tuple[str, str]]:
    """(filter, data-set image) of each example on a layer page, in the page's order."""
    return re.findall(r'alt="filter (\d+) of [^"]* on ([^":]+): its receptive field', page)


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_demo_builds_with_ascent_responses_within_one_percent(sites, backend):
    if backend not in sites:
        pytest.skip(f"{backend} is not installed")
    reference, other = _health(sites["tensorflow"][1]), _health(sites[backend][1])
    assert reference.keys() == other.keys()
    relative = [abs(float(other[key]["ascent_activation"]) - float(row["ascent_activation"]))
                / max(abs(float(row["ascent_activation"])), 1e-6) for key, row in reference.items()
                if row["ascent_activation"]]
    assert len(relative) > 100
    assert float(np.median(relative)) <= 0.01
    _assert_same_verdicts(reference, other, backend)
    assert _explanations(sites["tensorflow"][1])[0][0] == _explanations(sites[backend][1])[0][0]
    manifest = json.loads((sites[backend][1] / "manifest.json").read_text())
    assert manifest["versions"]["backend"] == backend and backend in manifest["versions"]
    assert "tensorflow" not in manifest["versions"]
    index = html.unescape((sites[backend][1] / "index.html").read_text())
    assert f"Keras's {backend} backend, on cpu" in index  # the settings say what ran the report


def _ranked(page: str) -> list[str]:
    """The filter numbers of a diff layer page's ranking of the most changed filters."""
    return re.findall(r'<tr[^>]*><td><a href="#f(\d+)">', page.split('id="most-changed"')[1].split("</table>")[0])


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_diff_ranks_the_same_changes(sites, backend):
    if backend not in sites:
        pytest.skip(f"{backend} is not installed")
    pages = sorted((sites["tensorflow"][2] / "layers").glob("*.html"))
    assert _ranked(pages[0].read_text()) == ["4", "5"]  # the planted changes, the big one first
    for page in pages:
        assert _ranked((sites[backend][2] / "layers" / page.name).read_text()) == _ranked(page.read_text()), page.name


def test_ray_workers_run_the_drivers_backend(inputs, tmp_path):
    """A Ray build on JAX is the local JAX build, byte for byte: the workers climb on JAX too
    (each task carries the driver's KERAS_BACKEND)."""
    if not _available("jax"):
        pytest.skip("jax is not installed")
    pytest.importorskip("ray")
    os.environ["SOURCE_DATE_EPOCH"] = "1767225600"
    try:
        for executor in ("local", "ray"):
            _build("jax", tmp_path / executor, str(inputs["planted"]), "--images", str(inputs["photo"]),
                   "--ascent-steps", "3", "--executor", executor)
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    local = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*") if p.is_file())
    assert local == sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*") if p.is_file())
    different = [str(p) for p in local if p.name != "manifest.json"
                 and (tmp_path / "local" / p).read_bytes() != (tmp_path / "ray" / p).read_bytes()]
    assert different == []


def _robust_arguments(inputs) -> tuple[str, ...]:
    return ("--images", str(inputs["photo"]), "--ascent", "robust", "--ascent-steps", "3", "--max-filters", "4",
            "--layers", "conv2", "conv4")


@pytest.fixture(scope="module")
def robust_reference(inputs, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("robust") / "tensorflow"
    _build("tensorflow", out, *_robust_arguments(inputs))
    return _health(out)


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_robust_recipe_climbs_on_every_backend(inputs, robust_reference, tmp_path, backend):
    """lucid's recipe (Fourier image, random pad, jitter, scale and rotation: a canvas whose shape
    changes every step, run eagerly on JAX) gives TensorFlow's verdicts."""
    if not _available(backend):
        pytest.skip(f"{backend} is not installed")
    _build(backend, tmp_path / backend, *_robust_arguments(inputs))
    reference, other = robust_reference, _health(tmp_path / backend)
    climbed = [key for key, row in reference.items() if row["ascent_activation"]]
    assert len(climbed) == 8 and all(other[key]["ascent_activation"] for key in climbed)
    _assert_same_verdicts({key: reference[key] for key in climbed}, other, backend)


@pytest.mark.parametrize("setting", ["environment", "keras.json"])
def test_a_backend_keras_cannot_start_is_one_line_naming_where_it_came_from(tmp_path, setting):
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    if setting == "environment":
        env["KERAS_BACKEND"] = "JAX"  # Keras's names are lower case (--backend takes any case)
    else:
        (tmp_path / "home").mkdir()
        (tmp_path / "home" / "keras.json").write_text(json.dumps({"backend": "nonsense"}))
        env["KERAS_HOME"] = str(tmp_path / "home")
    result = subprocess.run([sys.executable, "-m", "cnnviz_report", "build", "--out", str(tmp_path / "site")],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ("KERAS_BACKEND=JAX" if setting == "environment" else "keras.json") in lines[0]
    assert "tensorflow, jax, torch" in lines[0] and not (tmp_path / "site").exists()
