"""The demo: what DeCUR learns that cross-modal Barlow Twins does not.

``torchgeo-decur demo`` (``make demo``) runs, on a CPU in about five minutes:

1. :func:`~torchgeo_decur.lab.world.make_ssl4eo_s12_demo` writes
   SSL4EO-S12-format Sentinel-1 / Sentinel-2 data with three known factors per
   location (once; a later run reuses it): land cover, which both sensors
   see, surface roughness, which only the SAR sees, and the soil's mineral,
   which only the optical sensor sees (see
   :mod:`torchgeo_decur.lab.world`).
2. :class:`DemoSeasons` reads every season of every location once, with the
   reader of :class:`~torchgeo_decur.datasets.SSL4EOS12Pair`.
3. DeCUR (:class:`~torchgeo_decur.tasks.DeCURTask`) and cross-modal Barlow
   Twins (:class:`~torchgeo_decur.tasks.MultimodalSSLTask` with
   ``method='barlow_cross'``) are pretrained on the training locations with
   the same encoders, projectors, optimiser, augmentation and budget
   (:data:`DEMO_SETTINGS`): a
   :class:`~torchgeo_decur.datamodules.PairedDataModule` over the seasons in
   memory (:class:`DemoSeasons`, samples as SSL4EO-S12's: two views per
   modality, each of a random season), with the ``s1`` and ``s2c``
   preprocessing and augmentation on the batch. The augmentation is the
   modalities' own without its random grayscale (see
   :attr:`DemoSettings.grayscale`).
4. Linear probes (:func:`~torchgeo_decur.lab.probe.linear_probe`) of the frozen
   encoders (pooled features of both, concatenated) predict each factor; a
   pair of randomly initialised encoders gives the floor. The probes are
   trained on every season of the training locations and scored (balanced
   accuracy) on every season of the held-out locations, which pretraining
   never saw.

Every run writes a new folder ``<output>/run-<n>`` (earlier runs are never
touched) with the table (``results.csv``, ``results.json`` with the
settings, timings and chosen probe strengths), both checkpoints
(``decur.ckpt``, ``cross_modal_bt.ckpt``; ``torchgeo-decur export`` takes
them) and two figures of :mod:`torchgeo_decur.explain`: the cross-modal
alignment of every embedding dimension of both methods (``alignment.png``)
and GradCAM maps of DeCUR's common and unique embeddings
(``gradcam_decur.png``).

.. versionadded:: 0.1
"""

import contextlib
import csv
import inspect
import json
import logging
import os
import random
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import TQDMProgressBar
from torch import Tensor, nn
from torch.utils.data import default_collate

from ..checkpointing import staged_files
from ..datamodules import PairedDataModule
from ..datasets import MultimodalDataset, SSL4EOS12Pair
from ..explain import alignment_figure, gradcam_figure, prepare_pairs
from ..modalities import Modality, get_modality
from ..tasks import DeCURTask, MultimodalSSLTask, SSLTask
from ..transforms import MultiViewAugmentation
from .probe import ProbeResult, extract_features, linear_probe
from .world import (
    DEM_FACTOR_SENSORS,
    DEM_FACTORS,
    DEMO_LOCATIONS,
    DEMO_MARKER,
    DEMO_SIZE,
    FACTOR_SENSORS,
    FACTORS,
    GENERATOR_VERSION,
    make_ssl4eo_s12_demo,
    read_labels,
)

__all__ = (
    'DEMO_MODALITIES',
    'DEMO_ROOTS',
    'DEMO_SETTINGS',
    'EXTRA_METHODS',
    'METHODS',
    'DemoData',
    'DemoSeasons',
    'DemoSettings',
    'SeasonPairs',
    'build_task',
    'demo',
    'demo_datamodule',
    'demo_modalities',
    'format_spread_table',
    'format_table',
    'load_demo_data',
    'new_run_folder',
    'prepare_data',
    'pretrain',
    'probe_factors',
    'run_demo',
    'run_demo_seeds',
    'write_results',
)


@dataclass
class DemoSettings:
    """Sizes and budget of the demo; both methods get the same.

    .. versionadded:: 0.1
    """

    #: Number of modalities: 2 (Sentinel-1 and Sentinel-2) or 3 (and a DEM
    #: with a factor of its own, the relief; see :mod:`.world`).
    modalities: int = 2
    #: Number of generated locations and their tile size (10 m pixels).
    locations: int = DEMO_LOCATIONS
    size: int = DEMO_SIZE
    #: Seed of the data.
    data_seed: int = 0
    #: Share of the locations held out from pretraining to test the probes.
    test_fraction: float = 0.3
    #: Encoder (timm name) and its stage widths, for both modalities.
    model: str = 'convnet_small'
    widths: tuple[int, ...] = (16, 32, 64, 128)
    #: Projector output sizes.
    projector_dims: tuple[int, ...] = (256, 256)
    #: Share of common embedding dimensions of DeCUR.
    common_share: float = 0.5
    #: Optimisation: steps, batch, patch size of the augmented views.
    steps: int = 400
    batch_size: int = 64
    patch_size: int = 32
    optimizer: str = 'adamw'
    lr: float = 1e-3
    weight_decay: float = 1e-4
    #: Probability of the random grayscale of both modalities' augmentation
    #: (0.2 in the paper). A grayscale view keeps no difference between
    #: bands, and invariance to it teaches the optical encoder to ignore
    #: them: with it, DeCUR's probe of the optical-only factor (a spectral
    #: signature) stayed at chance.
    grayscale: float = 0.0
    #: Seed of pretraining (initial weights, sample order, augmentation).
    seed: int = 0
    #: Further keyword arguments of both tasks.
    extra: dict[str, Any] = field(default_factory=dict)


#: The defaults of ``torchgeo-decur demo``.
DEMO_SETTINGS = DemoSettings()

#: The modalities of the two- and three-modality demo, in batch key order.
DEMO_MODALITIES = {2: ('s1', 's2c'), 3: ('s1', 's2c', 'dem')}


def demo_modalities(settings: DemoSettings) -> tuple[str, ...]:
    """The registered modalities of a demo's settings.

    Args:
        settings: The demo's settings.

    Returns:
        ``('s1', 's2c')`` or ``('s1', 's2c', 'dem')``.

    Raises:
        ValueError: If ``settings.modalities`` is not 2 or 3.
    """
    if settings.modalities not in DEMO_MODALITIES:
        msg = f'modalities must be 2 or 3, got {settings.modalities}'
        raise ValueError(msg)
    return DEMO_MODALITIES[settings.modalities]


def _read_dem(path: Path) -> dict[str, Tensor]:
    """Read one location's DEM as ``{'image3': [1, S, S]}`` (metres).

    Raises:
        FileNotFoundError: If the data has no DEM (written without ``dem``).
    """
    if not path.is_file():
        msg = f'{path} not found: demo data without a DEM (write it with dem=True)'
        raise FileNotFoundError(msg)
    with rasterio.open(path) as f:
        return {'image3': torch.from_numpy(f.read(1)).unsqueeze(0)}


def _season_folders(folder: Path) -> list[Path]:
    """Season folders of one location of one modality, by acquisition date."""
    seasons = [p for p in folder.iterdir() if p.is_dir()]

    def date(p: Path) -> str:
        parts = p.name.split('_')
        return parts[4] if p.name.startswith('S1') else parts[0]

    return sorted(seasons, key=date)


class DemoSeasons(MultimodalDataset):
    """Every season of a demo data set, in memory, as SSL4EO-S12 samples.

    Season *k* of Sentinel-1 is paired with season *k* of Sentinel-2 (both in
    date order); each is read once by the reader of
    :class:`~torchgeo_decur.datasets.SSL4EOS12Pair`
    (:meth:`~torchgeo_decur.datasets.SSL4EOS12Pair.read_season`) and
    assembled once, all seasons together, by the reader's
    :meth:`~torchgeo_decur.datasets.SSL4EOS12Pair.on_device` (the coarser
    Sentinel-2 bands resampled bilinearly). Reading 30 small files per sample
    would take longer than the training itself on a CPU, and resampling the
    same seasons again in every batch costs a tenth of the pretraining.

    Samples are those of :class:`~torchgeo_decur.datasets.SSL4EOS12Pair`: two
    views of each modality of one location, each from a season drawn at
    random (with Python's :mod:`random`, which the datamodule seeds per
    sample). :meth:`pairs` gives every season pair instead, for the probes.

    With *dem*, samples also hold ``image3``, the location's DEM (metres; one
    acquisition, so both of its views are the same image).

    .. versionadded:: 0.1
    """

    def __init__(
        self, root: str | os.PathLike[str], ids: Sequence[str], dem: bool = False
    ) -> None:
        """Read every season of some locations of a demo data set.

        Args:
            root: A demo data set.
            ids: Location ids.
            dem: Whether to read the DEM too (data written with ``dem=True``).
        """
        self.reader = SSL4EOS12Pair(root, resample='batch', on_bad_sample='raise')
        self.input_bands = self.reader.input_bands
        pairs: list[dict[str, Tensor]] = []
        where: list[int] = []
        for i, name in enumerate(ids):
            folders1 = _season_folders(Path(root) / 's1' / name)
            folders2 = _season_folders(Path(root) / 's2c' / name)
            elevation = _read_dem(Path(root) / 'dem' / name / 'dem.tif') if dem else {}
            for a, b in zip(folders1, folders2, strict=False):
                pairs.append(
                    {
                        **self.reader.read_season('image1', a),
                        **self.reader.read_season('image2', b),
                        **elevation,
                    }
                )
                where.append(i)
        #: Every season, ``{'image1': [M, 2, S, S], 'image2': [M, 13, S, S]}``
        #: (dB and digital numbers; ``image3`` [M, 1, S, S] in metres with
        #: *dem*), and the location of each.
        self.seasons: dict[str, Tensor] = self.reader.on_device(default_collate(pairs))
        self.location = torch.tensor(where)
        order = torch.argsort(self.location, stable=True)
        counts = torch.bincount(self.location).tolist()
        self.of_location = [s.tolist() for s in torch.split(order, counts)]

    def __len__(self) -> int:
        """Return the number of locations."""
        return len(self.of_location)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return two views of each modality of one location.

        Args:
            index: Location index.

        Returns:
            ``{'image1': [2, 2, S, S], 'image2': [2, 13, S, S]}``, as
            :class:`~torchgeo_decur.datasets.SSL4EOS12Pair` (and ``image3``
            [2, 1, S, S], the DEM twice, with *dem*).
        """
        seasons = self.of_location[index]
        s1 = [random.choice(seasons) for _ in range(2)]
        s2 = [random.choice(seasons) for _ in range(2)]
        return {k: v[s1 if k == 'image1' else s2] for k, v in self.seasons.items()}

    def pairs(self) -> 'SeasonPairs':
        """Every season pair, one sample each (for the probes).

        Returns:
            The pairs, in the order of ``location``.
        """
        return SeasonPairs(self)


class SeasonPairs(MultimodalDataset):
    """The season pairs of :class:`DemoSeasons`, one sample each.

    .. versionadded:: 0.2
    """

    def __init__(self, seasons: DemoSeasons) -> None:
        """Initialize a new SeasonPairs instance.

        Args:
            seasons: The demo's seasons.
        """
        self.source = seasons
        self.input_bands = seasons.input_bands

    def __len__(self) -> int:
        """Return the number of season pairs."""
        return len(self.source.location)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return one season pair.

        Args:
            index: Pair index.

        Returns:
            ``{'image1': [2, S, S], 'image2': [13, S, S]}``.
        """
        return {k: v[index] for k, v in self.source.seasons.items()}


#: Rows of the demo table (see :func:`build_task`).
METHODS = ('DeCUR', 'Cross-modal BT', 'Random init')

#: Methods :func:`build_task` also builds for experiments, not in the table:
#: Barlow Twins between the two views of each modality, no cross-modal term.
EXTRA_METHODS = ('Intra-modal BT',)


def build_task(method: str, settings: DemoSettings) -> SSLTask:
    """Build one method's task with the demo's shared settings.

    With three modalities, cross-modal Barlow Twins is
    :class:`~torchgeo_decur.tasks.DeCURTask` with every dimension common and
    no intra-modal terms: Barlow Twins between every pair of modalities.
    ``'Intra-modal BT'`` (:data:`EXTRA_METHODS`) is Barlow Twins between the
    two views of each modality alone (``barlow_single``).

    Args:
        method: One of :data:`METHODS` or :data:`EXTRA_METHODS`.
        settings: The demo's settings.

    Returns:
        The task (untrained).

    Raises:
        ValueError: If *method* is unknown.
    """
    widths = {'widths': list(settings.widths)} if settings.widths else {}
    names = demo_modalities(settings)
    encoder = {'model': settings.model, 'model_kwargs': widths}
    shared: dict[str, Any] = {
        'modalities': names,
        'encoders': {name: dict(encoder) for name in names},
        'projector_dims': list(settings.projector_dims),
        'optimizer': settings.optimizer,
        'lr': settings.lr,
        'lr_biases': settings.lr,
        'weight_decay': settings.weight_decay,
        **settings.extra,
    }
    match method:
        case 'DeCUR' | 'Random init':
            return DeCURTask(**shared, common_share=settings.common_share)
        case 'Cross-modal BT' if len(names) > 2:
            return DeCURTask(**shared, decouple=False, intra=False)
        case 'Cross-modal BT':
            return MultimodalSSLTask(method='barlow_cross', **shared)
        case 'Intra-modal BT':
            return MultimodalSSLTask(method='barlow_single', **shared)
    msg = f'unknown demo method {method!r}; one of {METHODS + EXTRA_METHODS}'
    raise ValueError(msg)


def demo_datamodule(seasons: DemoSeasons, settings: DemoSettings) -> PairedDataModule:
    """The pretraining datamodule of the demo: SSL4EO-S12's, from memory.

    Args:
        seasons: The demo data in memory.
        settings: The demo's settings.

    Returns:
        A :class:`~torchgeo_decur.datamodules.PairedDataModule` with the
        modalities ``s1`` and ``s2c`` (and ``dem``; their preprocessing and
        augmentation, on the batch) whose validation split is the probes'
        test split.
    """
    dm = PairedDataModule(
        lambda: seasons,  # type: ignore[arg-type]
        demo_modalities(settings),
        batch_size=settings.batch_size,
        num_workers=0,
        patch_size=settings.patch_size,
        val_fraction=settings.test_fraction,
        seed=settings.seed,
    )
    # the modalities' own augmentation, with the grayscale probability of the
    # settings (see DemoSettings.grayscale) where it has one (not the DEM's)
    augment = MultiViewAugmentation(
        {
            key: _augmentation(get_modality(name), settings)
            for key, name in zip(dm.keys, dm.modalities, strict=True)
        }
    )
    dm.aug = dm.train_aug = dm.val_aug = augment
    return dm


def _augmentation(modality: Modality, settings: DemoSettings) -> nn.Module:
    """A modality's augmentation with the settings' grayscale, if it has one."""
    size, channels = settings.patch_size, modality.in_channels
    if 'grayscale' in inspect.signature(modality.augmentation).parameters:
        return modality.augmentation(size, channels, grayscale=settings.grayscale)
    return modality.augmentation(size, channels)


def _step_progress_bar(description: str) -> Any:
    """Lightning's progress bar over all steps of a run, with the loss.

    Lightning's own bar restarts every epoch; the demo's epochs are a few
    steps each, so this one counts the run's steps (``max_steps``) instead.

    Args:
        description: Label of the bar.

    Returns:
        A :class:`~lightning.pytorch.callbacks.TQDMProgressBar`.
    """

    class StepProgressBar(TQDMProgressBar):
        def on_train_epoch_start(self, trainer: Any, *_: Any) -> None:
            bar = self.train_progress_bar
            if bar.total != trainer.max_steps:
                bar.reset(total=trainer.max_steps)
                bar.set_description(description)

        def on_train_batch_end(
            self, trainer: Any, pl_module: Any, *_: Any, **__: Any
        ) -> None:
            bar = self.train_progress_bar
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()

        def on_train_epoch_end(self, *_: Any) -> None:
            pass

    return StepProgressBar()


def pretrain(
    method: str,
    seasons: DemoSeasons,
    settings: DemoSettings,
    out: Path,
    progress: bool = True,
    checkpoint: Path | None = None,
) -> SSLTask:
    """Pretrain one method on the training locations of the demo data.

    Args:
        method: One of :data:`METHODS`; ``'Random init'`` is not trained.
        seasons: The demo data in memory.
        settings: The demo's settings.
        out: Folder of the run's files.
        progress: Whether to show Lightning's progress bar (with the loss).
        checkpoint: Where to save the trained task as a Lightning checkpoint
            (None: nowhere).

    Returns:
        The task, trained.
    """
    seed_everything(settings.seed, verbose=False)
    task = build_task(method, settings)
    if method == 'Random init':
        return task
    trainer = Trainer(
        max_steps=settings.steps,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        accelerator='cpu',
        devices=1,
        default_root_dir=out,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        callbacks=[_step_progress_bar(method)] if progress else None,
        log_every_n_steps=1,
    )
    trainer.fit(task, datamodule=demo_datamodule(seasons, settings))
    if checkpoint is not None:
        trainer.save_checkpoint(checkpoint)
    return task


#: Column of each factor in the table.
COLUMNS = {
    'land_cover': 'common',
    'roughness': 'SAR-only',
    'mineral': 'optical-only',
    'relief': 'DEM-only',
}

#: Files of a demo run.
RESULTS_CSV = 'results.csv'
RESULTS_JSON = 'results.json'
CHECKPOINTS = {'DeCUR': 'decur.ckpt', 'Cross-modal BT': 'cross_modal_bt.ckpt'}


def new_run_folder(parent: str | os.PathLike[str]) -> Path:
    """Create the next free ``run-<n>`` folder in *parent*.

    Earlier runs are never touched: each run gets a folder of its own.

    Args:
        parent: Folder of the demo's runs (created if missing).

    Returns:
        The new, empty folder.

    Raises:
        FileExistsError: If *parent* exists and is not a folder.
    """
    parent = Path(parent)
    if parent.exists() and not parent.is_dir():
        msg = f'demo output {parent} exists and is not a folder'
        raise FileExistsError(msg)
    parent.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[4:]) for p in parent.glob('run-*') if p.name[4:].isdigit()]
    n = max(numbers, default=0) + 1
    while True:
        folder = parent / f'run-{n:03d}'
        try:
            folder.mkdir()  # atomic: a concurrent run takes another number
        except FileExistsError:
            n += 1
            continue
        return folder


def prepare_data(
    root: str | os.PathLike[str], settings: DemoSettings
) -> tuple[Path, bool]:
    """Generate the demo data, or reuse the data generated with these settings.

    A folder with demo data of other parameters (or of an older generator)
    is regenerated; a folder that is not demo data is never written to.

    Args:
        root: Folder of the demo data.
        settings: The demo's settings (locations, size, data seed).

    Returns:
        ``(root, reused)``.

    Raises:
        FileExistsError: If *root* holds something else than demo data.
    """
    root = Path(root)
    dem = len(demo_modalities(settings)) == 3
    params: dict[str, Any] = {
        'num_locations': settings.locations,
        'size': settings.size,
        'seed': settings.data_seed,
        'version': GENERATOR_VERSION,
    }
    if dem:
        params['dem'] = True
    marker = root / DEMO_MARKER
    found = json.loads(marker.read_text()) if marker.is_file() else None
    if found == params:
        return root, True
    make_ssl4eo_s12_demo(
        root,
        num_locations=settings.locations,
        size=settings.size,
        seed=settings.data_seed,
        overwrite=found is not None,  # demo data of other parameters
        dem=dem,
    )
    return root, False


def chance_levels(factors: Sequence[str] = tuple(FACTORS)) -> dict[str, float]:
    """Balanced accuracy of guessing, per factor: one over its classes.

    Args:
        factors: The factors (of :data:`~torchgeo_decur.lab.world.DEM_FACTORS`).

    Returns:
        ``{factor: chance level in [0, 1]}``.
    """
    return {k: 1 / len(DEM_FACTORS[k]) for k in factors}


def _factors_of(results: dict[str, dict[str, float]]) -> list[str]:
    """The factors of a results table, in column order."""
    return list(next(iter(results.values())))


def format_table(results: dict[str, dict[str, float]]) -> str:
    """The demo's table: methods by factors, balanced accuracy in %.

    Args:
        results: ``{method: {factor: balanced accuracy in [0, 1]}}``.

    Returns:
        The table as text, with the chance level of each column.
    """
    factors = _factors_of(results)
    chance = chance_levels(factors)
    width = max(len(m) for m in [*results, 'chance']) + 2
    head = ''.join(f'{COLUMNS[f]:>14s}' for f in factors)
    lines = [f'{"":{width}s}{head}']
    for method, row in results.items():
        cells = ''.join(f'{100 * row[f]:14.1f}' for f in factors)
        lines.append(f'{method:{width}s}{cells}')
    cells = ''.join(f'{100 * chance[f]:14.1f}' for f in factors)
    lines.append(f'{"chance":{width}s}{cells}')
    return '\n'.join(lines)


def format_spread_table(runs: Sequence[dict[str, dict[str, float]]]) -> str:
    """The demo's table over several seeds: mean ± standard deviation in %.

    Args:
        runs: The results of each seed, ``{method: {factor: accuracy}}``.

    Returns:
        The table as text, with the chance level of each column.
    """
    factors = _factors_of(runs[0])
    chance = chance_levels(factors)
    width = max(len(m) for m in [*runs[0], 'chance']) + 2
    head = ''.join(f'{COLUMNS[f]:>16s}' for f in factors)
    lines = [f'{"":{width}s}{head}']
    for method in runs[0]:
        cells = ''
        for factor in factors:
            values = 100 * np.array([run[method][factor] for run in runs])
            spread = values.std(ddof=1) if len(values) > 1 else 0.0
            cells += f'{f"{values.mean():.1f} ± {spread:.1f}":>16s}'
        lines.append(f'{method:{width}s}{cells}')
    cells = ''.join(f'{100 * chance[f]:16.1f}' for f in factors)
    lines.append(f'{"chance":{width}s}{cells}')
    return '\n'.join(lines)


def write_results(
    out: Path,
    results: dict[str, dict[str, float]],
    details: dict[str, Any],
) -> tuple[Path, Path]:
    """Write the table as CSV (one row per method) and JSON (with details).

    Args:
        out: The run folder.
        results: ``{method: {factor: balanced accuracy in [0, 1]}}``.
        details: Further entries of the JSON file (settings, timings, ...).

    Returns:
        The CSV and JSON paths.
    """
    csv_path, json_path = out / RESULTS_CSV, out / RESULTS_JSON
    with staged_files([csv_path, json_path]) as temporary:
        _write_results(temporary[csv_path], temporary[json_path], results, details)
    return csv_path, json_path


def _write_results(
    csv_path: Path,
    json_path: Path,
    results: dict[str, dict[str, float]],
    details: dict[str, Any],
) -> None:
    """Write the results table as CSV and JSON (see :func:`write_results`)."""
    factors = _factors_of(results)
    chance = chance_levels(factors)
    with open(csv_path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['method', *(f'{f}_{COLUMNS[f]}' for f in factors)])
        for method, row in results.items():
            writer.writerow([method, *(f'{100 * row[f]:.2f}' for f in factors)])
        writer.writerow(['chance', *(f'{100 * chance[f]:.2f}' for f in factors)])
    sensors = DEM_FACTOR_SENSORS if 'relief' in factors else FACTOR_SENSORS
    payload = {
        'metric': 'balanced accuracy (%) of a linear probe on the frozen encoders',
        'columns': {f: COLUMNS[f] for f in factors},
        'classes': {f: list(DEM_FACTORS[f]) for f in factors},
        'sensors': {f: sensors[f] for f in factors},
        'chance': {f: 100 * c for f, c in chance.items()},
        'results': {
            m: {f: 100 * v for f, v in row.items()} for m, row in results.items()
        },
        **details,
    }
    json_path.write_text(json.dumps(payload, indent=2) + '\n')


def _demo_figures(
    out: Path, tasks: dict[str, SSLTask], pairs: 'SeasonPairs', shown: Tensor
) -> list[Path]:
    """Explainability figures of the demo: alignment histograms and GradCAM.

    The alignment histogram of DeCUR with that of cross-modal Barlow Twins
    drawn over it, and GradCAM maps of DeCUR's common and unique embedding
    for four test pairs (:mod:`torchgeo_decur.explain`).

    Args:
        out: The run folder.
        tasks: The pretrained tasks, by method.
        pairs: The season pairs.
        shown: Indices of the pairs to draw from.

    Returns:
        The figures written.
    """
    decur, bt = tasks['DeCUR'], tasks['Cross-modal BT']
    batch = default_collate([pairs[int(i)] for i in shown])
    x1, x2 = prepare_pairs(decur, batch, pairs)
    written = []
    fig, _ = alignment_figure(
        decur, x1, x2, compare=bt, title='Cross-modal alignment per dimension'
    )
    path = out / 'alignment.png'
    fig.savefig(path)
    written.append(path)
    fig, _ = gradcam_figure(decur, x1, x2, max_samples=4, title='DeCUR GradCAM')
    path = out / 'gradcam_decur.png'
    fig.savefig(path)
    written.append(path)
    return written


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep Lightning's start-up notes and known harmless warnings off the screen."""
    logger = logging.getLogger('lightning.pytorch')
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='.*LeafSpec.*')
            warnings.filterwarnings('ignore', message='.*does not have many workers.*')
            warnings.filterwarnings('ignore', message='y_pred contains classes.*')
            yield
    finally:
        logger.setLevel(level)


def run_demo(
    root: str | os.PathLike[str],
    output: str | os.PathLike[str],
    settings: DemoSettings = DEMO_SETTINGS,
    progress: bool = True,
    figures: bool = True,
    threads: int = 1,
) -> dict[str, Any]:
    """Run the demo: data, pretraining of both methods, probes, table.

    Args:
        root: Folder of the demo data (generated there once).
        output: Folder of the demo's runs; this run writes a new
            ``run-<n>`` folder in it.
        settings: Sizes and budget.
        progress: Whether to show progress bars.
        figures: Whether to draw the explainability figures.
        threads: CPU threads of torch; 0 keeps torch's default. One thread
            is the default: on a busy machine several threads wait for each
            other far more than they gain.

    Returns:
        ``{'results': {method: {factor: balanced accuracy}}, 'table': str,
        'out': run folder, 'files': {name: path}, 'seconds': {stage: s}}``.

    Raises:
        ValueError: If the settings leave no test locations.
    """
    threads_before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        with _quiet():
            return _run_demo(root, output, settings, progress, figures)
    finally:
        torch.set_num_threads(threads_before)


def run_demo_seeds(
    root: str | os.PathLike[str],
    output: str | os.PathLike[str],
    settings: DemoSettings = DEMO_SETTINGS,
    seeds: int = 3,
    progress: bool = True,
    threads: int = 1,
) -> dict[str, Any]:
    """Run the demo on *seeds* data sets, each with its own training seed.

    Run *k* uses data seed ``settings.data_seed + k`` and training seed
    ``settings.seed + k``: a claim about the factors should hold on data and
    seeds it was not tuned on. The data of seed *d* other than the first is
    generated next to *root*, in ``<root>-data<d>``; each run writes its own
    ``run-<n>`` folder (without figures) in *output*.

    Args:
        root: Folder of the demo data of the first seed.
        output: Folder of the runs.
        settings: Sizes, budget and the first seeds.
        seeds: Number of (data seed, training seed) runs.
        progress: Whether to show progress bars.
        threads: CPU threads of torch (see :func:`run_demo`).

    Returns:
        ``{'runs': [each run as run_demo returns it], 'table': str}``: the
        table gives mean ± standard deviation over the runs.

    Raises:
        ValueError: If *seeds* is not positive.
    """
    if seeds < 1:
        msg = f'seeds must be positive, got {seeds}'
        raise ValueError(msg)
    root = Path(root)
    runs = []
    for k in range(seeds):
        local = replace(
            settings, data_seed=settings.data_seed + k, seed=settings.seed + k
        )
        folder = (
            root if k == 0 else root.with_name(f'{root.name}-data{local.data_seed}')
        )
        print(
            f'\nSeed {k + 1} of {seeds}: data seed {local.data_seed}, '
            f'training seed {local.seed}'
        )
        runs.append(run_demo(folder, output, local, progress, False, threads))
    table = format_spread_table([run['results'] for run in runs])
    return {'runs': runs, 'table': table}


@dataclass
class DemoData:
    """The demo data in memory, its probe split and its factors.

    .. versionadded:: 0.2
    """

    #: Every season of every location.
    seasons: DemoSeasons
    #: Whether each season pair is of a held-out (test) location.
    test: np.ndarray
    #: The class of each factor of each season pair.
    targets: dict[str, np.ndarray]
    #: The registered modalities, in batch key order.
    modalities: tuple[str, ...]
    #: Number of locations held out.
    test_locations: int


def load_demo_data(root: str | os.PathLike[str], settings: DemoSettings) -> DemoData:
    """Read demo data and split it as the demo does.

    The test locations are the validation split of :func:`demo_datamodule`
    (``settings.test_fraction``), which pretraining never sees.

    Args:
        root: A demo data set (:func:`prepare_data`).
        settings: The demo's settings.

    Returns:
        The data, split.

    Raises:
        ValueError: If the settings leave no test locations.
    """
    labels = read_labels(root)
    ids = sorted(labels)
    names = demo_modalities(settings)
    seasons = DemoSeasons(root, ids, dem='dem' in names)
    location = seasons.location.tolist()
    dm = demo_datamodule(seasons, settings)
    dm.setup('fit')
    if dm.val_dataset is None:
        msg = (
            f'{settings.locations} locations with test_fraction='
            f'{settings.test_fraction} leave no test split for the probes'
        )
        raise ValueError(msg)
    held_out = set(dm.val_dataset.indices)  # type: ignore[attr-defined]
    test = np.array([i in held_out for i in location])
    factors = DEM_FACTORS if 'dem' in names else FACTORS
    targets = {f: np.array([labels[ids[i]][f] for i in location]) for f in factors}
    return DemoData(seasons, test, targets, names, len(held_out))


def probe_factors(task: SSLTask, data: DemoData, seed: int) -> dict[str, ProbeResult]:
    """Linear-probe every factor from a task's frozen encoders.

    Trained on every season of the training locations, scored on every
    season of the test locations (:func:`~torchgeo_decur.lab.probe.linear_probe`
    on the pooled features of every modality, concatenated).

    Args:
        task: A pretrained (or random) task.
        data: The demo data.
        seed: Seed of the probes.

    Returns:
        The probe of each factor.

    .. versionadded:: 0.2
    """
    keys = [f'image{i}' for i in range(1, len(data.modalities) + 1)]
    features, _ = extract_features(task, data.seasons.pairs(), data.modalities, keys)
    train, test = ~data.test, data.test
    return {
        f: linear_probe(features[train], y[train], features[test], y[test], seed=seed)
        for f, y in data.targets.items()
    }


def _run_demo(
    root: str | os.PathLike[str],
    output: str | os.PathLike[str],
    settings: DemoSettings,
    progress: bool,
    figures: bool,
) -> dict[str, Any]:
    """The body of :func:`run_demo`."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        seconds[stage] = round(now - since, 1)
        return now

    t = time.perf_counter()
    root, reused = prepare_data(root, settings)
    print(
        f'Demo data: {root} ({"reused" if reused else "generated"}; '
        f'{settings.locations} locations, {settings.size} px, 4 seasons'
        f'{", a DEM" if settings.modalities == 3 else ""})'
    )
    t = lap('data', t)
    data = load_demo_data(root, settings)
    seasons, test = data.seasons, data.test
    t = lap('load', t)

    out = new_run_folder(output)
    print(f'Run folder: {out}')
    results: dict[str, dict[str, float]] = {}
    chosen: dict[str, dict[str, float]] = {}
    tasks = {}
    for method in METHODS:
        if method != 'Random init':
            print(f'\nPretraining {method} ({settings.steps} steps)')
        path = out / CHECKPOINTS[method] if method in CHECKPOINTS else None
        task = pretrain(method, seasons, settings, out, progress, path)
        t = lap(f'pretrain {method}', t)
        tasks[method] = task
        probes = probe_factors(task, data, settings.seed)
        results[method] = {f: p.balanced_accuracy for f, p in probes.items()}
        chosen[method] = {f: p.c for f, p in probes.items()}
        t = lap(f'probe {method}', t)

    table = format_table(results)
    files: dict[str, Path] = {}
    if figures and settings.modalities == 2:  # the figures explain pairs
        try:
            shown = torch.from_numpy(np.flatnonzero(test)[:64])
            for path in _demo_figures(out, tasks, seasons.pairs(), shown):
                files[path.stem] = path
        except ImportError as err:  # pragma: no cover - depends on the install
            print(f'(no figures: {err})')
        t = lap('figures', t)
    seconds['total'] = round(time.perf_counter() - start, 1)
    details = {
        'settings': asdict(settings),
        'data': str(root),
        'locations': {
            'train': len(data.seasons) - data.test_locations,
            'test': data.test_locations,
        },
        'pairs': {'train': int((~test).sum()), 'test': int(test.sum())},
        'probe_c': chosen,
        'seconds': seconds,
        'checkpoints': {m: str(out / c) for m, c in CHECKPOINTS.items()},
    }
    csv_path, json_path = write_results(out, results, details)
    files.update({'csv': csv_path, 'json': json_path})
    files.update({m: out / c for m, c in CHECKPOINTS.items()})
    return {
        'results': results,
        'table': table,
        'out': out,
        'files': files,
        'seconds': seconds,
        'test_locations': data.test_locations,
    }


#: Default data folders of the two- and three-modality demo.
DEMO_ROOTS = {2: 'data/ssl4eo-s12-demo', 3: 'data/ssl4eo-s12-demo-dem'}


def demo(
    root: str | None = None,
    out: str = 'output/demo',
    modalities: int = DEMO_SETTINGS.modalities,
    locations: int = DEMO_SETTINGS.locations,
    size: int = DEMO_SETTINGS.size,
    data_seed: int = DEMO_SETTINGS.data_seed,
    steps: int = DEMO_SETTINGS.steps,
    batch_size: int = DEMO_SETTINGS.batch_size,
    seed: int = DEMO_SETTINGS.seed,
    common_share: float = DEMO_SETTINGS.common_share,
    threads: int = 1,
    progress: bool = True,
    figures: bool = True,
    seeds: int = 1,
) -> dict[str, Any]:
    """Pretrain DeCUR and cross-modal Barlow Twins on data with known factors.

    ``torchgeo-decur demo`` (``make demo``): generates SSL4EO-S12-format
    Sentinel-1/2 data (once) whose locations have a land cover (seen by both
    sensors), a surface roughness (SAR only) and a soil mineral (optical
    only); pretrains both methods with the same budget; linear-probes each
    factor from the frozen encoders and from random ones; prints the table
    and writes it, the checkpoints and figures to a new ``run-<n>`` folder in
    *out* (see :func:`run_demo`).

    With ``modalities=3`` the data has a DEM too, with a factor only it sees
    (the relief); DeCUR is trained on all three, against Barlow Twins between
    every pair of modalities and random encoders (no figures).

    Args:
        root: Folder of the generated data (reused when it matches); None
            for ``data/ssl4eo-s12-demo`` (two modalities) or
            ``data/ssl4eo-s12-demo-dem`` (three; :data:`DEMO_ROOTS`).
        out: Folder of the runs; each run writes a new ``run-<n>`` in it.
        modalities: 2 (Sentinel-1 and -2) or 3 (and a DEM).
        locations: Number of generated locations.
        size: Tile size in pixels.
        data_seed: Seed of the data.
        steps: Pretraining steps of each method.
        batch_size: Pretraining batch size.
        seed: Seed of the pretraining.
        common_share: Share of DeCUR's common embedding dimensions.
        threads: CPU threads of torch; 0 keeps torch's default.
        progress: Whether to show progress bars.
        figures: Whether to draw the explainability figures.
        seeds: Number of (data seed, training seed) runs; above 1, the
            table gives mean ± standard deviation over them
            (:func:`run_demo_seeds`; no figures).

    Returns:
        The run, as :func:`run_demo` returns it, or the runs, as
        :func:`run_demo_seeds` returns them.

    Raises:
        ValueError: If *modalities* is not 2 or 3.

    .. versionadded:: 0.2
    """
    settings = replace(
        DEMO_SETTINGS,
        modalities=modalities,
        locations=locations,
        size=size,
        data_seed=data_seed,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        common_share=common_share,
    )
    demo_modalities(settings)  # checks the number
    root = DEMO_ROOTS[modalities] if root is None else root
    if seeds != 1:
        spread = run_demo_seeds(root, out, settings, seeds, progress, threads)
        print(
            f'\nLinear probes of the frozen encoders, balanced accuracy (%), mean ± '
            f'standard deviation over {seeds} data seeds, each with its own '
            f'training seed (data seeds {data_seed}..{data_seed + seeds - 1}, '
            f'training seeds {seed}..{seed + seeds - 1}).\n'
        )
        print(spread['table'])
        print('\nThe runs: ' + ', '.join(str(r['out']) for r in spread['runs']))
        return spread
    run = run_demo(root, out, settings, progress, figures, threads)
    _print_run(run, settings)
    return run


def _print_run(run: dict[str, Any], settings: DemoSettings) -> None:
    """Print a demo run's table, timing, files and the export command."""
    print(
        '\nLinear probes of the frozen encoders (pooled features of every '
        'modality, concatenated), balanced accuracy (%) on every season of '
        f'{run["test_locations"]} held-out locations. Both methods: same '
        f'encoders, augmentation and budget ({settings.steps} steps of '
        f'{settings.batch_size}); DeCUR common share {settings.common_share:g}.\n'
    )
    print(run['table'])
    print(f'\nDone in {run["seconds"]["total"]:.0f} s. Everything is in {run["out"]}:')
    for name, path in run['files'].items():
        print(f'  {name}: {path}')
    if 'DeCUR' in run['files']:
        print(
            'Export the DeCUR encoders with: torchgeo-decur export '
            f'--checkpoint {run["files"]["DeCUR"]} --out {run["out"] / "encoders"}'
        )
