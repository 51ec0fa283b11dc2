"""mmssis.visualization.tile_rows: the pseudo-label panel grid lines up."""
import numpy as np

from mmssis.visualization.pseudo_labels import tile_rows


def _panel(h, w, value):
    return np.full((h, w, 3), value, np.uint8)


def test_smaller_views_are_scaled_to_the_cell_and_centred():
    # two images whose views were resized differently (as RandomResize does)
    rows = [[_panel(40, 40, 10), _panel(40, 40, 20)], [_panel(30, 30, 30), _panel(30, 30, 40)]]
    grid = tile_rows(rows, gap=2)
    assert grid.shape == (2 * 42 - 2, 2 * 42 - 2, 3)
    # the 30 px panels fill their 40 px cells (no white band at the right or bottom)
    second = grid[42:, :40]
    assert (second == 30).all()
    assert (grid[42:, 42:] == 40).all()
    # the gaps are the pad value
    assert (grid[40:42] == 255).all() and (grid[:, 40:42] == 255).all()


def test_other_aspect_ratio_is_letterboxed_in_the_middle():
    grid = tile_rows([[_panel(40, 40, 10)], [_panel(20, 40, 50)]], gap=0)
    cell = grid[40:]
    # 20 x 40 fits as 20 x 40 (already the cell width): centred vertically
    assert (cell[10:30] == 50).all()
    assert (cell[:10] == 255).all() and (cell[30:] == 255).all()


def test_short_rows_are_padded_with_blank_cells():
    grid = tile_rows([[_panel(8, 8, 1), _panel(8, 8, 2)], [_panel(8, 8, 3)]], gap=0)
    assert grid.shape == (16, 16, 3) and (grid[8:, 8:] == 255).all()
