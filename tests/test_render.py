"""Exact numpy checks of normalisation, standardisation, tiling and the pictures' layouts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnviz_report import render


def test_unit_range_is_min_max_and_marks_constant_input():
    scaled, constant = render.unit_range(np.array([[-2.0, 0.0], [2.0, 6.0]]))
    np.testing.assert_allclose(scaled, [[0.0, 0.25], [0.5, 1.0]])
    assert not constant
    scaled, constant = render.unit_range(np.full((3, 3), 4.2))
    assert constant and np.all(scaled == 0)
    scaled, constant = render.unit_range(np.array([np.nan, 1.0, 3.0, np.inf]))
    np.testing.assert_allclose(scaled, [0.0, 0.0, 1.0, 0.0])  # non-finite values draw as the minimum


def test_standardise_follows_the_seed_formula_exactly():
    channel = np.array([[1.0, 2.0], [3.0, 10.0]])
    expected = np.clip((channel - channel.mean()) / channel.std() * 64 + 128, 0, 255).astype(np.uint8)
    result, constant = render.standardise(channel)
    assert not constant
    np.testing.assert_array_equal(result, expected)
    assert result.dtype == np.uint8


@pytest.mark.parametrize("value", [0.0, 7.5, -3.0])
def test_standardise_draws_a_constant_channel_flat_grey(value):
    result, constant = render.standardise(np.full((4, 5), value))
    assert constant
    assert result.shape == (4, 5) and np.all(result == render.CONSTANT_GREY)


def test_all_channels_at_once_are_standardised_as_each_alone():
    rng = np.random.default_rng(8)
    rows = rng.normal(size=(6, 49)) * rng.uniform(0.1, 50.0, (6, 1))
    rows[1] = 3.25  # constant
    rows[2, 5] = np.nan  # standardised over its finite values
    rows[3] = np.inf  # nothing finite: constant
    rows[4, :3] = -np.inf
    tiles, constant = render.standardise_channels(rows)
    assert list(constant) == [False, True, False, True, False, False]
    for row, tile, flat in zip(rows, tiles, constant):
        values = np.where(np.isfinite(row), row, row[np.isfinite(row)].mean() if np.isfinite(row).any() else 0.0)
        expected = np.full(row.shape, render.CONSTANT_GREY, np.uint8) if flat else \
            np.clip((values - values.mean()) / values.std() * 64 + 128, 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(tile, expected)


def test_tile_grid_places_tiles_row_by_row_with_gaps():
    tiles = [np.full((2, 3), v, np.uint8) for v in (10, 20, 30)]
    grid = render.tile_grid(tiles, columns=2, gap=1, background=255)
    expected = np.array([
        [10, 10, 10, 255, 20, 20, 20],
        [10, 10, 10, 255, 20, 20, 20],
        [255] * 7,
        [30, 30, 30, 255, 255, 255, 255],
        [30, 30, 30, 255, 255, 255, 255],
    ], np.uint8)
    np.testing.assert_array_equal(grid, expected)


def test_scale_tile_enlarges_by_nearest_neighbour_and_shrinks_by_whole_factors():
    tile = np.array([[0, 255], [255, 0]], np.uint8)
    big = render.scale_tile(tile, 8)
    assert big.shape == (8, 8)
    np.testing.assert_array_equal(big[:4, :4], 0)
    np.testing.assert_array_equal(big[:4, 4:], 255)
    small = render.scale_tile(np.zeros((224, 224), np.uint8), 112)
    assert small.shape == (112, 112)


def test_filter_grid_draws_signed_weights_on_one_scale_centred_on_zero():
    kernel = np.zeros((3, 3, 2, 4), np.float32)
    kernel[0, 0, 0, 0] = -1.0  # the most negative weight -> the diverging map's blue end
    kernel[2, 2, 1, 3] = 1.0  # the most positive -> its red end
    grid = render.filter_grid(kernel, max_filters=64)
    assert (grid.filters_shown, grid.channels_shown) == (4, 2)
    assert (grid.scale.colormap, grid.scale.low, grid.scale.high) == (render.DIVERGING, -1.0, 1.0)
    lut = render._colormap_lut(render.DIVERGING)
    factor = render.KERNEL_CELL // 3
    cell = 3 * factor
    first, last = grid.tiles[0], grid.tiles[3]
    assert [t.number for t in grid.tiles] == [0, 1, 2, 3] and first.width == 2 * cell + render.GAP
    # two channels a filter: the four filters share one row (a filter per row would be a tall strip)
    assert len({t.y for t in grid.tiles}) == 1 and grid.image.shape[0] == cell
    image = grid.image
    # filter 0, channel 0: top-left kernel pixel is the most negative weight, drawn factor x factor
    assert (image[first.y:first.y + factor, first.x:first.x + factor] == lut[0]).all()
    # a zero weight is the map's middle (white), whatever the layer's range
    assert (image[first.y + factor, first.x + factor] == lut[128]).all()
    # filter 3, channel 1: bottom-right pixel is the most positive weight
    right = last.x + cell + render.GAP
    assert (image[last.y + 2 * factor:last.y + cell, right + 2 * factor:right + cell] == lut[255]).all()


def test_filters_with_many_channels_get_a_row_each_with_tiles_for_the_links():
    grid = render.filter_grid(np.random.default_rng(0).normal(size=(3, 3, 20, 5)))
    assert [t.y for t in grid.tiles] == [i * (24 + render.GAP) for i in range(5)]
    assert all(t.x == 0 and t.width == grid.image.shape[1] for t in grid.tiles)


def test_a_few_huge_weights_do_not_wash_the_kernels_out():
    kernel = np.random.default_rng(3).normal(0.0, 0.1, size=(3, 3, 8, 16))
    kernel[0, 0, 0, 0] = 50.0
    grid = render.filter_grid(kernel)
    assert 0.2 < grid.scale.high < 1.0 and grid.scale.low == -grid.scale.high  # the 99th percentile, not 50


def test_feature_maps_share_one_scale_so_a_weak_channel_looks_weak():
    fmap = np.zeros((10, 10, 2))
    fmap[:, :5, 0], fmap[:, :5, 1] = 10.0, 0.1  # the same pattern, a hundred times weaker in channel 1
    grid = render.feature_grid(fmap)
    assert (grid.scale.low, grid.scale.high) == (0.0, 10.0) and grid.scale.shared
    tile = render.FEATURE_TILE // 10 * 10
    lut = render._colormap_lut(render.SEQUENTIAL)
    strong, weak = grid.image[-3, 2], grid.image[-3, tile + 3 + 2]  # the left (active) half of each tile
    assert (strong == lut[255]).all() and (weak == lut[3]).all()  # 0.1 of 10: near the dark end
    picture, scale = render.mean_map(fmap)
    assert (scale.low, scale.high) == (0.0, 5.05) and picture.ndim == 3


def test_two_checkpoints_feature_maps_share_one_scale_so_a_change_shows():
    before = np.zeros((10, 10, 2))
    before[:, :5, 0] = 4.0
    after = before.copy()
    after[:, :5, 0] = 8.0  # B responds twice as strongly: on their own scales both grids would look alike
    grid_a, grid_b = render.feature_grid(before, scale_with=after), render.feature_grid(after, scale_with=before)
    assert (grid_a.scale.low, grid_a.scale.high) == (grid_b.scale.low, grid_b.scale.high) == (0.0, 8.0)
    lut = render._colormap_lut(render.SEQUENTIAL)
    assert (grid_b.image[-3, 2] == lut[255]).all() and (grid_a.image[-3, 2] == lut[128]).all()
    alone = render.feature_grid(before)
    assert alone.scale.high == 4.0 and (alone.image[-3, 2] == lut[255]).all()


def test_kernel_card_cells_follow_the_requested_size():
    kernel = np.ones((3, 3, 64))
    assert render.kernel_card(kernel, kernel).shape[:2] == (4 * 31 - 1, 16 * 31 - 1)  # 30-pixel cells, 16 a row
    assert render.kernel_card(kernel, kernel, columns=8, cell=12).shape[:2] == (8 * 13 - 1, 8 * 13 - 1)


def test_filter_grid_caps_filters_and_channels():
    grid = render.filter_grid(np.random.default_rng(0).normal(size=(3, 3, 100, 300)), max_filters=64)
    assert (grid.filters_shown, grid.filters_total, grid.channels_shown, grid.channels_total) == (64, 300, 32, 100)


def test_rgb_filter_tiles_only_for_three_input_channels():
    assert render.filter_rgb_grid(np.zeros((3, 3, 4, 8))) is None
    rgb = render.filter_rgb_grid(np.random.default_rng(1).normal(size=(3, 3, 3, 16)))
    assert rgb.ndim == 3 and rgb.shape[2] == 3


def test_feature_grid_is_8x8_and_marks_constant_channels():
    fmap = np.random.default_rng(2).normal(size=(14, 14, 70))
    fmap[:, :, 5] = 3.0
    grid = render.feature_grid(fmap)
    assert grid.channels_shown == 64
    assert grid.constant_channels == (5,)
    tile = 14 * (render.FEATURE_TILE // 14)  # numbered by the page, as text over the tiles
    assert grid.image.shape[0] == 8 * tile + 7 * 3
    assert [t.number for t in grid.tiles] == list(range(64)) and grid.tiles[9].x == tile + 3
    assert grid.image.shape[1] == 8 * 14 * (render.FEATURE_TILE // 14) + 7 * 3


def test_belt_is_a_strip_up_to_16_channels_and_rows_of_16_beyond():
    rng = np.random.default_rng(3)
    strip = render.belt(rng.normal(size=(50, 50, 8)))
    assert strip.image.shape == (50, 8 * 50 + 7)
    fmap = rng.normal(size=(50, 50, 40))
    fmap[:, :, [0, 17]] = 0.0
    rows = render.belt(fmap)
    assert rows.image.shape == (3 * 50 + 2, 16 * 50 + 15)
    assert (rows.channels, rows.constant_channels) == (40, 2)
    np.testing.assert_array_equal(rows.image[:50, :50], render.CONSTANT_GREY)
    # channel 1 is standardised exactly as the seed says
    expected, _ = render.standardise(fmap[:, :, 1])
    np.testing.assert_array_equal(rows.image[:50, 51:101], expected)


def test_mosaic_stitches_with_margins_and_captions():
    images = np.zeros((10, 16, 16, 3), np.uint8)
    picture = render.mosaic(images, [str(i) for i in range(10)], columns=8, margin=5, target=32)
    tile_h, tile_w = 32 + render.LABEL_HEIGHT, 32
    assert picture.shape == (2 * tile_h + 5, 8 * tile_w + 7 * 5, 3)


def test_save_png_round_trips(tmp_path):
    image = (np.arange(12 * 10 * 3) % 256).astype(np.uint8).reshape(12, 10, 3)
    asset = render.save_png(image, str(tmp_path), "layers/001-x/filters.png", "alt text")
    assert (asset.path, asset.width, asset.height) == ("layers/001-x/filters.png", 10, 12)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "layers/001-x/filters.png")), image)
