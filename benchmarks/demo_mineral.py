"""Why the demo's encoders do not keep the optical-only mineral (issue 18, item 7).

The known-factor demo's self-supervised encoders keep the SAR-only roughness
but not the optical-only mineral (docs/demo.md), although per-band statistics
of the optical views recover it. This script measures the explanations:

1. **Capacity and input**: the demo's optical encoder (``convnet_small``,
   widths 16-128; the same input, preprocessing and augmentation as
   pretraining) trained *with* the mineral labels for the demo's budget (400
   steps of 64 views). Its accuracy on the held-out locations, and the demo's
   linear probe on its pooled features, say whether this encoder can
   represent the mineral from these views.
2. **Visibility**: the probe on per-band statistics (means, standard
   deviations, log ratios of neighbouring bands), overall and within each
   land-cover class.
3. **Seasonal optical nuisances** (``--without``): the data regenerated with
   per-acquisition nuisances of Sentinel-2 switched off (``haze``, ``clouds``,
   ``gain``: illumination and band calibration, ``greenness``: the crops'
   season, which Sentinel-1 sees too), then ``--methods`` pretrained and
   probed as the demo does. This sets constants of
   :mod:`torchgeo_decur.lab.world` for the run: an experiment, not a data set
   the demo ships; the data goes to a folder of its own.

Usage::

    .venv/bin/python benchmarks/demo_mineral.py --data-seed 0 --seeds 0 1
    .venv/bin/python benchmarks/demo_mineral.py --data-seed 1 --without haze clouds \\
        gain greenness --methods DeCUR "Cross-modal BT" "Random init"

Balanced accuracy in %; chance is 33.3 (mineral, roughness), 20 (land cover).
"""

import argparse
import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import Tensor

from torchgeo_decur.datamodules import ModalityPreprocessing
from torchgeo_decur.lab import world
from torchgeo_decur.lab.demo import (
    EXTRA_METHODS,
    METHODS,
    DemoData,
    DemoSettings,
    load_demo_data,
    prepare_data,
    pretrain,
    probe_factors,
)
from torchgeo_decur.lab.probe import linear_probe
from torchgeo_decur.modalities import get_modality

#: Each nuisance ``--without`` switches off: generator constants and values.
NUISANCES: dict[str, dict[str, Any]] = {
    'haze': {'_S2_HAZE': 0.0},
    'clouds': {'_CLOUD_PROBABILITY': 0.0},
    'gain': {'_S2_ILLUMINATION': (1.0, 1.0), '_S2_BAND_JITTER': 0.0},
    'greenness': {'_GREENNESS': (0.5, 0.5, 0.5, 0.5)},
}

#: File recording which nuisances a data folder was written without.
WITHOUT_FILE = 'without.json'


@contextlib.contextmanager
def world_without(names: Sequence[str]) -> Iterator[None]:
    """Switch off the named nuisances of the generator inside the block."""
    saved = {}
    for name in names:
        for constant, value in NUISANCES[name].items():
            saved[constant] = getattr(world, constant)
            setattr(world, constant, value)
    try:
        yield
    finally:
        for constant, value in saved.items():
            setattr(world, constant, value)


def variant_data(root: Path, settings: DemoSettings, without: Sequence[str]) -> Path:
    """Write (or reuse) demo data without the named nuisances in *root*.

    Raises:
        ValueError: If *root* holds data written without other nuisances.
    """
    record = root / WITHOUT_FILE
    names = sorted(without)
    if root.exists() and any(root.iterdir()):
        found = json.loads(record.read_text()) if record.is_file() else []
        if found != names:
            msg = f'{root} holds demo data without {found}, not without {names}'
            raise ValueError(msg)
    with world_without(names):
        prepare_data(root, settings)
    record.write_text(json.dumps(names))
    return root


def optical_inputs(data: DemoData) -> Tensor:
    """Every season's Sentinel-2 image, preprocessed as the probes see it."""
    pairs = data.seasons.pairs()
    preparation = ModalityPreprocessing({'image1': 's1', 'image2': 's2c'}, pairs)
    seasons = data.seasons.seasons
    return preparation(dict(seasons))['image2']


def band_statistics(x: Tensor) -> np.ndarray:
    """Per-band means and std, and log ratios of neighbouring band means."""
    mean, std = x.mean(dim=(2, 3)), x.std(dim=(2, 3))
    ratios = torch.log(mean[:, 1:].clamp_min(1e-4) / mean[:, :-1].clamp_min(1e-4))
    return torch.cat((mean, std, ratios), dim=1).numpy()


def supervised(
    x: Tensor, y: np.ndarray, train: np.ndarray, settings: DemoSettings, seed: int
) -> tuple[np.ndarray, float, float]:
    """Train the demo's optical encoder on the mineral; score held-out pairs.

    Returns:
        The classifier's predictions on the held-out pairs, the balanced
        accuracy (%) of the demo's linear probe on its pooled features, and
        the training seconds.
    """
    torch.manual_seed(seed)
    model = timm.create_model(
        settings.model, in_chans=13, num_classes=3, widths=list(settings.widths)
    )
    augment = get_modality('s2c').augmentation(
        settings.patch_size, 13, grayscale=settings.grayscale
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    index = torch.from_numpy(np.flatnonzero(train))
    labels = torch.from_numpy(y)
    start = time.perf_counter()
    model.train()
    for _ in range(settings.steps):
        batch = index[torch.randint(len(index), (settings.batch_size,))]
        loss = F.cross_entropy(model(augment(x[batch])), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(c) for c in x.split(256)])
        pooled = torch.cat(
            [model.forward_head(model.forward_features(c), True) for c in x.split(256)]
        )
    test = ~train
    feats = pooled.numpy()
    probe = linear_probe(feats[train], y[train], feats[test], y[test], seed=seed)
    return logits[test].argmax(1).numpy(), 100 * probe.balanced_accuracy, seconds


def per_class(y: np.ndarray, predicted: np.ndarray, cover: np.ndarray) -> str:
    """Balanced accuracy (%) within each land-cover class."""
    parts = []
    for k, name in enumerate(world.CLASSES):
        if not (cover == k).any():
            parts.append(f'{name} -')
            continue
        score = balanced_accuracy_score(y[cover == k], predicted[cover == k])
        parts.append(f'{name} {100 * score:.1f}')
    return ', '.join(parts)


def measure_encoder(
    data: DemoData, settings: DemoSettings, seeds: Sequence[int]
) -> None:
    """Print the supervised encoder and the band-statistics probes."""
    x, y = optical_inputs(data), data.targets['mineral']
    train, test = ~data.test, data.test
    cover = data.targets['land_cover']
    for seed in seeds:
        predicted, probe, seconds = supervised(x, y, train, settings, seed)
        accuracy = 100 * balanced_accuracy_score(y[test], predicted)
        print(
            f'supervised {settings.model}, seed {seed}: classifier {accuracy:.1f} '
            f'({per_class(y[test], predicted, cover[test])}); linear probe on its '
            f'features {probe:.1f} ({seconds:.0f} s)'
        )
    stats = band_statistics(x)
    overall = linear_probe(stats[train], y[train], stats[test], y[test], seed=0)
    print(f'band statistics probe: {100 * overall.balanced_accuracy:.1f} overall')
    for k, name in enumerate(world.CLASSES):
        tr, te = train & (cover == k), test & (cover == k)
        if len(np.unique(y[tr])) < 2 or not te.any():  # too few to probe
            print(f'  within land cover {name}: - ({int(te.sum())} held-out pairs)')
            continue
        result = linear_probe(stats[tr], y[tr], stats[te], y[te], seed=0)
        print(
            f'  within land cover {name}: {100 * result.balanced_accuracy:.1f} '
            f'({int(te.sum())} held-out pairs)'
        )


def measure_methods(
    data: DemoData, settings: DemoSettings, methods: Sequence[str], out: Path
) -> dict[str, dict[str, float]]:
    """Pretrain and probe *methods* as the demo does; print one row each."""
    results = {}
    for method in methods:
        start = time.perf_counter()
        task = pretrain(method, data.seasons, settings, out, progress=False)
        probes = probe_factors(task, data, settings.seed)
        results[method] = {f: 100 * p.balanced_accuracy for f, p in probes.items()}
        row = ', '.join(f'{f} {v:.1f}' for f, v in results[method].items())
        print(f'{method}: {row} ({time.perf_counter() - start:.0f} s)')
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurements; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', type=Path, help='demo data folder')
    parser.add_argument('--data-seed', type=int, default=0)
    parser.add_argument('--seed', type=int, help='pretraining seed (data seed)')
    parser.add_argument('--seeds', type=int, nargs='*', default=[0, 1])
    parser.add_argument('--steps', type=int, default=DemoSettings.steps)
    parser.add_argument('--locations', type=int, default=DemoSettings.locations)
    parser.add_argument('--size', type=int, default=DemoSettings.size)
    parser.add_argument('--without', nargs='*', default=[], choices=sorted(NUISANCES))
    parser.add_argument(
        '--methods', nargs='*', default=[], choices=METHODS + EXTRA_METHODS
    )
    args = parser.parse_args(argv)
    seed = args.data_seed if args.seed is None else args.seed
    settings = replace(
        DemoSettings(),
        data_seed=args.data_seed,
        seed=seed,
        steps=args.steps,
        locations=args.locations,
        size=args.size,
    )
    suffix = ''.join(f'-no{n}' for n in sorted(args.without))
    data_part = f'-data{args.data_seed}' if args.data_seed else ''
    root = args.root or Path(f'data/ssl4eo-s12-demo{suffix}{data_part}')
    if args.without:
        variant_data(root, settings, args.without)
    else:
        prepare_data(root, settings)
    data = load_demo_data(root, settings)
    without = ', '.join(args.without) or 'nothing'
    print(
        f'data {root} (seed {args.data_seed}, without {without}): '
        f'{len(data.test)} season pairs, {int(data.test.sum())} held out'
    )
    measure_encoder(data, settings, args.seeds)
    if args.methods:
        measure_methods(data, settings, args.methods, root / 'runs')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
