r"""The common-share sweep: pretrain DeCUR per share, score each downstream.

The DeCUR paper chooses the share of common embedding dimensions by a grid
search: pretrain once per share, evaluate each encoder pair downstream, keep
the best (87.5% for SAR-optical, 75% for RGB-DEM and RGB-depth).
:func:`sweep_common_share` runs that search with two LightningCLI configs:
the pretraining config (a :class:`~torchgeo_decur.tasks.DeCURTask`) is fitted
once per share (``--model.init_args.common_share=<share>``, ``common_dim``
cleared), and the downstream config (a task with a ``weights`` argument, e.g.
``conf/transfer/bigearthnet_s1s2_linear_1pct.yaml``) is fitted from each
pretrained checkpoint and validated (or tested). Every validation metric of
every share is written to ``<out>/sweep.csv`` and ``<out>/sweep.json``.

From the command line::

    torchgeo-decur sweep-common --pretrain conf/decur_s1s2.yaml \
        --downstream conf/transfer/bigearthnet_s1s2_linear_1pct.yaml \
        --shares 0.5 0.75 0.875 1.0 --out sweeps/s1s2 \
        --pretrain-arg=--data.init_args.root=/data/ssl4eo-s12 \
        --downstream-arg=--data.init_args.root=/data/bigearthnet

.. versionadded:: 0.1
"""

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningCLI
from torchgeo.datamodules import BaseDataModule
from torchgeo.tasks import BaseTask

__all__ = ('sweep_common_share',)


def _cli(args: Sequence[str]) -> LightningCLI:
    """Parse and instantiate a config as ``torchgeo fit`` does, without running."""
    return LightningCLI(
        model_class=BaseTask,
        datamodule_class=BaseDataModule,
        seed_everything_default=0,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={'overwrite': True},
        args=list(args),
        run=False,
    )


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """Metrics as plain floats."""
    out = {}
    for name, value in metrics.items():
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _share_name(share: float) -> str:
    return f'share_{share:g}'


def _check(
    pretrain: str | os.PathLike[str],
    downstream: str | os.PathLike[str],
    shares: Sequence[float],
    folder: Path,
    overwrite: bool,
) -> None:
    """Check the configs, the shares and that no earlier sweep is replaced.

    Raises:
        FileNotFoundError: If a config does not exist.
        FileExistsError: If *folder* holds a sweep and *overwrite* is False.
        ValueError: If *shares* is empty or holds a share outside (0, 1].
    """
    for path in (pretrain, downstream):
        if not Path(path).is_file():
            msg = f'config not found: {path}'
            raise FileNotFoundError(msg)
    if not shares or any(not 0 < s <= 1 for s in shares):
        msg = f'shares must be a non-empty list of values in (0, 1], got {shares}'
        raise ValueError(msg)
    earlier = [folder / 'sweep.csv', folder / 'sweep.json']
    earlier += [folder / _share_name(s) for s in shares]
    existing = [str(p) for p in earlier if p.exists()]
    if existing and not overwrite:
        msg = (
            f'refusing to overwrite the earlier sweep in {folder} '
            f'({", ".join(existing[:3])}); pass overwrite=True (--overwrite)'
        )
        raise FileExistsError(msg)


def _pretrain(
    config: str | os.PathLike[str], share: float, run: Path, args: Sequence[str]
) -> tuple[Path, int]:
    """Pretrain with one common share; the checkpoint and its common dimensions."""
    pre = _cli(
        [
            '--config',
            str(config),
            f'--model.init_args.common_share={share}',
            '--model.init_args.common_dim=null',
            '--trainer.default_root_dir',
            str(run / 'pretrain'),
            *args,
        ]
    )
    pre.trainer.fit(pre.model, datamodule=pre.datamodule)
    checkpoint = run / 'decur.ckpt'
    pre.trainer.save_checkpoint(checkpoint)
    return checkpoint, int(pre.model.common_dim)


def _downstream(
    config: str | os.PathLike[str],
    checkpoint: Path,
    run: Path,
    args: Sequence[str],
    test: bool,
) -> dict[str, float]:
    """Fit the downstream task from a checkpoint; its validation (test) metrics."""
    down = _cli(
        [
            '--config',
            str(config),
            '--model.init_args.weights',
            str(checkpoint),
            '--trainer.default_root_dir',
            str(run / 'downstream'),
            *args,
        ]
    )
    down.trainer.fit(down.model, datamodule=down.datamodule)
    evaluate = down.trainer.test if test else down.trainer.validate
    (scores,) = evaluate(down.model, datamodule=down.datamodule) or [{}]
    return _scalars(scores)


def _write(
    folder: Path,
    rows: list[dict[str, float]],
    metric: str | None,
    configs: dict[str, str],
) -> None:
    """Write ``sweep.csv`` (one row per share) and ``sweep.json``."""
    names = sorted({k for r in rows for k in r} - {'share', 'common_dim'})
    with (folder / 'sweep.csv').open('w', newline='') as f:
        writer = csv.DictWriter(f, ['share', 'common_dim', *names])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, math.nan) for k in writer.fieldnames})
    best = max(rows, key=lambda r: r[metric]) if metric is not None else None
    summary = {
        **configs,
        'metric': metric,
        'best_share': best['share'] if best is not None else None,
        'rows': rows,
    }
    (folder / 'sweep.json').write_text(json.dumps(summary, indent=2) + '\n')


def sweep_common_share(
    pretrain: str | os.PathLike[str],
    downstream: str | os.PathLike[str],
    shares: Sequence[float],
    out: str | os.PathLike[str],
    metric: str | None = None,
    pretrain_args: Sequence[str] = (),
    downstream_args: Sequence[str] = (),
    test: bool = False,
    overwrite: bool = False,
) -> list[dict[str, float]]:
    """Pretrain DeCUR once per common share and score each downstream.

    Args:
        pretrain: LightningCLI config of the DeCUR pretraining.
        downstream: LightningCLI config of the downstream task; its model must
            take the pretrained checkpoint as ``weights``.
        shares: Shares of common dimensions to try, each in (0, 1].
        out: Folder of the runs (``share_<s>/pretrain``, ``share_<s>/
            downstream``, ``share_<s>/decur.ckpt``) and of ``sweep.csv`` /
            ``sweep.json``.
        metric: The metric that decides the best share; every logged
            validation (or test) metric is reported anyway. None reports
            without choosing.
        pretrain_args: Further LightningCLI arguments of the pretraining
            (e.g. ``--data.init_args.root=...``).
        downstream_args: Further LightningCLI arguments of the downstream run.
        test: Test the downstream model on its test split instead of
            validating it.
        overwrite: Whether to replace the results of an earlier sweep in
            *out*.

    Returns:
        One row per share: ``{'share', 'common_dim', <metric>: value, ...}``.

    Raises:
        FileNotFoundError: If a config does not exist.
        FileExistsError: If *out* holds an earlier sweep and *overwrite* is
            False.
        ValueError: If *shares* is empty or holds a share outside (0, 1], or
            *metric* was not logged.
    """
    folder = Path(out)
    _check(pretrain, downstream, shares, folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, float]] = []
    for share in shares:
        run = folder / _share_name(share)
        checkpoint, common_dim = _pretrain(pretrain, share, run, pretrain_args)
        scores = _downstream(downstream, checkpoint, run, downstream_args, test)
        rows.append({'share': share, 'common_dim': common_dim, **scores})
        if metric is not None and metric not in rows[-1]:
            # said after the first share, not after the whole sweep
            msg = (
                f'metric {metric!r} was not logged; logged: {", ".join(sorted(scores))}'
            )
            raise ValueError(msg)
    _write(
        folder, rows, metric, {'config': str(pretrain), 'downstream': str(downstream)}
    )
    return rows
