"""Can DeCUR's common share be chosen from the data? (issue 22, item 5)

On the known-factor demo data (two modalities, and three with the DEM), for
each seed this script

1. runs the paper's selection: DeCUR pretrained once per share of the grid,
   every factor linear-probed from the frozen encoders, the share with the
   best mean balanced accuracy kept (what ``sweep-common`` does with a
   downstream task; here the factors are known);
2. estimates the share without labels: a short fully-common warm-up (DeCUR
   with ``decouple=False``, intra-modal terms on), then the canonical
   correlations between every pair of modalities' pooled features on the
   training pairs (after PCA to 99% of the variance), turned into a share
   three ways (below); with three modalities, the smallest share of the
   pairs (common dimensions must be common to every pair);
3. says whether each estimate, snapped to the grid, lands within one grid
   step of the selected share.

Estimators, over the d = min(rank) canonical correlations rho of a pair:
``significant`` (the share of rho above the 95th percentile of the largest
rho of 5 row-shuffled pairings), ``mean_rho2`` (the mean of rho^2), and
``rho_gt_0.5`` (the share of rho above 0.5).

Usage (a CPU run of 2 x 2 x 5 pretrainings, about an hour on 2 cores; the
demo data is generated beside the demo's)::

    python benchmarks/common_share.py --modalities 2 3 --seeds 0 1 \
        --out output/common_share
"""

import argparse
import json
import time
from dataclasses import replace
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchgeo_decur.lab.demo import (
    DEMO_ROOTS,
    DEMO_SETTINGS,
    DemoData,
    DemoSettings,
    load_demo_data,
    prepare_data,
    pretrain,
    probe_factors,
)
from torchgeo_decur.lab.probe import extract_features
from torchgeo_decur.tasks import SSLTask

#: The share grid (the demo's 0.5, the paper's 0.75 and 0.875, and 0.25).
GRID = (0.25, 0.5, 0.75, 0.875)


def modality_features(task: SSLTask, data: DemoData) -> list[np.ndarray]:
    """Each modality's pooled features of every training season pair."""
    keys = [f'image{i}' for i in range(1, len(data.modalities) + 1)]
    joint, _ = extract_features(task, data.seasons.pairs(), data.modalities, keys)
    sizes = [int(e.num_features) for e in task.encoders.values()]
    parts = np.split(joint[~data.test], np.cumsum(sizes)[:-1], axis=1)
    return [p.astype(np.float64) for p in parts]


def _basis(x: np.ndarray, kept: float = 0.99) -> np.ndarray:
    """Orthonormal basis of the centred features' main subspace (PCA)."""
    u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    energy = np.cumsum(s**2) / np.sum(s**2)
    rank = int(np.searchsorted(energy, kept) + 1)
    return u[:, :rank]


def canonical_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Canonical correlations of two feature sets, largest first."""
    bx, by = _basis(x), _basis(y)
    rho = np.linalg.svd(bx.T @ by, compute_uv=False)
    return np.clip(rho, 0, 1)


def pair_shares(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, float]:
    """The three share estimates of one pair of modalities."""
    rho = canonical_correlations(x, y)
    rng = np.random.default_rng(seed)
    null = [canonical_correlations(x, y[rng.permutation(len(y))])[0] for _ in range(5)]
    threshold = float(np.percentile(null, 95))
    return {
        'significant': float(np.mean(rho > threshold)),
        'mean_rho2': float(np.mean(rho**2)),
        'rho_gt_0.5': float(np.mean(rho > 0.5)),
        'dims': float(len(rho)),
        'null_threshold': threshold,
    }


def snap(share: float) -> float:
    """The grid share nearest to *share*."""
    return min(GRID, key=lambda g: abs(g - share))


def one_setting(
    modalities: int, seed: int, warmup: int, out: Path, steps: int
) -> dict[str, Any]:
    """Grid selection and estimates for one data set and seed."""
    settings: DemoSettings = replace(
        DEMO_SETTINGS, modalities=modalities, data_seed=seed, seed=seed, steps=steps
    )
    root = Path(DEMO_ROOTS[modalities])
    if seed:
        root = root.with_name(f'{root.name}-data{seed}')
    prepare_data(root, settings)
    data = load_demo_data(root, settings)
    scores: dict[float, dict[str, float]] = {}
    for share in GRID:
        t = time.perf_counter()
        task = pretrain('DeCUR', data.seasons, replace(settings, common_share=share),
                        out, progress=False)  # fmt: skip
        probes = probe_factors(task, data, seed)
        scores[share] = {f: 100 * p.balanced_accuracy for f, p in probes.items()}
        scores[share]['mean'] = float(np.mean(list(scores[share].values())))
        print(f'  M={modalities} seed={seed} share={share}: {scores[share]} '
              f'({time.perf_counter() - t:.0f} s)', flush=True)  # fmt: skip
    best = max(GRID, key=lambda g: scores[g]['mean'])
    warm_settings = replace(settings, steps=warmup, extra={'decouple': False})
    warm = pretrain('DeCUR', data.seasons, warm_settings, out, progress=False)
    features = modality_features(warm, data)
    pairs = {
        f'{data.modalities[i]}-{data.modalities[j]}': pair_shares(
            features[i], features[j], seed
        )
        for i, j in combinations(range(len(features)), 2)
    }
    estimates = {
        k: min(p[k] for p in pairs.values())
        for k in ('significant', 'mean_rho2', 'rho_gt_0.5')
    }
    step = {
        k: abs(GRID.index(snap(v)) - GRID.index(best)) for k, v in estimates.items()
    }
    return {
        'modalities': modalities,
        'seed': seed,
        'scores': {str(k): v for k, v in scores.items()},
        'best': best,
        'pairs': pairs,
        'estimates': estimates,
        'snapped': {k: snap(v) for k, v in estimates.items()},
        'grid_steps_off': step,
    }


def main() -> None:
    """Run the comparison and print and write its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--modalities', type=int, nargs='+', default=[2, 3])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--warmup', type=int, default=100)
    parser.add_argument('--steps', type=int, default=DEMO_SETTINGS.steps)
    parser.add_argument('--out', type=Path, default=Path('output/common_share'))
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = '_'.join(map(str, args.modalities)) + '_' + '_'.join(map(str, args.seeds))
    path = args.out / f'common_share_{tag}.json'
    rows = []
    for modalities in args.modalities:
        for seed in args.seeds:
            row = one_setting(modalities, seed, args.warmup, args.out, args.steps)
            rows.append(row)
            path.write_text(json.dumps(rows, indent=2) + '\n')
    print('\nM seed | mean balanced accuracy per share | best | estimates (snapped)')
    for r in rows:
        scores = ' '.join(f'{k}:{v["mean"]:.1f}' for k, v in r['scores'].items())
        est = ' '.join(
            f'{k} {v:.2f} ({r["snapped"][k]}, {r["grid_steps_off"][k]} off)'
            for k, v in r['estimates'].items()
        )
        print(f'{r["modalities"]} {r["seed"]} | {scores} | {r["best"]} | {est}')
    print(f'\nWritten: {path}')


if __name__ == '__main__':
    main()
