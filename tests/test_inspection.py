"""The walk over real architectures (weights=None) and nested models; receptive fields."""

from __future__ import annotations

import pytest

from cnnviz_report.analysis.keras_graph import resolve_layer
from cnnviz_report.analysis.keras_walk import inspect_model

# Seed 000: `for layer in model.layers: print(layer.name, filters.shape)` and the output shapes.
VGG16_CONV = [
    ("block1_conv1", (3, 3, 3, 64), (None, 224, 224, 64)),
    ("block1_conv2", (3, 3, 64, 64), (None, 224, 224, 64)),
    ("block2_conv1", (3, 3, 64, 128), (None, 112, 112, 128)),
    ("block2_conv2", (3, 3, 128, 128), (None, 112, 112, 128)),
    ("block3_conv1", (3, 3, 128, 256), (None, 56, 56, 256)),
    ("block3_conv2", (3, 3, 256, 256), (None, 56, 56, 256)),
    ("block3_conv3", (3, 3, 256, 256), (None, 56, 56, 256)),
    ("block4_conv1", (3, 3, 256, 512), (None, 28, 28, 512)),
    ("block4_conv2", (3, 3, 512, 512), (None, 28, 28, 512)),
    ("block4_conv3", (3, 3, 512, 512), (None, 28, 28, 512)),
    ("block5_conv1", (3, 3, 512, 512), (None, 14, 14, 512)),
    ("block5_conv2", (3, 3, 512, 512), (None, 14, 14, 512)),
    ("block5_conv3", (3, 3, 512, 512), (None, 14, 14, 512)),
]
# Seed 000's indices of the conv layers in model.layers.
VGG16_INDICES = [1, 2, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17]

# Seed 001's list of ResNet50V2 kernels (first 24 conv layers).
RESNET50V2_KERNELS = [
    ("conv1_conv", (7, 7, 3, 64)),
    ("conv2_block1_1_conv", (1, 1, 64, 64)),
    ("conv2_block1_2_conv", (3, 3, 64, 64)),
    ("conv2_block1_0_conv", (1, 1, 64, 256)),
    ("conv2_block1_3_conv", (1, 1, 64, 256)),
    ("conv2_block2_1_conv", (1, 1, 256, 64)),
    ("conv2_block2_2_conv", (3, 3, 64, 64)),
    ("conv2_block2_3_conv", (1, 1, 64, 256)),
    ("conv2_block3_1_conv", (1, 1, 256, 64)),
    ("conv2_block3_2_conv", (3, 3, 64, 64)),
    ("conv2_block3_3_conv", (1, 1, 64, 256)),
    ("conv3_block1_1_conv", (1, 1, 256, 128)),
    ("conv3_block1_2_conv", (3, 3, 128, 128)),
    ("conv3_block1_0_conv", (1, 1, 256, 512)),
    ("conv3_block1_3_conv", (1, 1, 128, 512)),
    ("conv3_block2_1_conv", (1, 1, 512, 128)),
    ("conv3_block2_2_conv", (3, 3, 128, 128)),
    ("conv3_block2_3_conv", (1, 1, 128, 512)),
    ("conv3_block3_1_conv", (1, 1, 512, 128)),
    ("conv3_block3_2_conv", (3, 3, 128, 128)),
    ("conv3_block3_3_conv", (1, 1, 128, 512)),
    ("conv3_block4_1_conv", (1, 1, 512, 128)),
    ("conv3_block4_2_conv", (3, 3, 128, 128)),
    ("conv3_block4_3_conv", (1, 1, 128, 512)),
]
# Seed 001's "index name output shape" for some of the 3x3/7x7 conv layers.
RESNET50V2_OUTPUTS = {
    "conv1_conv": (2, (None, 112, 112, 64)),
    "conv2_block1_2_conv": (11, (None, 56, 56, 64)),
    "conv2_block3_2_conv": (34, (None, 28, 28, 64)),
    "conv3_block4_2_conv": (80, (None, 14, 14, 128)),
    "conv4_block6_2_conv": (148, (None, 7, 7, 256)),
    "conv5_block3_2_conv": (183, (None, 7, 7, 512)),
}


@pytest.fixture(scope="module")
def vgg16(keras):
    return keras.applications.VGG16(weights=None)


def test_vgg16_walk_finds_the_13_conv_layers_of_the_seed(vgg16):
    info = inspect_model(vgg16)
    conv = info.conv_layers
    assert [(c.name, c.kernel_shape, c.output_shape) for c in conv] == VGG16_CONV
    assert [c.index for c in conv] == VGG16_INDICES
    assert all(c.takes_images and c.filters == c.kernel_shape[-1] for c in conv)


def test_vgg16_layer_table_matches_model_summary(vgg16):
    info = inspect_model(vgg16)
    assert len(info.layers) == len(vgg16.layers) == 23
    assert info.total_params == 138_357_544 == info.trainable_params
    assert info.non_trainable_params == 0
    by_name = {layer.name: layer for layer in info.layers}
    assert by_name["block1_conv2"].params == 36_928
    assert by_name["fc1"].params == 102_764_544
    assert by_name["fc1"].kernel_shape == (25088, 4096)
    assert by_name["block5_pool"].output_shape == (None, 7, 7, 512)
    assert by_name["predictions"].output_shape == (None, 1000)


def test_vgg16_receptive_fields_and_strides(vgg16):
    conv = {c.name: c for c in inspect_model(vgg16).conv_layers}
    expected = {"block1_conv1": 3, "block1_conv2": 5, "block2_conv1": 10, "block3_conv1": 24, "block5_conv3": 196}
    for name, rf in expected.items():
        assert conv[name].receptive_field == (rf, rf), name
    assert conv["block1_conv1"].effective_stride == (1, 1)
    assert conv["block5_conv3"].effective_stride == (16, 16)


def test_resnet50v2_walk_matches_the_seed(keras):
    model = keras.applications.ResNet50V2(weights=None)
    info = inspect_model(model)
    conv = info.conv_layers
    assert len(conv) == 53
    assert [(c.name, c.kernel_shape) for c in conv[: len(RESNET50V2_KERNELS)]] == RESNET50V2_KERNELS
    by_name = {c.name: c for c in conv}
    for name, (index, shape) in RESNET50V2_OUTPUTS.items():
        assert (by_name[name].index, by_name[name].output_shape) == (index, shape), name
    # Merges (the residual adds) take the widest branch: the known 483 px at the last layer.
    assert by_name["conv1_conv"].receptive_field == (7, 7)
    assert by_name["conv5_block3_3_conv"].receptive_field == (483, 483)
    assert info.total_params == model.count_params()


def test_nested_models_are_walked_in_place(nested_model):
    info = inspect_model(nested_model)
    conv = {c.qualified_name: c for c in info.conv_layers}
    assert list(conv) == [
        "stem", "backbone/inner_conv", "backbone/inner_depthwise", "head_block/head_separable", "up",
    ]
    inner = conv["backbone/inner_conv"]
    assert (inner.path, inner.depth, inner.kernel_shape, inner.output_shape) == (
        ("backbone",), 1, (3, 3, 4, 6), (None, 14, 14, 6))
    assert conv["backbone/inner_depthwise"].conv_kind == "depthwise"
    separable = conv["head_block/head_separable"]
    assert (separable.conv_kind, separable.kernel_shape, separable.pointwise_shape) == (
        "separable", (3, 3, 6, 1), (1, 1, 6, 5))
    assert conv["up"].conv_kind == "transpose" and conv["up"].output_shape == (None, 21, 21, 3)
    # Receptive fields run through the sub-models: 3 (stem) +2 +2 (backbone) +2 (head).
    assert conv["head_block/head_separable"].receptive_field == (9, 9)
    rows = [layer.qualified_name for layer in info.layers]
    assert rows.index("backbone") + 1 == rows.index("backbone/inner_conv")
    assert resolve_layer(nested_model, inner).name == "inner_conv"


def test_conv1d_and_conv3d_are_listed_with_a_reason(keras):
    seq = keras.Sequential([keras.Input((20, 3)), keras.layers.Conv1D(4, 5, name="c1d")])
    vol = keras.Sequential([keras.Input((6, 6, 6, 2)), keras.layers.Conv3D(3, 3, name="c3d")])
    for model, kind in ((seq, "conv1d"), (vol, "conv3d")):
        (conv,) = inspect_model(model).conv_layers
        assert conv.conv_kind == kind
        assert not conv.takes_images
        assert "only its kernels are drawn" in conv.not_drawn_reason
