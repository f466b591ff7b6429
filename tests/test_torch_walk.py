"""Issue 33, the walk: a PyTorch nn.Module becomes the same records as a Keras model (module
paths, output shapes, conv kinds, kernels in Keras's layout, receptive fields, unit chains)."""

from __future__ import annotations

import os

import numpy as np

import pytest

if os.environ.get("CNNVIZ_REQUIRE_BACKENDS") == "1":
    import torch  # CI installs the torch extra: its absence is a failure there
else:
    torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from cnnviz_report.analysis.torch_walk import inspect_module  # noqa: E402


class Block(nn.Module):
    """conv -> BN -> F.relu (a function in forward), a pooled conv, a branch and a residual add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.branch = nn.Conv2d(8, 8, 1)
        self.depthwise = nn.Conv2d(8, 16, 3, padding=1, groups=8)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.pool(F.relu(self.bn(self.stem(x))))
        y = self.branch(x)
        x = self.body(x) + y + torch.sigmoid(y)  # the branch conv's output has two consumers
        x = self.depthwise(x)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_a_traced_module_gives_rows_shapes_kinds_kernels_fields_and_units():
    info = inspect_module(Block(), (3, 32, 32))
    rows = {row.name: row for row in info.layers}
    assert [row.name for row in info.conv_layers] == ["stem", "branch", "body.0", "depthwise"]  # call order
    stem, branch, body, depthwise = (rows[name] for name in ("stem", "branch", "body.0", "depthwise"))
    # the unit follows the conv through its BatchNorm2d and the F.relu written in forward
    assert stem.unit_layers == ("bn", "relu") and rows["relu"].type_name == "relu (function)"
    assert body.unit_layers == ("body.1",)
    assert branch.unit_layers == ()  # two consumers: its raw output is what the next layers see
    assert stem.output_shape == (None, 8, 32, 32) and stem.data_format == "channels_first"
    assert stem.kernel_shape == (3, 3, 3, 8) and stem.filters == 8 and stem.params == 8 * 27 + 8
    assert depthwise.conv_kind == "depthwise" and depthwise.kernel_shape == (3, 3, 8, 2)
    assert stem.receptive_field == (3, 3) and stem.effective_stride == (1, 1)
    assert body.receptive_field == (8, 8) and body.effective_stride == (2, 2)  # 3, pooled to 4, then 4 + 2 x 2
    assert depthwise.receptive_field == (12, 12)
    assert rows["head"].kernel_shape == (16, 5) and rows["head"].receptive_field is None
    assert info.input_shape == (None, 3, 32, 32) and info.output_shape == (None, 5)
    assert info.total_params == sum(p.numel() for p in Block().parameters())


class DataDependent(nn.Module):
    """A forward that branches on a value: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.act(self.conv(x))
        return x * 2 if x.sum() > 0 else x


def test_pooling_written_as_a_function_moves_the_receptive_field():
    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3, dilation=2)

        def forward(self, x):
            return self.b(F.avg_pool2d(F.max_pool2d(self.a(x), 2), kernel_size=3, stride=1))

    a, b = inspect_module(Pooled(), (3, 32, 32)).conv_layers
    assert a.receptive_field == (3, 3)
    # 3, max-pooled by 2 (4, jump 2), averaged over 3 (8), a dilated 3x3 (8 + 2 x 2 x 2 = 16)
    assert b.receptive_field == (16, 16) and b.effective_stride == (2, 2)


def test_an_untraceable_module_is_walked_through_hooks_with_raw_units():
    info = inspect_module(DataDependent(), (3, 16, 16))
    assert [(row.name, row.output_shape) for row in info.layers] == [("conv", (None, 4, 14, 14)),
                                                                     ("act", (None, 4, 14, 14))]
    conv = info.layers[0]
    assert conv.conv_kind == "conv2d" and conv.unit_layers == () and conv.receptive_field is None


def test_a_shared_module_is_one_row_and_transposed_and_1d_convs_get_their_kinds():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.up = nn.ConvTranspose2d(4, 2, 2, stride=2)

        def forward(self, x):
            return self.up(self.conv(self.conv(x)))

    info = inspect_module(Shared(), (4, 8, 8))
    assert [row.name for row in info.layers] == ["conv", "up"]
    up = info.layers[1]
    assert up.conv_kind == "transpose" and up.kernel_shape == (2, 2, 2, 4) and up.output_shape == (None, 2, 16, 16)
    class Twice(nn.Module):  # the second call is followed by a ReLU, the first is not
        def __init__(self):
            super().__init__()
            self.conv, self.act = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()

        def forward(self, x):
            y = self.conv(x)
            return self.act(self.conv(y + y))

    # one row, its unit read at the first call, where the probes read the response
    assert inspect_module(Twice(), (4, 8, 8)).layers[0].unit_layers == ()
    line = inspect_module(nn.Sequential(nn.Conv1d(2, 3, 5), nn.ReLU()), (2, 20))
    assert line.layers[0].conv_kind == "conv1d" and line.layers[0].not_drawn_reason and \
        line.layers[0].unit_layers == ("1",)


# --------------------------------------------------------------------------- behind the seam

def planted(module, **weights):
    """``module`` with the named parameters and buffers set, the rest seeded (the module is built
    before this runs, so its layers are initialised again under the seed)."""
    torch.manual_seed(0)
    for layer in module.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    state = module.state_dict()
    for name, value in weights.items():
        state[name] = torch.as_tensor(value, dtype=torch.float32)
    module.load_state_dict(state)
    return module.eval()


class Units(nn.Module):
    """Planted units: conv -> BN -> F.relu; conv -> ReLU -> BN with a negative shift (its floor is
    the shift); conv -> PReLU (no floor); a linear conv feeding an add."""

    def __init__(self):
        super().__init__()
        self.a, self.a_bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
        self.b, self.b_act, self.b_bn = nn.Conv2d(4, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)
        self.c, self.c_act = nn.Conv2d(4, 4, 3), nn.PReLU(4)
        self.d = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        x = F.relu(self.a_bn(self.a(x)))
        x = self.b_bn(self.b_act(self.b(x)))
        x = self.c_act(self.c(x))
        return x + self.d(x)


def findings(walked, info, batch):
    from cnnviz_report.health import activation_findings

    maps = walked.feature_probe([info])(batch)[info.index]  # (N, H, W, C): channels last, as for Keras
    channel_min, channel_max = maps.min(axis=(1, 2)), maps.max(axis=(1, 2))
    return activation_findings(channel_min, channel_max, walked.unit_floor(info))


def test_planted_units_get_the_exact_dead_and_constant_filters_and_the_probes_agree():
    from cnnviz_report.analysis.torch_model import TorchModel

    torch.manual_seed(1)
    zero = torch.zeros(4, 3, 3, 3)
    silent = torch.zeros(4, 4, 3, 3)
    module = planted(Units(), **{
        # a: filter 0 sits below zero (dead after F.relu), filter 1 is lifted by BN's shift (constant)
        "a.weight": torch.cat([zero[:2], torch.randn(2, 3, 3, 3)]), "a.bias": [-50.0, -50.0, 0.1, 0.2],
        "a_bn.bias": [0.0, 60.0, 0.0, 0.0],
        # b: filter 2 is off: its ReLU gives 0 and the BN maps 0 to its shift -3, the unit's floor
        "b.weight": torch.cat([torch.randn(2, 4, 3, 3), silent[:1], torch.randn(1, 4, 3, 3)]),
        "b.bias": [1.0, 1.0, -50.0, 1.0], "b_bn.bias": [-3.0] * 4,
        # c: PReLU has no floor: filter 3's silent kernel is constant, never dead
        "c.weight": torch.cat([torch.randn(3, 4, 3, 3), silent[:1]]), "c.bias": [0.0, 0.0, 0.0, -5.0],
    })
    walked = TorchModel(module, (3, 16, 16))
    conv = {info.name: info for info in walked.inspect().conv_layers}
    assert conv["a"].unit_layers == ("a_bn", "relu") and conv["b"].unit_layers == ("b_act", "b_bn")
    assert conv["c"].unit_layers == ("c_act",) and conv["d"].unit_layers == ()
    batch = np.random.default_rng(0).normal(size=(2, 3, 16, 16)).astype(np.float32)
    assert findings(walked, conv["a"], batch) == ((0,), (1,))
    np.testing.assert_allclose(walked.unit_floor(conv["b"]), [-3.0] * 4)
    assert findings(walked, conv["b"], batch) == ((2,), ())
    assert walked.unit_floor(conv["c"]) is None and findings(walked, conv["c"], batch) == ((), (3,))
    assert walked.unit_floor(conv["d"]) is None
    # the peaks are the maps' maxima; the class scores are the module's own output
    maps = walked.feature_probe([conv["b"]])(batch)[conv["b"].index]
    peaks = walked.peak_probe([conv["b"]])(batch)[conv["b"].index]
    np.testing.assert_allclose(peaks.values, maps.max(axis=(1, 2)), rtol=1e-6)
    assert peaks.map_hw == maps.shape[1:3]
    with torch.no_grad():
        np.testing.assert_allclose(walked.class_scores()(batch), module(torch.as_tensor(batch)).numpy(), rtol=1e-6)


def test_a_module_has_the_seams_walk_and_runs():
    from cnnviz_report.analysis.seam import ModelRun, ModelWalk
    from cnnviz_report.analysis.torch_model import TorchModel

    def methods(protocol):
        return {name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")}

    assert methods(ModelWalk) <= set(dir(TorchModel)) and methods(ModelRun) <= set(dir(TorchModel))


def test_kernels_in_keras_layout_and_digests_that_follow_the_weights():
    from cnnviz_report.analysis.torch_model import TorchModel

    module = planted(nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.Conv2d(6, 6, 3, groups=3),
                                   nn.Conv2d(6, 12, 3, groups=6)))
    walked = TorchModel(module, (3, 16, 16))
    stem, grouped, depthwise = walked.inspect().conv_layers
    view = walked.kernel(stem)
    np.testing.assert_array_equal(view.kernel[:, :, 1, 4], module[0].weight[4, 1].detach().numpy())
    assert view.kernel.shape == (3, 3, 3, 6) and view.input_sets is None
    assert walked.kernel(grouped).input_sets.tolist() == [0, 0, 1, 1, 2, 2]
    assert depthwise.conv_kind == "depthwise" and walked.kernel(depthwise).input_sets.tolist() == [0, 0, 1, 1, 2, 2,
                                                                                                    3, 3, 4, 4, 5, 5]
    layers = walked.inspect().layers
    before = walked.weights_digests(layers)
    with torch.no_grad():
        module[1].running_mean += 1.0  # a BatchNorm statistic is a weight: its digest and every later one change
    after = walked.weights_digests(layers)
    assert before[0] == after[0] and before[1] != after[1] and before[3] != after[3]


CLIMB = r"""
import json, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from test_torch_walk import Units, planted
from cnnviz_report.analysis.ascent import AscentSettings
from cnnviz_report.analysis.keras_loading import _preprocess_for_mode
from cnnviz_report.analysis.torch_model import TorchModel

walked = TorchModel(planted(Units()), (3, 32, 32))
conv = {info.name: info for info in walked.inspect().conv_layers}
trunk = walked.ascent_trunk(list(conv.values()), (32, 32), 3, _preprocess_for_mode("unit"),
                            AscentSettings(mode="balanced", seed=0), True, list(conv.values()), {})
engine = trunk.engine(conv["b"])
short, long = engine.run([0, 1, 3], steps=1), engine.run([0, 1, 3], steps=12)
again = engine.run([0, 1, 3], steps=12)
from cnnviz_report.analysis.ascent import plan_canvas
assert engine.canvas_hw == plan_canvas(conv["b"], (32, 32), True, AscentSettings(mode="balanced"))
print(json.dumps({"short": short.activations.tolist(), "long": long.activations.tolist(),
                  "same": bool(np.array_equal(long.images, again.images)), "shape": list(long.images.shape),
                  "canvas": list(engine.canvas_hw)}))
"""


class Bottleneck(nn.Module):
    """torchvision's ResNet block: one ReLU module called after each BN and after the residual add."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv3, self.bn3 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + x)


def test_a_module_called_after_several_convs_ends_each_ones_unit_at_its_own_call():
    from cnnviz_report.analysis.torch_model import TorchModel

    block = planted(Bottleneck(), **{"bn2.bias": [-100.0, 0, 0, 0]})  # conv2's filter 0: dead after the ReLU
    walked = TorchModel(block, (4, 8, 8))
    rows = {row.name: row for row in walked.inspect().layers}
    assert [row.name for row in walked.inspect().layers].count("relu") == 1  # one row for its three calls
    assert rows["conv1"].unit_layers == ("bn1", "relu") and rows["conv2"].unit_layers == ("bn2", "relu")
    assert rows["conv3"].unit_layers == ("bn3",)  # the residual add reads a second tensor: the unit ends
    batch = np.random.default_rng(0).normal(size=(2, 4, 8, 8)).astype(np.float32)
    maps = walked.feature_probe([rows["conv2"], rows["conv3"]])(batch)
    with torch.no_grad():  # conv2's response is the second call's output, not the first's
        expected = F.relu(block.bn2(block.conv2(F.relu(block.bn1(block.conv1(torch.as_tensor(batch)))))))
    np.testing.assert_allclose(maps[rows["conv2"].index], expected.numpy().transpose(0, 2, 3, 1), atol=1e-5)
    assert (maps[rows["conv2"].index][..., 0] == 0).all() and maps[rows["conv3"].index].min() < 0


def test_a_module_climbs_on_kerass_torch_backend_with_the_keras_engine(tmp_path):
    """The engine's steps and measure run on torch tensors: responses rise with the steps, the
    same seed draws the same pictures, canvases come from the module's receptive fields."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    done = subprocess.run([sys.executable, "-c", CLIMB, str(tests)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=str(tests.parent)))
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    side = found["shape"][1]  # the picture shown: the canvas, its border (left out of the objective) cropped
    assert found["same"] and found["shape"] == [3, side, side, 3] and side <= found["canvas"][0]
    assert all(long > short for short, long in zip(found["short"], found["long"]))


def test_a_module_refuses_to_climb_on_another_backend():
    from cnnviz_report.analysis.ascent import AscentSettings
    from cnnviz_report.analysis.torch_model import TorchModel

    walked = TorchModel(planted(Units()), (3, 32, 32))
    conv = list(walked.inspect().conv_layers)
    with pytest.raises(ValueError, match="climbs on Keras's torch backend, not tensorflow"):
        walked.ascent_trunk(conv, (32, 32), 3, lambda x: x, AscentSettings(), True, conv, {})


def test_one_architecture_in_both_frameworks_gets_the_same_units_maps_verdicts_and_scores(keras):
    """conv -> BN -> ReLU -> pool -> conv -> ReLU -> global pool -> dense, written once in Keras and
    once in PyTorch with the same weights, the last ReLU a function call in both (``keras.ops.relu``,
    ``F.relu``): the same unit chains and their floors, feature maps within 1e-4,
    the same dead and constant filters, the same class scores."""
    from cnnviz_report.analysis.keras_model import KerasModel
    from cnnviz_report.analysis.torch_model import TorchModel
    from cnnviz_report.health import activation_findings

    rng = np.random.default_rng(3)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.ops.relu(keras.layers.Conv2D(4, 3, padding="same", name="conv2")(x))  # as F.relu in forward
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    keras_model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    conv1_w = rng.normal(size=(3, 3, 3, 6)).astype(np.float32)
    conv1_b = np.array([-50, 0, 0.1, 0, 0, 0], np.float32)
    conv1_w[..., 0] = 0  # filter 0: dead after the ReLU
    bn = [np.linspace(0.5, 1.5, 6), np.array([0, 0, 0, 0, 0, 30.0]), rng.normal(size=6), 1 + rng.random(6)]
    bn = [np.asarray(value, np.float32) for value in bn]
    conv1_w[..., 5] = 0  # filter 5: lifted by BN's shift, constant
    conv2_w, conv2_b = rng.normal(size=(3, 3, 6, 4)).astype(np.float32), np.zeros(4, np.float32)
    head_w, head_b = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    keras_model.get_layer("conv1").set_weights([conv1_w, conv1_b])
    keras_model.get_layer("bn1").set_weights(bn)
    keras_model.get_layer("conv2").set_weights([conv2_w, conv2_b])
    keras_model.get_layer("head").set_weights([head_w, head_b])

    class Same(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6, eps=1e-3)
            self.conv2, self.head = nn.Conv2d(6, 4, 3, padding=1), nn.Linear(4, 3)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
            return self.head(F.relu(self.conv2(x)).mean(dim=(2, 3)))

    def oihw(kernel):
        return torch.as_tensor(kernel.transpose(3, 2, 0, 1).copy())

    module = planted(Same(), **{
        "conv1.weight": oihw(conv1_w), "conv1.bias": conv1_b, "bn1.weight": bn[0], "bn1.bias": bn[1],
        "bn1.running_mean": bn[2], "bn1.running_var": bn[3], "conv2.weight": oihw(conv2_w), "conv2.bias": conv2_b,
        "head.weight": head_w.T.copy(), "head.bias": head_b})
    in_keras, in_torch = KerasModel(keras_model), TorchModel(module, (3, 16, 16))
    pixels = rng.uniform(-1, 1, size=(2, 16, 16, 3)).astype(np.float32)
    channels_first = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))
    keras_conv = {info.name: info for info in in_keras.inspect().conv_layers}
    torch_conv = {info.name: info for info in in_torch.inspect().conv_layers}
    for name in ("conv1", "conv2"):
        k_info, t_info = keras_conv[name], torch_conv[name]
        assert k_info.receptive_field == t_info.receptive_field
        assert len(k_info.unit_layers) == len(t_info.unit_layers) == (2 if name == "conv1" else 1)
        k_maps = in_keras.feature_probe([k_info])(pixels)[k_info.index]
        t_maps = in_torch.feature_probe([t_info])(channels_first)[t_info.index]
        np.testing.assert_allclose(t_maps, k_maps, atol=1e-4, rtol=1e-4)
        k_floor, t_floor = in_keras.unit_floor(k_info), in_torch.unit_floor(t_info)
        np.testing.assert_allclose(t_floor, k_floor, atol=1e-5)
        verdicts = [activation_findings(maps.min(axis=(1, 2)), maps.max(axis=(1, 2)), floor)
                    for maps, floor in ((k_maps, k_floor), (t_maps, t_floor))]
        assert verdicts[0] == verdicts[1]
    k1 = in_keras.feature_probe([keras_conv["conv1"]])(pixels)[keras_conv["conv1"].index]
    assert activation_findings(k1.min(axis=(1, 2)), k1.max(axis=(1, 2)), in_keras.unit_floor(keras_conv["conv1"])) \
        == ((0,), (5,))
    np.testing.assert_allclose(in_torch.class_scores()(channels_first), in_keras.class_scores()(pixels),
                               atol=1e-4, rtol=1e-4)


RESAMPLE = r"""
import json
import numpy as np
from keras import ops
from cnnviz_report.analysis.ascent_parts import random_affine
from cnnviz_report.analysis.framework import affine_resample

rng = np.random.default_rng(0)
x = ops.convert_to_tensor(rng.uniform(0, 255, (3, 40, 36, 3)).astype("float32"))
worst = 0.0
for _ in range(5):  # shifts up to a fifth of the side: the mirrored edges are sampled too
    matrix = random_affine((40, 36), rng, shift=0.2, scale=0.1, degrees=25)
    keras_own = ops.image.affine_transform(x, np.tile(matrix[None], (3, 1)), interpolation="bilinear",
                                           fill_mode="reflect")
    worst = max(worst, float(np.abs(ops.convert_to_numpy(keras_own) - ops.convert_to_numpy(affine_resample(x, matrix))).max()))
print(json.dumps({"worst": worst}))
"""


def test_the_ascents_resample_on_torch_is_kerass_affine_transform():
    """The torch backend's resample is grid_sample (Keras's own is six times slower there): the
    same pixels as keras.ops.image.affine_transform, mirrored edges included, to float rounding."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", RESAMPLE], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, KERAS_BACKEND="torch",
                                   PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["worst"] < 0.01  # pixels are 0..255
