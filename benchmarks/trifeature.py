"""What each multimodal method captures, on the bimodal Trifeature benchmark.

Bimodal Trifeature (Hermann & Lampinen 2020, as CoMM uses it): a pair is two
images of the **same shape**, each with its own texture and colour
(:class:`torchgeo_decur.lab.BimodalTrifeature`). Linear probes on the
frozen representation measure

* **R** (redundancy): the shared shape, 10 classes;
* **U1**, **U2** (uniqueness): the texture of image 1, of image 2, 10 classes
  each;
* **S** (synergy): whether (texture of image 1, colour of image 2) is a pair
  of a fixed random bijection M, 2 classes. For S every method is pretrained
  a second time, on a *biased* training set whose pairs all satisfy
  colour 2 = M(texture 1); the probe is then trained and tested on unbiased
  pairs.

Every method is trained with the same encoders (``convnet_small``, one per
image; at 64 px their last map is 4 x 4, 16 tokens per image for CoMM),
projectors, optimiser (AdamW, cosine schedule), budget (steps and batch) and
augmentation (CoMM's crop, colour jitter, grayscale and flip, the colour steps
on the foreground only, no blur:
:func:`torchgeo_decur.transforms.trifeature_augmentation` says why), on the
same generated data (64 px renders: textures of a 6.4 px period), for each
seed. CoMM's fusion transformer is as wide
as the encoders' last stage (``--fusion-dim``, 64 by default): CoMM's 512
follows its 256-512-channel image encoders, and at 512 on these 64-channel
encoders the fusion's matrix products made a CoMM step 9 times a DeCUR step
(64 wide: 1.65 times). The probe is scikit-learn's logistic regression with
class-balanced weights (S has about 10% positives; unweighted, a weak
synergy never crosses p = 0.5 and reads exactly 50) and C chosen on a log
grid 1e-4 ... 1e4 by balanced accuracy on a validation split of the
probe-training features (:func:`torchgeo_decur.lab.probe.linear_probe`),
scored by balanced accuracy on pairs built from the held-out 20% of the
(shape, texture, colour) combinations, and for S also by AUROC
(``S_auroc``). The representation is the fused embedding for CoMM and the two
encoders' pooled features, concatenated, for the others. A row of frozen,
randomly initialised encoders gives the floor.

Prints one table (mean and spread over the seeds), and writes
``trifeature.csv`` (every seed) and ``trifeature.png`` (bar chart) to
``--out``.

    .venv/bin/python benchmarks/trifeature.py                 # full size
    .venv/bin/python benchmarks/trifeature.py --quick         # seconds, for tests
    .venv/bin/python benchmarks/trifeature.py --device cuda   # on a GPU
    .venv/bin/python benchmarks/trifeature.py --no-synergy   # R, U only
"""

import argparse
import csv
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use('Agg')

import matplotlib.pyplot as plt
import numpy as np
import timm
import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor

from torchgeo_decur.lab import BimodalTrifeature, TrifeaturePairDataModule
from torchgeo_decur.lab.probe import extract_features, linear_probe
from torchgeo_decur.tasks import CoMMTask, DeCURTask, MultimodalSSLTask
from torchgeo_decur.transforms import trifeature_augmentation

#: Probed labels: the column, the dataset label and whether it needs the
#: biased pretraining.
PROBES = {
    'R': ('shape', False),
    'U1': ('texture1', False),
    'U2': ('texture2', False),
    'S': ('synergy', True),
}

#: The table's columns: balanced accuracy of each probe, and S's AUROC.
COLUMNS = (*PROBES, 'S_auroc')

#: Chance level of each column.
CHANCE = {'R': 0.1, 'U1': 0.1, 'U2': 0.1, 'S': 0.5, 'S_auroc': 0.5}

MODALITIES = ('trifeature1', 'trifeature2')

#: The methods of a run without ``--methods``: the floor, two cross-only
#: methods (one contrastive, one Barlow Twins), two with intra-modal terms and
#: CoMM. ``--methods`` adds Single BT, SimCLR-cross and VICReg-cross.
DEFAULT_METHODS = ('Random init', 'CLIP', 'Cross BT', 'Cross+Self', 'DeCUR', 'CoMM')


def widths(args: argparse.Namespace) -> list[int]:
    """Channels of the four ``convnet_small`` stages: ``--width`` doubled."""
    return [args.width * 2**i for i in range(4)]


def shared_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The encoder, projector and optimiser every method gets."""
    encoder = {'model': 'convnet_small', 'model_kwargs': {'widths': widths(args)}}
    return {
        'encoders': {m: dict(encoder) for m in MODALITIES},
        'modalities': list(MODALITIES),
        'optimizer': 'adamw',
        'lr': args.lr,
        'lr_biases': args.lr,
        'weight_decay': args.weight_decay,
        'warmup_epochs': 0,
        'lr_schedule': args.lr_schedule,
    }


def methods(args: argparse.Namespace) -> dict[str, Callable[[], LightningModule]]:
    """Build each method's task with the shared settings."""
    common = shared_settings(args)
    dims = [args.projector_dim] * 2
    return {
        'Random init': lambda: DeCURTask(**common, projector_dims=dims),
        'DeCUR': lambda: DeCURTask(
            **common, projector_dims=dims, common_share=args.common_share
        ),
        'Cross BT': lambda: MultimodalSSLTask(
            **common, method='barlow_cross', projector_dims=dims
        ),
        'Single BT': lambda: MultimodalSSLTask(
            **common, method='barlow_single', projector_dims=dims
        ),
        'CLIP': lambda: MultimodalSSLTask(**common, method='clip', projector_dims=dims),
        'SimCLR-cross': lambda: MultimodalSSLTask(
            **common, method='simclr_cross', projector_dims=dims
        ),
        'VICReg-cross': lambda: MultimodalSSLTask(
            **common, method='vicreg_cross', projector_dims=dims
        ),
        'Cross+Self': lambda: MultimodalSSLTask(
            **common, method='cross_self', projector_dims=dims
        ),
        'CoMM': lambda: CoMMTask(
            **common,
            projector_dims=dims,
            embed_dim=args.fusion_dim,
            num_heads=max(1, args.fusion_dim // 16),
        ),
    }


def pretrain(
    build: Callable[[], LightningModule],
    args: argparse.Namespace,
    seed: int,
    biased: bool,
    name: str = 'method',
) -> LightningModule:
    """Pretrain one method on the (biased) training pairs; untrained for 0 steps.

    With ``--log-dir``, every logged loss term goes to
    ``<log-dir>/<name>/seed<seed>_<unbiased|biased>/metrics.csv``.
    """
    seed_everything(seed, verbose=False)
    task = build()
    if args.steps == 0:
        return task
    datamodule = TrifeaturePairDataModule(
        batch_size=args.batch_size,
        num_workers=args.workers,
        patch_size=args.size,
        num_pairs=args.pairs,
        size=args.size,
        biased=biased,
        seed=args.data_seed,
        sample_seed=seed,
    )
    logger: CSVLogger | bool = False
    if args.log_dir is not None:  # every loss term, each logging step
        version = f'seed{seed}_{"biased" if biased else "unbiased"}'
        logger = CSVLogger(args.log_dir, name=name.replace(' ', '_'), version=version)
    trainer = Trainer(
        max_steps=args.steps,
        max_epochs=-1,
        accelerator=args.device,
        devices=1,
        logger=logger,
        log_every_n_steps=args.log_every,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(task, datamodule=datamodule)
    return task


def probe_sets(args: argparse.Namespace) -> dict[str, BimodalTrifeature]:
    """Unbiased probe-training pairs (train combinations) and test pairs."""
    return {
        'train': BimodalTrifeature(
            'train', num_pairs=args.probe_pairs, size=args.size, seed=args.data_seed
        ),
        'test': BimodalTrifeature(
            'test', num_pairs=args.test_pairs, size=args.size, seed=args.data_seed
        ),
    }


def score(
    task: LightningModule,
    data: dict[str, BimodalTrifeature],
    columns: list[str],
    args: argparse.Namespace,
) -> dict[str, float]:
    """Balanced accuracy of a linear probe of each of *columns*."""
    labels = [PROBES[c][0] for c in columns]
    device = 'cuda' if args.device == 'cuda' else 'cpu'
    results = {}
    train = extract_features(
        task, data['train'], MODALITIES, label_keys=labels, device=device
    )
    test = extract_features(
        task, data['test'], MODALITIES, label_keys=labels, device=device
    )
    for column, label in zip(columns, labels, strict=True):
        result = linear_probe(
            train[0],
            train[1][label],
            test[0],
            test[1][label],
            cs=args.cs,
            seed=args.data_seed,
            max_iter=500,
            class_weight='balanced',
        )
        results[column] = result.balanced_accuracy
        if result.auroc is not None:
            results[f'{column}_auroc'] = result.auroc
    return results


def one_hot_features(data: BimodalTrifeature, joint: bool) -> np.ndarray:
    """Oracle features: one-hot factors of each image, late-fused.

    With *joint*, also the one-hot of the pair (texture 1, colour 2), the
    interaction S asks about.
    """
    labels = data.labels
    keys = ['shape', 'texture1', 'colour1', 'texture2', 'colour2']
    parts = [np.eye(10)[labels[k].numpy()] for k in keys]
    if joint:
        pair = labels['texture1'] * 10 + labels['colour2']
        parts.append(np.eye(100)[pair.numpy()])
    return np.concatenate(parts, axis=1)


def oracle_rows(
    data: dict[str, BimodalTrifeature], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The probes on known factors: what a representation could reach.

    Late fusion of one-hot factors holds every shape, texture and colour but
    not their interaction (S = 50 for a linear probe); adding the joint
    (texture 1, colour 2) one-hot makes S linear (S = 100).
    """
    rows = []
    for name, joint in (('Oracle: one-hot, late', False), ('Oracle: + joint', True)):
        start = time.perf_counter()
        train, test = (one_hot_features(data[s], joint) for s in ('train', 'test'))
        row: dict[str, Any] = {'method': name, 'seed': args.seed_offset}
        for column, (label, _) in PROBES.items():
            result = linear_probe(
                train,
                data['train'].labels[label].numpy(),
                test,
                data['test'].labels[label].numpy(),
                cs=args.cs,
                seed=args.data_seed,
                max_iter=500,
                class_weight='balanced',
            )
            row[column] = result.balanced_accuracy
            if result.auroc is not None:
                row[f'{column}_auroc'] = result.auroc
        row['seconds'] = time.perf_counter() - start
        rows.append(row)
    return rows


def learnability(args: argparse.Namespace, steps: int) -> dict[str, float]:
    """Supervised shape and texture accuracy of the benchmark's encoder.

    Before self-supervision is asked to find shape and texture, a supervised
    classifier (the same ``convnet_small``, a linear head per factor) trained
    on augmented views of image 1 of the training pairs must find them in
    augmented views of the held-out combinations' pairs.

    Returns:
        Test accuracy of each factor, in [0, 1].
    """
    seed_everything(args.seed_offset, verbose=False)
    encoder = timm.create_model(
        'convnet_small', in_chans=3, num_classes=0, widths=widths(args)
    )
    heads = torch.nn.ModuleDict(
        {f: torch.nn.Linear(encoder.num_features, 10) for f in ('shape', 'texture1')}
    )
    params = [*encoder.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    augment = trifeature_augmentation(args.size)
    train = BimodalTrifeature(
        'train', num_pairs=args.pairs, size=args.size, seed=args.data_seed
    )
    test = BimodalTrifeature(
        'test', num_pairs=args.test_pairs, size=args.size, seed=args.data_seed
    )

    def batch(data: BimodalTrifeature, index: Tensor) -> tuple[Tensor, dict]:
        samples = [data[int(i)] for i in index]
        x = torch.stack([s['image1'] for s in samples]).float() / 255
        labels = {f: torch.stack([s[f] for s in samples]) for f in heads}
        return augment(x), labels

    for _ in range(steps):
        x, labels = batch(train, torch.randint(len(train), (args.batch_size,)))
        features = encoder(x)
        loss = sum(
            torch.nn.functional.cross_entropy(heads[f](features), labels[f])
            for f in heads
        )
        optimizer.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        optimizer.step()
    correct = dict.fromkeys(heads, 0.0)
    with torch.no_grad():
        for index in torch.arange(len(test)).split(256):
            x, labels = batch(test, index)
            features = encoder(x)
            for f in heads:
                hits = heads[f](features).argmax(1) == labels[f]
                correct[f] += float(hits.sum())
    return {f: c / len(test) for f, c in correct.items()}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every method, every seed; one row of scores each."""
    builders = methods(args)
    chosen = args.methods or DEFAULT_METHODS
    unknown = sorted(set(chosen) - set(builders))
    if unknown:
        msg = f'unknown methods {unknown}; choose from {sorted(builders)}'
        raise ValueError(msg)
    builders = {k: builders[k] for k in chosen}
    data = probe_sets(args)
    rows = [] if args.methods else oracle_rows(data, args)
    for seed in range(args.seed_offset, args.seed_offset + args.seeds):
        for name, build in builders.items():
            start = time.perf_counter()
            steps = 0 if name == 'Random init' else args.steps
            local = argparse.Namespace(**{**vars(args), 'steps': steps})
            task = pretrain(build, local, seed, biased=False, name=name)
            row: dict[str, Any] = {'method': name, 'seed': seed}
            row.update(score(task, data, ['R', 'U1', 'U2'], args))
            if args.no_synergy:
                row.update({'S': math.nan, 'S_auroc': math.nan})
            else:
                task = pretrain(build, local, seed, biased=True, name=name)
                row.update(score(task, data, ['S'], args))
            row['seconds'] = time.perf_counter() - start
            rows.append(row)
            print(
                f'seed {seed} {name:<13s} '
                + ' '.join(f'{c} {row[c]:.3f}' for c in COLUMNS)
                + f'  ({row["seconds"]:.0f} s)',
                flush=True,
            )
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and standard deviation over the seeds, per method and probe."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for name in dict.fromkeys(r['method'] for r in rows):
        mine = [r for r in rows if r['method'] == name]
        out[name] = {}
        for column in COLUMNS:
            values = [100 * r[column] for r in mine if not math.isnan(r[column])]
            if not values:  # a --no-synergy run has no S
                out[name][column] = (math.nan, math.nan)
                continue
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            out[name][column] = (statistics.fmean(values), spread)
    return out


def table(summary: dict[str, dict[str, tuple[float, float]]]) -> str:
    """A Markdown table of balanced accuracies, mean ± std in %."""
    lines = [
        '| method | ' + ' | '.join(COLUMNS) + ' |',
        '| --- | ' + ' | '.join('---' for _ in COLUMNS) + ' |',
    ]
    for name, scores in summary.items():
        cells = [
            'n/a' if math.isnan(m) else f'{m:.1f} ± {s:.1f}' for m, s in scores.values()
        ]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    chance = ' | '.join(f'{100 * CHANCE[c]:.0f}' for c in COLUMNS)
    lines.append(f'| chance | {chance} |')
    return '\n'.join(lines)


def plot(summary: dict[str, dict[str, tuple[float, float]]], path: Path) -> None:
    """Grouped bars: one group per probe, one bar per method, with spreads."""
    names = list(summary)
    fig, ax = plt.subplots(figsize=(7.0, 3.2), constrained_layout=True)
    width = 0.8 / len(names)
    cmap = plt.get_cmap('tab10')
    for i, name in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(PROBES))]
        means = [np.nan_to_num(summary[name][c][0]) for c in PROBES]
        spreads = [np.nan_to_num(summary[name][c][1]) for c in PROBES]
        ax.bar(
            xs, means, width, yerr=spreads, label=name, color=cmap(i % 10), capsize=2
        )
    for j, column in enumerate(PROBES):
        ax.hlines(
            100 * CHANCE[column],
            j - 0.45,
            j + 0.45,
            colors='black',
            linestyles='dashed',
            linewidth=0.8,
            label='chance' if j == 0 else None,
        )
    ax.set_xticks(range(len(PROBES)))
    ax.set_xticklabels(['R (shape)', 'U1 (texture 1)', 'U2 (texture 2)', 'S (synergy)'])
    ax.set_ylabel('balanced accuracy (%)')
    ax.set_ylim(0, 100)
    ax.set_title('Bimodal Trifeature: linear probes of frozen representations')
    ax.legend(fontsize=7, ncol=2, loc='upper center', bbox_to_anchor=(0.5, -0.15))
    fig.savefig(path, dpi=200)
    plt.close(fig)


def read_rows(paths: list[Path]) -> list[dict[str, Any]]:
    """The rows of earlier runs' ``trifeature.csv`` files (one per seed, say).

    Raises:
        ValueError: If two files hold the same method and seed.
    """
    rows: list[dict[str, Any]] = []
    for path in paths:
        with path.open(newline='') as f:
            for row in csv.DictReader(f):
                numbers = {c: float(row[c]) for c in (*COLUMNS, 'seconds')}
                rows.append(
                    {'method': row['method'], 'seed': int(row['seed']), **numbers}
                )
    keys = [(r['method'], r['seed']) for r in rows]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        msg = f'method and seed in more than one file: {repeated}'
        raise ValueError(msg)
    return rows


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments; ``--quick`` shrinks everything for tests."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument(
        '--seed-offset', type=int, default=0, help='first training seed'
    )
    parser.add_argument('--steps', type=int, default=500)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--pairs', type=int, default=10000, help='pretraining pairs')
    parser.add_argument('--probe-pairs', type=int, default=10000)
    parser.add_argument('--test-pairs', type=int, default=4096)
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--projector-dim', type=int, default=256)
    parser.add_argument(
        '--width', type=int, default=8, help='channels of the first encoder stage'
    )
    parser.add_argument(
        '--cs',
        type=float,
        nargs='+',
        default=[10.0**k for k in range(-4, 5)],
        help='probe Cs (default 1e-4 ... 1e4)',
    )
    parser.add_argument(
        '--fusion-dim', type=int, default=64, help="CoMM's fusion width"
    )
    parser.add_argument('--common-share', type=float, default=0.5)
    parser.add_argument('--lr', type=float, default=3e-3)
    parser.add_argument('--weight-decay', type=float, default=1e-4)
    parser.add_argument(
        '--lr-schedule', default='cosine', choices=['cosine', 'constant']
    )
    parser.add_argument('--data-seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=0)
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--methods',
        nargs='*',
        help=f'the methods to run (default: {", ".join(DEFAULT_METHODS)}; '
        'no oracle rows then)',
    )
    parser.add_argument(
        '--no-synergy',
        action='store_true',
        help='probe R, U1 and U2 only: skip the second (biased) pretraining '
        'that S needs, which halves the time (S is left empty)',
    )
    parser.add_argument(
        '--log-dir',
        type=Path,
        help='write every loss term of every pretraining to '
        'LOG_DIR/<method>/seed<k>_<unbiased|biased>/metrics.csv',
    )
    parser.add_argument(
        '--log-every', type=int, default=50, help='logging interval in steps'
    )
    parser.add_argument('--out', type=Path, default=Path('benchmarks/results'))
    parser.add_argument(
        '--quick', action='store_true', help='tiny sizes (seconds), for tests'
    )
    parser.add_argument(
        '--combine',
        type=Path,
        nargs='+',
        metavar='CSV',
        help='train nothing: summarise the trifeature.csv of earlier runs '
        '(e.g. one process per seed) into one table, CSV and figure in --out',
    )
    parser.add_argument(
        '--learnability',
        type=int,
        metavar='STEPS',
        help='only check that a supervised encoder learns shape and texture '
        'from augmented renders in STEPS steps (PASS at >= 90%% each)',
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.batch_size = 1, 2, 16
        args.pairs, args.probe_pairs, args.test_pairs = 64, 120, 80
        args.projector_dim, args.size, args.width = 32, 16, 4
        args.fusion_dim, args.cs = 16, [0.1, 1.0]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; write the CSV and the figure."""
    args = parse(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.perf_counter()
    if args.learnability is not None:
        accuracy = learnability(args, args.learnability)
        ok = min(accuracy.values()) >= 0.9
        cells = ', '.join(f'{f} {100 * a:.1f} %' for f, a in accuracy.items())
        minutes = (time.perf_counter() - start) / 60
        print(f'supervised, held-out combinations: {cells} ({minutes:.1f} min)')
        print(f'[{"PASS" if ok else "FAIL"}: both >= 90 %]')
        return 0 if ok else 1
    rows = read_rows(args.combine) if args.combine else run(args)
    summary = summarise(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / 'trifeature.csv').open('w', newline='') as f:
        writer = csv.DictWriter(f, ['method', 'seed', *COLUMNS, 'seconds'])
        writer.writeheader()
        writer.writerows(rows)
    plot(summary, args.out / 'trifeature.png')
    minutes = (time.perf_counter() - start) / 60
    print()
    print(table(summary))
    seeds = len({r['seed'] for r in rows})
    trained = sum(r['seconds'] for r in rows) / 60
    print(
        f'\n{seeds} seed(s), {args.steps} steps of {args.batch_size} pairs, '
        f'{args.size} px, {minutes:.1f} min ({trained:.1f} min of training and '
        f'probing in the rows); {args.out / "trifeature.csv"}, '
        f'{args.out / "trifeature.png"}'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
