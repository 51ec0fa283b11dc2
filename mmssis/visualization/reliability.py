"""Reliability diagram and precision-vs-threshold curves of the confidence calibration."""
from typing import Optional, Sequence

import numpy as np


def render_reliability_figure(calib: dict, thresholds: np.ndarray,
                              curves: Sequence[dict], class_names: Sequence[str],
                              target_precision: float, title: str,
                              path: Optional[str] = None) -> np.ndarray:
    """Reliability diagram + precision-vs-threshold curves as an RGB image.

    Args:
        calib: Output of :func:`~mmssis.evaluation.per_class_calibration`.
        thresholds: (C,) selected thresholds.
        curves: C outputs of :func:`~mmssis.evaluation.precision_curve`.
        class_names: C names.
        target_precision: Drawn as a horizontal line.
        title: Figure title.
        path: Also save the figure as PNG here if given.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    # Figure + Agg canvas (no pyplot): no global state, works whatever MPLBACKEND says.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 4.5), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax_rel, ax_prec = fig.subplots(1, 2)
    curve = calib['curve']
    centers = (curve['edges'][:-1] + curve['edges'][1:]) / 2
    width = curve['edges'][1] - curve['edges'][0]
    ax_rel.bar(centers, np.nan_to_num(curve['accuracy']), width=width * 0.9, alpha=0.35,
               color='gray', edgecolor='black', label=f"all (ECE {calib['ece']:.3f})")
    for name, ccurve, ece in zip(class_names, calib['class_curves'], calib['class_ece']):
        if np.isfinite(ece):
            ax_rel.plot(ccurve['confidence'], ccurve['accuracy'], marker='o', ms=3,
                        label=f'{name} ({ece:.3f})')
    ax_rel.plot([0, 1], [0, 1], 'k--', lw=1)
    ax_rel.set(xlim=(0, 1), ylim=(0, 1), xlabel='confidence (score)',
               ylabel='accuracy (mask IoU match)', title='reliability')
    ax_rel.legend(fontsize=7, loc='upper left')
    for i, (name, pcurve) in enumerate(zip(class_names, curves)):
        line, = ax_prec.plot(pcurve['thresholds'], pcurve['precision'], label=name)
        ax_prec.axvline(thresholds[i], color=line.get_color(), ls=':', lw=1)
    ax_prec.axhline(target_precision, color='k', ls='--', lw=1)
    ax_prec.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='threshold t',
                ylabel='precision of score >= t', title='precision (dotted: chosen t)')
    ax_prec.legend(fontsize=7, loc='lower right')
    fig.suptitle(title)
    fig.tight_layout()
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if path is not None:
        fig.savefig(path)
    return image
