"""The ``torchgeo-decur`` command: what ``torchgeo`` itself lacks.

Training and evaluation go through TorchGeo's own CLI (``torchgeo fit --config
conf/decur_s1s2.yaml``); this command adds the demo, demo data generation, the
export of pretrained encoders, the common-share sweep and the
explainability report.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

#: Where ``torchgeo-decur demo`` keeps its generated data and its runs.
DEMO_DATA = Path('data') / 'ssl4eo-s12-demo'
DEMO_OUTPUT = Path('output') / 'demo'


def _demo_data(args: argparse.Namespace) -> int:
    from .datasets.demo import make_ssl4eo_s12_demo

    root = make_ssl4eo_s12_demo(
        Path(args.root), num_locations=args.locations, size=args.size, seed=args.seed
    )
    print(f'SSL4EO-S12-format demo data in {root}')
    return 0


def _demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .demo import DEMO_SETTINGS, run_demo

    if args.extra:
        print(f'error: unrecognized arguments: {" ".join(args.extra)}', file=sys.stderr)
        return 2
    changes = {
        'locations': args.locations,
        'size': args.size,
        'steps': args.steps,
        'batch_size': args.batch_size,
        'seed': args.seed,
        'data_seed': args.data_seed,
        'common_share': args.common_share,
    }
    settings = replace(
        DEMO_SETTINGS, **{k: v for k, v in changes.items() if v is not None}
    )
    run = run_demo(
        args.root,
        args.out,
        settings,
        progress=not args.no_progress,
        figures=not args.no_figures,
        threads=args.threads,
    )
    print(
        '\nLinear probes of the frozen encoders (pooled features of both, '
        'concatenated), balanced accuracy (%) on every season of '
        f'{run["test_locations"]} held-out locations. Both methods: same '
        f'encoders, augmentation and budget ({settings.steps} steps of '
        f'{settings.batch_size}); DeCUR common share {settings.common_share:g}.\n'
    )
    print(run['table'])
    print(f'\nDone in {run["seconds"]["total"]:.0f} s. Everything is in {run["out"]}:')
    for name, path in run['files'].items():
        print(f'  {name}: {path}')
    decur = run['files'].get('DeCUR')
    if decur is not None:
        print(
            f'Export the DeCUR encoders with: torchgeo-decur export {decur} '
            f'--out {run["out"] / "encoders"}'
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_checkpoint

    written = export_checkpoint(args.checkpoint, args.out, overwrite=args.overwrite)
    for kind, path in written.items():
        print(f'{kind}: {path}')
    return 0


def _explain(args: argparse.Namespace) -> int:
    from .explain import FIGURES, SUMMARY, explain

    summary = explain(
        args.checkpoint,
        args.config,
        args.out,
        samples=args.samples,
        compare=args.compare,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        ig_steps=args.ig_steps,
    )
    out = Path(args.out)
    print(f'explained {summary["samples"]} pairs of {args.config}:')
    for name in [*FIGURES.values(), SUMMARY]:
        print(f'  {out / name}')
    return 0


def _sweep_common(args: argparse.Namespace) -> int:
    from .sweep import sweep_common_share

    rows = sweep_common_share(
        args.config,
        args.downstream,
        args.shares,
        args.out,
        metric=args.metric,
        pretrain_args=args.pretrain_arg or (),
        downstream_args=args.downstream_arg or (),
        test=args.test,
        overwrite=args.overwrite,
    )
    metric = args.metric
    names = [metric] if metric else sorted({k for r in rows for k in r} - {'share'})
    print('\nshare  ' + '  '.join(f'{n:>24s}' for n in names))
    for row in rows:
        values = '  '.join(f'{row.get(n, float("nan")):>24.4f}' for n in names)
        print(f'{row["share"]:<5g}  {values}')
    if metric:
        best = max(rows, key=lambda r: r[metric])
        print(f'\nbest share by {metric}: {best["share"]:g}')
    print(f'results: {Path(args.out) / "sweep.csv"}, {Path(args.out) / "sweep.json"}')
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``torchgeo-decur``.

    Returns:
        The parser, one sub-command per action.
    """
    parser = argparse.ArgumentParser(
        prog='torchgeo-decur',
        description='DeCUR multimodal self-supervised learning for TorchGeo. '
        'Train with `torchgeo fit --config conf/decur_s1s2.yaml`.',
    )
    sub = parser.add_subparsers(dest='command', required=True)

    demo = sub.add_parser(
        'demo',
        help='pretrain DeCUR and cross-modal Barlow Twins on generated SAR-optical '
        'data with known factors, then linear-probe them (a few minutes on a CPU)',
        description='Generates SSL4EO-S12-format Sentinel-1/2 data (once) whose '
        'locations have a land cover (seen by both sensors), a surface roughness '
        '(SAR only) and a soil mineral (optical only); pretrains DeCUR and '
        'cross-modal Barlow Twins with the same budget; linear-probes each factor '
        'from the frozen encoders and from random ones; prints the table and '
        'writes it, the checkpoints and figures to a new run-<n> folder in --out.',
    )
    demo.add_argument('--root', default=str(DEMO_DATA), help='demo data folder')
    demo.add_argument(
        '--out',
        '--output',
        default=str(DEMO_OUTPUT),
        help='folder of the demo runs; each run writes a new run-<n> folder in it '
        f'(default: {DEMO_OUTPUT})',
    )
    demo.add_argument('--locations', type=int, help='generated locations (450)')
    demo.add_argument('--size', type=int, help='tile size in pixels (48)')
    demo.add_argument('--data-seed', type=int, help='seed of the data (0)')
    demo.add_argument('--steps', type=int, help='pretraining steps per method (400)')
    demo.add_argument('--batch-size', type=int, help='pretraining batch size (64)')
    demo.add_argument('--seed', type=int, help='seed of the pretraining (0)')
    demo.add_argument(
        '--common-share', type=float, help="share of DeCUR's common dimensions (0.5)"
    )
    demo.add_argument(
        '--threads',
        type=int,
        default=1,
        help='CPU threads of torch (default 1; 0: torch default)',
    )
    demo.add_argument('--no-progress', action='store_true', help='no progress bars')
    demo.add_argument('--no-figures', action='store_true', help='no figures')
    demo.set_defaults(func=_demo)

    data = sub.add_parser(
        'demo-data', help='write a small generated SSL4EO-S12-format dataset'
    )
    data.add_argument('root', help='output folder (must be new or a demo folder)')
    data.add_argument('--locations', type=int, default=256)
    data.add_argument('--size', type=int, default=264)
    data.add_argument('--seed', type=int, default=0)
    data.set_defaults(func=_demo_data)

    export = sub.add_parser(
        'export', help='export per-modality encoders from a DeCUR checkpoint'
    )
    export.add_argument('checkpoint', help='DeCUR Lightning checkpoint (.ckpt)')
    export.add_argument('--out', required=True, help='output folder')
    export.add_argument(
        '--overwrite', action='store_true', help='replace existing exported files'
    )
    export.set_defaults(func=_export)

    explain = sub.add_parser(
        'explain',
        help='figures that explain a DeCUR checkpoint: cross-modal alignment, '
        't-SNE, GradCAM, spatial and spectral saliency',
        description='Alignment histogram (1 - C_ii)^2 of the embedding '
        'dimensions, t-SNE of the dimensions, GradCAM of the common and unique '
        'embeddings, the cross-modal overlap of the GradCAM maps and the '
        'Integrated Gradients importance of each band, as PNG figures and '
        'summary.json in --out.',
    )
    explain.add_argument(
        '--checkpoint', required=True, help='DeCUR (or baseline) Lightning checkpoint'
    )
    explain.add_argument(
        '--config', required=True, help='LightningCLI YAML whose data: section to read'
    )
    explain.add_argument('--out', required=True, help='output folder')
    explain.add_argument(
        '--samples', type=int, default=256, help='pairs to explain (default: 256)'
    )
    explain.add_argument(
        '--compare',
        help='second checkpoint for the alignment histogram (e.g. the cross-modal '
        'Barlow Twins baseline)',
    )
    explain.add_argument(
        '--overwrite', action='store_true', help='replace an earlier report in --out'
    )
    explain.add_argument(
        '--batch-size', type=int, default=64, help='pairs per batch (default: 64)'
    )
    explain.add_argument(
        '--seed', type=int, default=0, help='seed of the pairs and the t-SNE'
    )
    explain.add_argument(
        '--ig-steps',
        type=int,
        default=32,
        help='steps of Integrated Gradients (default: 32)',
    )
    explain.add_argument('--device', help='cpu, cuda, ... (default: cuda if any)')
    explain.set_defaults(func=_explain)

    sweep = sub.add_parser(
        'sweep-common',
        help='pretrain DeCUR per common share and score each downstream',
        description="The paper's grid search over the share of common "
        'dimensions: for each share, `torchgeo fit` the pretraining config with '
        'that common_share, then fit and validate the downstream config from the '
        'pretrained checkpoint (its model takes it as `weights`).',
    )
    sweep.add_argument('--config', required=True, help='DeCUR pretraining YAML')
    sweep.add_argument(
        '--downstream', required=True, help='downstream YAML (model takes weights)'
    )
    sweep.add_argument(
        '--shares',
        type=float,
        nargs='+',
        default=[0.5, 0.75, 0.875, 1.0],
        help='shares of common dimensions (default: 0.5 0.75 0.875 1.0)',
    )
    sweep.add_argument('--out', required=True, help='output folder')
    sweep.add_argument('--metric', help='metric that picks the best share')
    sweep.add_argument(
        '--pretrain-arg',
        action='append',
        help='extra LightningCLI argument of the pretraining (repeatable), '
        'e.g. --pretrain-arg=--data.init_args.root=/data/ssl4eo-s12',
    )
    sweep.add_argument(
        '--downstream-arg',
        action='append',
        help='extra LightningCLI argument of the downstream run (repeatable)',
    )
    sweep.add_argument(
        '--test', action='store_true', help='test downstream instead of validating'
    )
    sweep.add_argument(
        '--overwrite', action='store_true', help='replace an earlier sweep in --out'
    )
    sweep.set_defaults(func=_sweep_common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``torchgeo-decur`` command.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != 'demo':
        parser.error(f'unrecognized arguments: {" ".join(extra)}')
    args.extra = extra
    try:
        status: int = args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return status


if __name__ == '__main__':
    sys.exit(main())
