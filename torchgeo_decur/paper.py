"""The paper's numbers beside ours: finished runs of ``conf/paper/`` compared.

Every config of ``conf/paper/`` reproduces one cell of the paper's transfer
tables under the authors' protocol (Wang et al., "Decoupling Common and
Unique Representations for Multimodal Self-supervised Learning", ECCV 2024,
https://arxiv.org/abs/2309.05300) and logs with a ``CSVLogger`` to
``runs/paper/<config name>/version_<n>/metrics.csv``. :func:`paper_table`
reads any set of such runs and prints, per run, the authors' metric as they
computed it (the config's checkpoint monitor: per-batch mAP or mIoU averaged
over batches), the metric computed over the whole split, and the published
number with the difference where one is known.

The published numbers are not transcribed in the package: the paper could
not be read when this module was written, and no number is entered from
memory. :data:`PAPER_CELLS` names the table cell of each config; pass the
numbers in a YAML file (``{config name: value}``, percent) with
*paper_values*, and they are printed beside ours.

.. versionadded:: 0.2
"""

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .configs import config_folder

__all__ = ('GLOBAL_METRIC', 'PAPER_CELLS', 'RunResult', 'paper_table', 'read_run')

#: The metric of the whole split logged beside each per-batch metric.
GLOBAL_METRIC = {
    'val_BatchOverallAveragePrecision': 'val_OverallAveragePrecision',
    'val_BatchAverageAveragePrecision': 'val_AverageAveragePrecision',
    'val_BatchJaccardIndex': 'val_AverageJaccardIndex',
    # CMX (SUN RGB-D, NYU-Depth v2) scores the whole test list already
    'val_AverageJaccardIndex': 'val_AverageJaccardIndex',
}

_SCENARIO = {
    'bigearthnet': 'BigEarthNet-MM (SAR-optical) table, micro mAP',
    'geonrw': 'GeoNRW (RGB-DEM) table, mIoU',
    'sunrgbd': 'SUN RGB-D (RGB-depth) table, mIoU of CMX with MiT-B2',
    'nyudv2': 'NYU-Depth v2 (RGB-depth) table, mIoU of CMX with MiT-B2',
}
_INPUTS = {
    's1': 'S1',
    's2': 'S2',
    's1s2': 'S1+S2',
    'rgb': 'RGB',
    'dem': 'DEM',
    'rgbdem': 'RGB+DEM',
    'rgbhha': 'RGB+HHA',
}


def _cell(name: str) -> str:
    """The paper's table cell a ``conf/paper`` config reproduces, in words."""
    dataset, inputs, mode, fraction = name.split('_')
    protocol = 'linear probe' if mode == 'linear' else 'fine-tuning'
    return (
        f'{_SCENARIO[dataset]}, row DeCUR, {_INPUTS[inputs]} {protocol} '
        f'{fraction.removesuffix("pct")}% labels'
    )


def _paper_configs() -> list[str]:
    """The names of the ``conf/paper`` configs."""
    return sorted(p.stem for p in (config_folder() / 'paper').glob('*.yaml'))


#: The table cell of the paper that each ``conf/paper`` config reproduces.
PAPER_CELLS: Mapping[str, str] = {name: _cell(name) for name in _paper_configs()}


@dataclass(frozen=True)
class RunResult:
    """The authors' metric and the global one of one finished run.

    Attributes:
        name: The config the run reproduces (its logger's name).
        path: The run's ``metrics.csv``.
        metric: The authors' metric, as logged.
        last: Its value at the last validation (percent), NaN if never logged.
        best: Its best value over the run (percent).
        global_last: The whole-split metric at the last validation (percent).
        epochs: Number of validations logged.

    .. versionadded:: 0.2
    """

    name: str
    path: Path
    metric: str
    last: float
    best: float
    global_last: float
    epochs: int


def _monitor(name: str) -> str:
    """The checkpoint monitor (the authors' metric) of a ``conf/paper`` config."""
    config = yaml.safe_load((config_folder() / 'paper' / f'{name}.yaml').read_text())
    for callback in config['trainer']['callbacks']:
        monitor = callback.get('init_args', {}).get('monitor')
        if monitor:
            return str(monitor)
    msg = f'conf/paper/{name}.yaml names no checkpoint monitor'
    raise ValueError(msg)


def _column(rows: Sequence[Mapping[str, str]], key: str) -> list[float]:
    """The logged values of *key*, in order, as percent."""
    return [100 * float(row[key]) for row in rows if row.get(key)]


def read_run(metrics: str | os.PathLike[str]) -> RunResult:
    """Read one finished run of a ``conf/paper`` config.

    Args:
        metrics: Its ``metrics.csv`` (``runs/paper/<name>/version_<n>/``).

    Returns:
        The run's result.

    Raises:
        ValueError: If the run's folder names no ``conf/paper`` config.

    .. versionadded:: 0.2
    """
    path = Path(metrics)
    folder = path.parent
    name = folder.parent.name if folder.name.startswith('version_') else folder.name
    if name not in PAPER_CELLS:
        msg = (
            f'{path}: {name!r} is not a conf/paper config (runs log to '
            f'runs/paper/<config name>/version_<n>/); known: {", ".join(PAPER_CELLS)}'
        )
        raise ValueError(msg)
    with path.open(newline='') as f:
        rows = list(csv.DictReader(f))
    metric = _monitor(name)
    values = _column(rows, metric)
    last_row = [row for row in rows if row.get(metric)][-1:]
    global_key = GLOBAL_METRIC.get(metric, '')
    global_last = _column(last_row, global_key) if global_key else []
    return RunResult(
        name=name,
        path=path,
        metric=metric,
        last=values[-1] if values else math.nan,
        best=max(values) if values else math.nan,
        global_last=global_last[0] if global_last else math.nan,
        epochs=len(values),
    )


def _find_metrics(runs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Every ``metrics.csv`` under *runs* (files or folders)."""
    found: list[Path] = []
    for run in runs:
        path = Path(run)
        if not path.exists():
            msg = f'run {path} does not exist'
            raise FileNotFoundError(msg)
        found += [path] if path.is_file() else sorted(path.rglob('metrics.csv'))
    if not found:
        msg = f'no metrics.csv under {", ".join(map(str, runs))}'
        raise ValueError(msg)
    return found


def _read_values(path: str | os.PathLike[str] | None) -> dict[str, float]:
    """The published numbers a user supplies, ``{config name: percent}``."""
    if path is None:
        return {}
    values = yaml.safe_load(Path(path).read_text()) or {}
    unknown = sorted(set(values) - set(PAPER_CELLS))
    if unknown:
        msg = f'{path}: not conf/paper configs: {", ".join(unknown)}'
        raise ValueError(msg)
    return {str(k): float(v) for k, v in values.items()}


def _fmt(value: float) -> str:
    return '-' if math.isnan(value) else f'{value:.2f}'


def paper_table(
    runs: Sequence[str], paper_values: str | None = None
) -> list[dict[str, str]]:
    """Print finished ``conf/paper`` runs beside the paper's numbers.

    One Markdown row per run: the config, the paper's cell, the authors'
    metric (as logged), the published number (from *paper_values*; ``not
    transcribed`` otherwise), ours at the last validation and at its best,
    the difference of the last from the published number, and the metric
    over the whole split at the last validation.

    Args:
        runs: Run folders or ``metrics.csv`` files (folders are searched for
            ``metrics.csv``), e.g. ``runs/paper``; any subset of the configs.
        paper_values: YAML file ``{config name: published value in percent}``.

    Returns:
        The rows, as printed.

    Raises:
        FileNotFoundError: If a run does not exist.
        ValueError: If no ``metrics.csv`` is found, a run is not of a
            ``conf/paper`` config, or *paper_values* names another config.

    .. versionadded:: 0.2
    """
    published = _read_values(paper_values)
    rows = []
    for path in _find_metrics(runs):
        run = read_run(path)
        paper = published.get(run.name, math.nan)
        rows.append(
            {
                'config': run.name,
                'paper cell': PAPER_CELLS[run.name],
                'metric': run.metric,
                'paper': 'not transcribed' if math.isnan(paper) else _fmt(paper),
                'ours (last)': _fmt(run.last),
                'ours (best)': _fmt(run.best),
                'ours - paper': _fmt(run.last - paper),
                'whole split (last)': _fmt(run.global_last),
                'validations': str(run.epochs),
            }
        )
    print('| ' + ' | '.join(rows[0]) + ' |')
    print('|' + ' --- |' * len(rows[0]))
    for row in rows:
        print('| ' + ' | '.join(row.values()) + ' |')
    return rows
