"""All drawing: reliability diagrams, SAM benefit plots, pseudo-label panels."""
from .pseudo_labels import (PANEL_TITLES, draw_panel, draw_pseudo_label_grid,
                            draw_pseudo_label_rows, draw_rows_quietly, drawable_instances,
                            make_drawer, panel_kinds, preserved_rng, student_title, tile_rows)
from .reliability import render_reliability_figure, render_sam_benefit_figure

__all__ = [
    'render_reliability_figure', 'render_sam_benefit_figure', 'PANEL_TITLES', 'draw_panel',
    'draw_pseudo_label_grid', 'draw_pseudo_label_rows', 'draw_rows_quietly',
    'drawable_instances', 'make_drawer', 'panel_kinds', 'preserved_rng', 'student_title',
    'tile_rows'
]
