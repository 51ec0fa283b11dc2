"""The demo's report: one HTML page a person opens after ``make demo``.

It holds this run's rows as bars (segm mAP on the demo val set) with, for each row whose
config the last seed ablation (``benchmarks/results/ablation.json``) ran, that row's seeds
and mean ± spread; the table of the rows; the pseudo-label panel (teacher | SAM-refined |
ARP-mixed student) embedded as an image; the machine. Plain HTML with inline SVG: opens
offline in any browser, nothing to install.
"""
import base64
import html
import json
import os
import os.path as osp
import statistics
from typing import Dict, List, Optional, Sequence

from mmssis.evaluation.pseudo_label_quality import QUALITY_STAGES  # noqa: F401 (re-exported)

#: Bar chart geometry (SVG user units).
_W, _H, _BAR, _GAP, _LEFT, _TOP, _BOTTOM = 640, 260, 56, 36, 48, 16, 60


def machine_description() -> str:
    """CPU model, its widest vector ISA and the one torch's kernels use, cores, GPU."""
    import torch

    from mmssis.utils.machine import cpu_info
    cpu = cpu_info()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    return (f'{cpu["model"]} ({cpu["isa"]}; torch kernels: {cpu["torch_kernels"]}), '
            f'{os.cpu_count()} cores, {gpu}, torch {torch.__version__}')


def seed_spread(values: Sequence[float]) -> Dict[str, float]:
    """``mean``, ``spread`` (half the max - min range) and ``n`` of per-seed values."""
    values = [float(v) for v in values]
    spread = (max(values) - min(values)) / 2 if len(values) > 1 else 0.0
    return dict(mean=statistics.mean(values), spread=spread, n=len(values))


def ablation_by_config(ablation: Optional[dict]) -> Dict[str, Dict]:
    """``config -> {row, values, mean, spread, n}`` of an ``ablation.json``.

    Raises:
        ValueError: The file has per-row values but no ``configs`` to match rows by.
    """
    if not ablation:
        return {}
    aps, configs = ablation.get('segm_ap', {}), ablation.get('configs')
    if aps and not configs:
        raise ValueError('ablation.json has no "configs" (row -> config): rerun '
                         'benchmarks/ablation.py, which writes it')
    return {configs[row]: dict(row=row, values=list(v), **seed_spread(v))
            for row, v in aps.items() if row in configs}


def pick_ablation(results_dir: str, torch_kernels: str) -> Optional[str]:
    """The seed ablation measured on this CPU kind, else the default one.

    Kernels (and so the demo's numbers) differ between AVX-512 and AVX2 machines
    (``benchmarks/results/cpu_isa_pinning_amd.md``): a report compares a run with the
    ablation whose ``cpu.torch_kernels`` (written by ``benchmarks/ablation.py``) is the
    run's.

    Args:
        results_dir: The folder of the ``ablation*.json`` files.
        torch_kernels: This machine's ``torch.backends.cpu.get_cpu_capability()``.

    Returns:
        The path of the matching ``ablation*.json`` (``ablation.json`` first), else of
        ``ablation.json`` if it exists, else None.
    """
    default = osp.join(results_dir, 'ablation.json')
    names = sorted(n for n in os.listdir(results_dir)
                   if n.startswith('ablation') and n.endswith('.json')) \
        if osp.isdir(results_dir) else []
    paths = sorted((osp.join(results_dir, n) for n in names), key=lambda p: p != default)
    for path in paths:
        with open(path) as f:
            if json.load(f).get('cpu', {}).get('torch_kernels') == torch_kernels:
                return path
    return default if osp.isfile(default) else None


def _bars_svg(rows: List[Dict]) -> str:
    """Bars of this run with the ablation's seeds (dots) and mean ± spread (whisker)."""
    top = max([r['segm_mAP'] for r in rows] +
              [max(r['seeds']['values']) for r in rows if r['seeds']] + [1e-6])
    top = min(1.0, top * 1.15)
    plot_h = _H - _TOP - _BOTTOM
    y = lambda v: _TOP + plot_h * (1 - v / top)  # noqa: E731
    width = max(_W, _LEFT + len(rows) * (_BAR + _GAP) + _GAP)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{_H}" '
             'font-family="sans-serif" font-size="12">',
             f'<line x1="{_LEFT}" y1="{y(0):.1f}" x2="{width}" y2="{y(0):.1f}" '
             'stroke="#444"/>']
    for tick in (0.25 * top, 0.5 * top, 0.75 * top):
        parts.append(f'<text x="{_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                     f'fill="#666">{tick:.2f}</text>'
                     f'<line x1="{_LEFT}" y1="{y(tick):.1f}" x2="{width}" y2="{y(tick):.1f}" '
                     'stroke="#ddd"/>')
    for i, r in enumerate(rows):
        x = _LEFT + _GAP + i * (_BAR + _GAP)
        v = r['segm_mAP']
        parts.append(f'<rect class="run" data-row="{html.escape(r["row"])}" x="{x}" '
                     f'y="{y(v):.1f}" width="{_BAR}" height="{y(0) - y(v):.1f}" '
                     'fill="#4a7ebb"/>'
                     f'<text x="{x + _BAR / 2}" y="{y(v) + 15:.1f}" text-anchor="middle" '
                     f'fill="white">{v:.3f}</text>'
                     f'<text x="{x + _BAR / 2}" y="{y(0) + 16:.1f}" text-anchor="middle">'
                     f'{html.escape(r["row"])}</text>')
        s = r['seeds']
        if s:
            cx = x + _BAR + 7  # beside the bar, clear of its label
            lo, hi = s['mean'] - s['spread'], s['mean'] + s['spread']
            parts.append(f'<line class="spread" x1="{cx}" y1="{y(lo):.1f}" x2="{cx}" '
                         f'y2="{y(hi):.1f}" stroke="#c0392b" stroke-width="3"/>'
                         f'<line x1="{cx - 5}" y1="{y(s["mean"]):.1f}" x2="{cx + 5}" '
                         f'y2="{y(s["mean"]):.1f}" stroke="#c0392b" stroke-width="3"/>')
            parts += [f'<circle class="seed" cx="{cx + 10}" cy="{y(val):.1f}" r="2.5" '
                      'fill="#c0392b"/>' for val in s['values']]
    parts.append(f'<text x="{_LEFT}" y="{_H - 12}" fill="#444">blue: this run; red: the last '
                 'seed ablation (dots: seeds; whisker: mean ± spread)</text></svg>')
    return ''.join(parts)


def report_rows(results: Dict[str, Dict], ablation: Optional[dict] = None) -> List[Dict]:
    """This run's rows (``results.json`` order) with the ablation's seeds of their config."""
    by_config = ablation_by_config(ablation)
    sup = results.get('sup', {}).get('segm_mAP')
    rows = []
    for row, r in results.items():
        rows.append(dict(row=row, segm_mAP=float(r['segm_mAP']),
                         bbox_mAP=float(r.get('bbox_mAP', float('nan'))),
                         ratio=float(r['segm_mAP']) / sup if sup else None,
                         config=r.get('config', ''),
                         seeds=by_config.get(r.get('config', ''))))
    return rows


QUALITY_COLUMNS = (('precision', 'precision'), ('recall', 'recall'),
                   ('miou', 'mask IoU of matched'), ('best_iou', 'best IoU per GT'),
                   ('num_pred', 'pseudo-labels'), ('num_tp', 'matched'), ('num_gt', 'GT objects'))


def quality_table(metrics: Dict[str, float]) -> List[List[str]]:
    """Rows ``[stage, precision, recall, ...]`` of a pseudo-label quality result.

    Args:
        metrics: ``metrics`` of ``tools/analysis_tools/pseudo_label_quality.py --out``
            (``teacher_precision``, ``refined_miou``, ...).

    Returns:
        One row of strings per stage present in ``metrics`` (header excluded).
    """
    rows = []
    for key, name in QUALITY_STAGES:
        if f'{key}_precision' not in metrics:
            continue
        cells = [name]
        for col, _ in QUALITY_COLUMNS:
            v = float(metrics[f'{key}_{col}'])
            cells.append(f'{v:.0f}' if col.startswith('num_') else f'{v:.3f}')
        rows.append(cells)
    return rows


def write_report(path: str, results: Dict[str, Dict], ablation: Optional[dict] = None,
                 panel: Optional[str] = None, machine: str = '',
                 notes: Sequence[str] = (), quality: Optional[dict] = None) -> str:
    """Write the demo report to ``path`` (HTML); returns ``path``.

    Args:
        path: Output ``.html`` file (its folder is created).
        results: ``results.json`` of the run: ``{row: {segm_mAP, bbox_mAP, config}}``.
        ablation: ``benchmarks/results/ablation.json`` (``segm_ap`` per row over seeds,
            ``configs`` per row), or None.
        panel: PNG of the pseudo-label panel to embed, or None.
        machine: One line on the machine the run used (CPU model, kernel ISA).
        notes: Paragraphs appended below the table (plain text).
        quality: The ``--out`` json of ``pseudo_label_quality.py`` on the unlabelled images
            (``metrics``, ``args``), shown as a table per stage; or None.

    Raises:
        FileNotFoundError: ``panel`` is given and does not exist.
    """
    if panel is not None and not osp.isfile(panel):
        raise FileNotFoundError(f'demo report: the pseudo-label panel {panel} does not exist')
    rows = report_rows(results, ablation)
    esc = html.escape
    table = ['<table><tr><th>row</th><th>segm mAP</th><th>bbox mAP</th><th>segm / sup</th>'
             '<th>last ablation: mean ± spread (seeds)</th><th>config</th></tr>']
    for r in rows:
        s = r['seeds']
        abl = (f'{s["mean"]:.3f} ± {s["spread"]:.3f} ({", ".join(f"{v:.3f}" for v in s["values"])}'
               f'; row "{esc(s["row"])}")' if s else 'not in the last ablation')
        ratio = f'{r["ratio"]:.2f}' if r['ratio'] is not None else '-'
        table.append(f'<tr><td>{esc(r["row"])}</td><td>{r["segm_mAP"]:.3f}</td>'
                     f'<td>{r["bbox_mAP"]:.3f}</td><td>{ratio}</td><td>{abl}</td>'
                     f'<td><code>{esc(r["config"])}</code></td></tr>')
    table.append('</table>')
    body = ['<h1>mmssis demo</h1>', f'<p>{esc(machine)}</p>' if machine else '',
            '<h2>Rows (segm mAP, demo val set)</h2>', _bars_svg(rows), ''.join(table)]
    body += [f'<p>{esc(n)}</p>' for n in notes]
    if quality is not None:
        head = ''.join(f'<th>{esc(h)}</th>' for _, h in QUALITY_COLUMNS)
        rows_html = ''.join('<tr>' + ''.join(f'<td>{esc(c)}</td>' for c in r) + '</tr>'
                            for r in quality_table(quality['metrics']))
        args = quality.get('args', {})
        body += ['<h2>Pseudo-label quality on the unlabelled images (hidden GT)</h2>',
                 f'<table><tr><th>stage</th>{head}</tr>{rows_html}</table>',
                 f'<p>{esc(str(int(quality["metrics"].get("teacher_num_images", 0))))} '
                 f'unlabelled images scored against the ground truth the training never '
                 f'saw; score threshold {esc(str(args.get("score_thr") or "of the config"))}'
                 f', matching at mask IoU >= {esc(str(args.get("iou_thr", 0.5)))}; teacher: '
                 f'<code>{esc(str(args.get("checkpoint", "")))}</code>.'
                 + (' ARP-mixed: the last stage\'s pseudo-labels after the config\'s ARP '
                    'mixing of each batch of '
                    f'{esc(str(args.get("batch_size", 2)))} images, against the ground '
                    'truth mixed the same way (what the student is trained on).'
                    if 'mixed_precision' in quality['metrics'] else '') + '</p>']
    if panel is not None:
        with open(panel, 'rb') as f:
            data = base64.b64encode(f.read()).decode()
        body += ['<h2>Pseudo-labels: teacher | SAM-refined | ARP-mixed student</h2>',
                 f'<img alt="pseudo-label panel" src="data:image/png;base64,{data}"/>']
    page = ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>mmssis demo</title>'
            '<style>body{font-family:sans-serif;margin:2em;max-width:72em}'
            'table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;'
            'padding:4px 8px;text-align:left}img{max-width:100%}</style></head><body>'
            + '\n'.join(body) + '</body></html>\n')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(page)
    return path
