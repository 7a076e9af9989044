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
DEMO_CONFIG = Path('conf') / 'decur_s1s2_demo.yaml'
DEMO_OUTPUT = Path('output') / 'demo'


def _demo_data(args: argparse.Namespace) -> int:
    from .datasets.demo import make_ssl4eo_s12_demo

    root = make_ssl4eo_s12_demo(
        Path(args.root), num_locations=args.locations, size=args.size, seed=args.seed
    )
    print(f'SSL4EO-S12-format demo data in {root}')
    return 0


def _newest_checkpoint(root: Path) -> Path | None:
    checkpoints = sorted(root.rglob('*.ckpt'), key=lambda p: p.stat().st_mtime)
    return checkpoints[-1] if checkpoints else None


def _demo(args: argparse.Namespace) -> int:
    from torchgeo.main import main as torchgeo_main

    from .datasets.demo import make_ssl4eo_s12_demo

    config = Path(args.config)
    if not config.is_file():
        print(f'error: demo config {config} not found (run from the repository)')
        return 2
    root = make_ssl4eo_s12_demo(Path(args.root))
    print(f'Demo data: {root}')
    before = _newest_checkpoint(Path(args.output))
    torchgeo_main(
        [
            'fit',
            '--config',
            str(config),
            '--data.init_args.root',
            str(root),
            '--trainer.default_root_dir',
            str(args.output),
            *args.extra,
        ]
    )
    after = _newest_checkpoint(Path(args.output))
    if after is None or after == before:
        print('error: the demo run wrote no checkpoint', file=sys.stderr)
        return 1
    print(f'\nDone. Pretrained DeCUR checkpoint: {after}')
    print(
        f'Export the encoders with: torchgeo-decur export {after} --out {after.parent}'
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
        help='generate demo data (once) and pretrain a small DeCUR model; '
        'further arguments go to `torchgeo fit` (e.g. --trainer.max_epochs=2)',
    )
    demo.add_argument('--root', default=str(DEMO_DATA), help='demo data folder')
    demo.add_argument('--config', default=str(DEMO_CONFIG), help='LightningCLI YAML')
    demo.add_argument('--output', default=str(DEMO_OUTPUT), help='run folder')
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
