"""Stages (the index's sections), --per-stage and --layers patterns: on the real architectures
(weights=None, so no download) and on small models built here."""

from __future__ import annotations

import pytest

from cnnviz_report import cli
from cnnviz_report.errors import UsageError
from cnnviz_report.analysis.keras_walk import inspect_model
from cnnviz_report.stages import choose_layers, find_stages, select_layers

SEED_RESNET = ["conv1_conv", "conv2_block3_2_conv", "conv3_block4_2_conv", "conv4_block6_2_conv", "conv5_block3_2_conv"]
SEED_VGG = ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"]


@pytest.fixture(scope="module")
def application(keras):
    made = {}

    def make(name, **kwargs):
        if name not in made:
            made[name] = inspect_model(getattr(keras.applications, name)(weights=None, **kwargs))
        return made[name]
    return make


def _names(info, layers):
    by_index = {layer.index: layer for layer in info.layers}
    return [by_index[i].name for i in layers]


def _summary(info):
    stages = find_stages(info)
    return stages.rule, [(stage.name, stage.resolution) for stage in stages.stages]


@pytest.mark.parametrize("name, seed", [("ResNet50V2", SEED_RESNET), ("VGG16", SEED_VGG)])
def test_per_stage_last_is_the_seed_posts_choice(application, name, seed):
    info = application(name)
    picked, _, unpicked = choose_layers(info, (), "last")
    assert [layer.name for layer in picked] == seed
    assert unpicked == ()


def test_resnet_stages_follow_the_names_across_a_stride(application):
    info = application("ResNet50V2")
    stages = find_stages(info)
    assert stages.rule == "the layer names (convN_)"
    assert [stage.name for stage in stages.stages] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    conv2 = stages.stages[1]
    # the stride-2 conv at the block's end is conv2's by name, though its output is at 28 px
    assert "conv2_block3_2_conv" in _names(info, conv2.layers) and conv2.resolution == "56-28 px"
    assert sum(len(stage.layers) for stage in stages.stages) == len(info.conv_layers) == 53


@pytest.mark.parametrize("name", ["MobileNetV2", "EfficientNetB0", "DenseNet121"])
def test_five_stages_at_224(application, name):
    rule, stages = _summary(application(name))
    assert [resolution for _, resolution in stages] == ["112 px", "56 px", "28 px", "14 px", "7 px"]
    # DenseNet's convN_ names stages; MobileNetV2's block_N_ and EfficientNet's blockNa number blocks
    assert rule == ("the layer names (convN_)" if name == "DenseNet121" else "output resolution")


def test_efficientnet_squeeze_excitation_convs_stay_in_their_block(application):
    info = application("EfficientNetB0")
    stages = find_stages(info)
    se = next(layer for layer in info.conv_layers if layer.name == "block4a_se_reduce")
    assert stages.stage_of(se.index).resolution == "14 px"


def test_densenet_transition_conv_stays_with_its_stage(application):
    info = application("DenseNet121")
    stages = find_stages(info)
    pool2 = next(layer for layer in info.conv_layers if layer.name == "pool2_conv")
    assert stages.stage_of(pool2.index).name == "conv2"


def test_convnext_named_stages_and_stem(application):
    info = application("ConvNeXtTiny")
    stages = find_stages(info)
    assert stages.rule == "the layer names (stage_N)"
    assert [(s.name, s.resolution) for s in stages.stages] == [
        ("stem", "56 px"), ("stage_0", "56 px"), ("stage_1", "28 px"), ("stage_2", "14 px"), ("stage_3", "7 px")]
    # the downsampling conv before a stage already works at that stage's resolution
    assert _names(info, stages.stages[2].layers)[0] == "convnext_tiny_downsampling_conv_0"


def test_inception_and_xception_fall_back_to_resolution(application):
    rule, stages = _summary(application("InceptionV3"))
    assert rule == "output resolution"
    assert [resolution for _, resolution in stages] == ["149-147 px", "73-71 px", "35 px", "17 px", "8 px"]
    # Xception's blockN numbers 14 blocks over 5 resolutions: not stages
    rule, stages = _summary(application("Xception"))
    assert rule == "output resolution"
    assert [resolution for _, resolution in stages] == ["149-147 px", "74 px", "37 px", "19 px", "10 px"]


def test_per_stage_works_among_the_layers_kept(application):
    info = application("ResNet50V2")
    picked, _, _ = choose_layers(info, ("conv4*", "conv5_block1_*"), "last")
    assert [layer.name for layer in picked] == ["conv4_block6_2_conv", "conv5_block1_2_conv"]
    # a stage whose kept layers are all 1x1 gives none, and says so
    picked, _, unpicked = choose_layers(info, ("conv3_block1_1_conv", "conv5_block3_2_conv"), "last")
    assert [layer.name for layer in picked] == ["conv5_block3_2_conv"] and unpicked == ("conv3",)


def test_layer_patterns_and_exact_names(application):
    info = application("ResNet50V2")
    chosen = [layer.name for layer in select_layers(info, ("conv*_block*_2_conv",))]
    assert len(chosen) == 16 and chosen[0] == "conv2_block1_2_conv" and chosen[-1] == "conv5_block3_2_conv"
    assert [layer.name for layer in select_layers(info, ("conv1_conv", "conv5_block3_?_conv"))] == [
        "conv1_conv", "conv5_block3_1_conv", "conv5_block3_2_conv", "conv5_block3_3_conv"]
    with pytest.raises(UsageError) as error:
        select_layers(info, ("conv9_*",))
    assert "no conv layer matches conv9_*" in str(error.value) and "closest: " in str(error.value)
    with pytest.raises(UsageError) as error:
        select_layers(info, ("conv5_block3_2_cnv",))
    assert "no conv layer named conv5_block3_2_cnv (closest: conv5_block3_2_conv" in str(error.value)


def test_patterns_match_qualified_names(keras):
    from conftest import make_nested_model

    info = inspect_model(make_nested_model(keras))
    assert [layer.qualified_name for layer in select_layers(info, ("backbone/*",))] == [
        "backbone/inner_conv", "backbone/inner_depthwise"]
    assert [layer.name for layer in select_layers(info, ("inner_*",))] == ["inner_conv", "inner_depthwise"]


def test_a_decoder_gets_a_stage_on_its_way_back_up(keras):
    layers = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(4, 3, padding="same", name="enc1")(inputs)
    x = layers.Conv2D(4, 3, strides=2, padding="same", name="down")(x)
    x = layers.Conv2D(4, 3, padding="same", name="middle")(x)
    x = layers.UpSampling2D(name="up")(x)
    x = layers.Conv2D(4, 3, padding="same", name="dec1")(x)
    info = inspect_model(keras.Model(inputs, x))
    stages = find_stages(info)
    assert stages.rule == "output resolution"
    assert [(s.name, _names(info, s.layers)) for s in stages.stages] == [
        ("32 px (1)", ["enc1"]), ("16 px", ["down", "middle"]), ("32 px (2)", ["dec1"])]


def test_cli_refuses_an_unknown_per_stage_and_reads_the_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["build", "--per-stage", "first"])
    assert exit_info.value.code == 2 and "--per-stage" in capsys.readouterr().err
    parser = cli._parser()
    args = parser.parse_args(["build", "vgg16", "--per-stage", "last", "--layers", "block*"])
    config = cli._config(args)
    assert config.per_stage == "last" and config.layers == ("block*",) and config.model == "vgg16"
    diff_a, diff_b = cli._diff_configs(parser.parse_args(["diff", "a.keras", "b.keras", "--per-stage", "last"]))
    assert diff_a.per_stage == diff_b.per_stage == "last"
    from cnnviz_report.gallery import gallery_configs

    gallery = parser.parse_args(["gallery", "vgg16", "demo", "--per-stage", "last"])
    assert [config.per_stage for config in gallery_configs(gallery.models, cli._report_settings(gallery))] == [
        "last", "last"]
