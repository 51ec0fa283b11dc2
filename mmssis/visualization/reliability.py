"""The calibration hooks' figures: reliability diagram and precision-vs-threshold curves of
the confidence calibration; SAM's benefit per class."""
from typing import Optional, Sequence

import numpy as np


def _two_panel_figure():
    """A 10 x 4.5 in figure with two side-by-side axes on an Agg canvas (no pyplot: no
    global state, works whatever MPLBACKEND says)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 4.5), dpi=80)
    return fig, FigureCanvasAgg(fig), fig.subplots(1, 2)


def _finish(fig, canvas, title: str, path: Optional[str]) -> np.ndarray:
    """Title, layout, draw; save to ``path`` if given; the (H, W, 3) uint8 RGB image."""
    fig.suptitle(title)
    fig.tight_layout()
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if path is not None:
        fig.savefig(path)
    return image


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
    fig, canvas, (ax_rel, ax_prec) = _two_panel_figure()
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
    return _finish(fig, canvas, title, path)


def render_sam_benefit_figure(table: dict, decisions: Sequence[Optional[bool]],
                              class_names: Sequence[str], title: str, z: float = 1.64,
                              path: Optional[str] = None) -> np.ndarray:
    """Per-class teacher vs SAM-refined mask IoU and SAM's gain, as an RGB image.

    Left: mean mask IoU with GT of the teacher's and of SAM's masks per class (number of
    pairs on the bars). Right: the mean gain with ``z`` standard errors, green where SAM
    refines the class, red where it does not, grey where undecided (too few pairs).

    Args:
        table: :meth:`mmssis.evaluation.SamBenefit.compute` output.
        decisions: Per class ``True`` / ``False`` / ``None``
            (:func:`mmssis.evaluation.sam_helps`).
        class_names: C names.
        title: Figure title.
        z: Width of the error bars in standard errors.
        path: Also save the figure as PNG here if given.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    fig, canvas, (ax_iou, ax_gain) = _two_panel_figure()
    x = np.arange(len(class_names))
    teacher = np.nan_to_num(table['teacher_iou'])
    refined = np.nan_to_num(table['refined_iou'])
    ax_iou.bar(x - 0.2, teacher, 0.4, label='teacher', color='tab:blue')
    ax_iou.bar(x + 0.2, refined, 0.4, label='SAM', color='tab:orange')
    for i, n in enumerate(table['num']):
        ax_iou.text(i, max(teacher[i], refined[i]) + 0.02, f'n={int(n)}', ha='center',
                    fontsize=7)
    ax_iou.set(xticks=x, ylim=(0, 1.1), ylabel='mean mask IoU with GT (matched)',
               title='pseudo-mask quality')
    ax_iou.set_xticklabels(class_names, rotation=30, fontsize=8)
    ax_iou.legend(fontsize=7, loc='lower right')
    colours = {True: 'tab:green', False: 'tab:red', None: 'tab:gray'}
    gain = np.nan_to_num(table['gain'])
    err = np.nan_to_num(z * table['gain_se'], posinf=0.0)
    ax_gain.bar(x, gain, 0.6, yerr=err, capsize=3, color=[colours[d] for d in decisions])
    ax_gain.axhline(0, color='k', lw=1)
    ax_gain.set(xticks=x, ylabel=f'SAM - teacher IoU (bars: {z:g} s.e.)',
                title='gain (green: refined, red: not, grey: too few)')
    ax_gain.set_xticklabels(class_names, rotation=30, fontsize=8)
    return _finish(fig, canvas, title, path)
