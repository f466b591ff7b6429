"""Issue 33: a function of the user's own code that returns a PyTorch nn.Module, built through the
CLI as a user runs it (a process of its own: a PyTorch model runs on Keras's torch backend), and
the hostile cases: a factory that raises or returns something else, weights that would run code,
weights of another shape, another backend asked for. Each gets one line and no site."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CNNVIZ_REQUIRE_BACKENDS") == "1":
    import torch  # CI installs the torch extra: its absence is a failure there
else:
    torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent

NET = '''
import torch
from torch import nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = torch.relu(self.conv2(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def make_net():
    net = Net()
    with torch.no_grad():
        net.conv2.weight[0].zero_()
        net.conv2.bias[0] = -1.0  # filter 0 of conv2 sits at its ReLU's floor: dead
    return net


def nan_net():
    net = make_net()
    with torch.no_grad():
        net.conv2.weight[1, 0, 0, 0] = float("nan")  # a broken checkpoint's filter
    return net


def raises():
    raise RuntimeError("no GPU here")


def not_a_module():
    return {"conv": 1}
'''


def cnnviz(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnviz_report", *arguments], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.fixture
def net_file(tmp_path) -> Path:
    path = tmp_path / "net.py"
    path.write_text(NET)
    return path


def test_a_users_module_builds_a_whole_report_on_the_torch_backend(net_file, tmp_path, photo_path):
    options = ["--input-size", "32", "--images", photo_path, "--max-filters", "4", "--ascent-steps", "3", "--quiet"]
    done = cnnviz("build", "net.py:make_net", "--out", "site", *options, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    site = tmp_path / "site"
    assert sorted(path.name for path in (site / "layers").glob("*.html")) == ["000-conv1.html", "003-conv2.html"]
    index = (site / "index.html").read_text()
    assert "make_net (net.py)" in index and "Keras&#39;s torch backend, on cpu" in index
    for picture in ("layers/000-conv1/mosaic.png", "layers/003-conv2/mosaic.png",
                    "layers/000-conv1/fmaps-01-grace_hopper.png"):
        assert (site / picture).stat().st_size > 500, picture
    rows = list(csv.DictReader((site / "health.csv").open()))
    dead = {(row["layer"], row["filter"]) for row in rows if row["dead_on_images"] == "1"}
    assert dead == {("conv2", "0")}
    attribution = json.loads((site / "attribution.json").read_text())
    assert len(attribution["images"][0]["top"]) == 4  # the module's 4 outputs, ranked
    manifest = json.loads((site / "manifest.json").read_text())
    assert manifest["versions"]["backend"] == "torch"

    again = cnnviz("build", "net.py:make_net", "--out", "site", *options, "--no-stream", cwd=tmp_path)
    assert again.returncode == 0 and not again.stderr.strip()
    net_file.write_text(NET.replace("return self.head(", "return 2 * self.head("))  # an edited forward()
    edited = cnnviz("build", "net.py:make_net", "--out", "edited", *options[:-1], cwd=tmp_path)
    assert "mosaic cache: 0 reused, 2 computed" in edited.stdout, edited.stdout[-500:]


def test_a_modules_nan_kernel_is_flagged_and_its_cards_show_data_set_examples(net_file, tmp_path):
    """The health and data-set phases read a PyTorch module as they read a Keras model: a NaN in
    a kernel is flagged (as for Keras models), each card gets its top data-set images and class."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for number in range(8):
        label = ("stripes", "noise")[number % 2]
        (tmp_path / "data" / label).mkdir(parents=True, exist_ok=True)
        picture = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        if label == "stripes":
            picture[:, ::4] = 255
        Image.fromarray(picture).save(tmp_path / "data" / label / f"{number}.png")
    done = cnnviz("build", "net.py:nan_net", "--out", "site", "--input-size", "32", "--dataset", "data",
                  "--max-filters", "4", "--ascent-steps", "2", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    site = tmp_path / "site"
    rows = {(row["layer"], row["filter"]): row for row in csv.DictReader((site / "health.csv").open())}
    assert rows[("conv2", "1")]["nonfinite_kernel"] == "1"
    assert [key for key, row in rows.items() if row["nonfinite_kernel"] == "1"] == [("conv2", "1")]
    assert rows[("conv1", "0")]["dataset_class"] in ("stripes", "noise") and rows[("conv1", "0")]["dataset_top_image"]
    assert (site / "layers" / "000-conv1" / "f000-examples.jpg").stat().st_size > 500


@pytest.mark.parametrize("model, weights, expected", [
    ("net.py:raises", None, "raises() raised RuntimeError: no GPU here"),
    ("net.py:not_a_module", None, "not_a_module() returned a dict, not a torch.nn.Module"),
    ("net.py:missing", None, "net.py has no function missing"),
    ("other.py:make_net", None, "no such file: other.py"),
    ("net.py:make_net", "pickle", "not a plain state dict"),
    ("net.py:make_net", "shapes", "does not fit net.py:make_net"),
    ("net.py:make_net", "program.pt2", "runs code to load"),
])
def test_hostile_factories_and_weights_get_one_line_and_no_site(net_file, tmp_path, model, weights, expected):
    arguments = ["build", model, "--out", "site", "--input-size", "32", "--ascent-steps", "1"]
    if weights == "pickle":  # a pickle that would run code when loaded
        path = tmp_path / "evil.pth"
        torch.save({"conv1.weight": torch.zeros(1), "payload": Path(".")}, path)
        arguments += ["--weights", str(path)]
    elif weights == "shapes":
        path = tmp_path / "small.pth"
        torch.save({"conv1.weight": torch.zeros(2, 3, 3, 3)}, path)
        arguments += ["--weights", str(path)]
    elif weights:
        (tmp_path / weights).write_bytes(b"PK\x03\x04")
        arguments += ["--weights", weights]
    done = cnnviz(*arguments, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and expected in lines[0], done.stderr[-2000:]
    assert not (tmp_path / "site").exists()


def test_a_pytorch_model_refuses_another_backend(net_file, tmp_path):
    done = cnnviz("build", "net.py:make_net", "--backend", "jax", "--out", "site", cwd=tmp_path)
    assert done.returncode == 2 and not (tmp_path / "site").exists()
    assert done.stderr.strip() == ("cnnviz_report: error: net.py:make_net is a PyTorch model: it runs on the torch "
                                   "backend, not --backend jax")


def test_a_diff_of_two_state_dicts_of_one_module(net_file, tmp_path, photo_path):
    """diff A B with a PyTorch A and a state dict B: B is A's architecture with B's weights."""
    sys.path.insert(0, str(tmp_path))
    try:
        import net as user_net
    finally:
        sys.path.remove(str(tmp_path))
    torch.manual_seed(0)
    before = user_net.make_net()
    torch.save(before.state_dict(), tmp_path / "before.pth")
    with torch.no_grad():
        before.conv2.weight[1].mul_(-1.0)  # one filter of conv2 turned around
    torch.save(before.state_dict(), tmp_path / "after.pth")
    done = cnnviz("diff", "net.py:make_net", "after.pth", "--weights-a", "before.pth", "--images", photo_path,
                  "--out", "review", "--max-filters", "4", "--ascent-steps", "1", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = (tmp_path / "review" / "summary.md").read_text()
    assert "conv2" in summary and (tmp_path / "review" / "a" / "index.html").is_file()
    assert (tmp_path / "review" / "b" / "index.html").is_file()


def test_a_gallery_mixes_a_keras_model_and_a_pytorch_module_on_the_torch_backend(net_file, tmp_path):
    done = cnnviz("gallery", "demo", "net.py:make_net", "--out", "gallery", "--max-filters", "2",
                  "--ascent-steps", "1", "--input-size", "32", "--no-explain", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    sites = sorted(path.parent.name for path in (tmp_path / "gallery").glob("*/index.html"))
    assert len(sites) == 2, sites
    for site in sites:
        manifest = json.loads((tmp_path / "gallery" / site / "manifest.json").read_text())
        assert manifest["versions"]["backend"] == "torch", site
    index = (tmp_path / "gallery" / "index.html").read_text()
    assert "make_net (net.py)" in index and "cnnviz demo CNN" in index
