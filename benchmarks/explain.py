"""Wall time of ``torchgeo-decur explain`` with its defaults, and empty maps.

Runs :func:`torchgeo_decur.explain.explain` in this process, as the CLI does,
on a checkpoint and a data config, and prints the wall time of the whole
report (loading, embedding, alignment, t-SNE, GradCAM, Integrated Gradients,
figures), the number of pairs and the GradCAM maps that are all zero.

Criteria: the report finishes within ``--limit`` seconds (3 minutes, issue
20), and no GradCAM map of any pair is all zero (an empty panel).

Usage (the ``make demo`` checkpoints, on the demo data they were trained on)::

    .venv/bin/python benchmarks/explain.py \\
        --checkpoint output/demo/run-001/decur.ckpt \\
        --compare output/demo/run-001/cross_modal_bt.ckpt \\
        --data-config conf/decur_s1s2_demo.yaml --out /tmp/explain-bench
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

import torchgeo_decur.lab  # noqa: F401  (registers convnet_small, the demo's encoder)
from torchgeo_decur.explain import DEFAULT_SAMPLES, explain


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', required=True, type=Path)
    parser.add_argument('--data-config', required=True, type=Path)
    parser.add_argument('--compare', type=Path, default=None)
    parser.add_argument('--out', type=Path, default=None, help='kept if given')
    parser.add_argument(
        '--samples',
        type=int,
        default=None,
        help=f'pairs; default the package default {DEFAULT_SAMPLES}',
    )
    parser.add_argument('--device', default=None)
    parser.add_argument('--limit', type=float, default=180.0, help='seconds')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Time one report; return 1 if a criterion fails."""
    args = parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix='explain-bench-'))
    start = time.perf_counter()
    summary = explain(
        args.checkpoint,
        args.data_config,
        out,
        samples=args.samples,
        compare=args.compare,
        overwrite=True,
        device=args.device,
        progress=False,
    )
    seconds = time.perf_counter() - start
    empty = {
        group: numbers['empty_maps']
        for group, numbers in summary['spatial_saliency'].items()
        if isinstance(numbers, dict)
    }
    result = {
        'checkpoint': str(args.checkpoint),
        'device': str(args.device or ('cuda' if torch.cuda.is_available() else 'cpu')),
        'threads': torch.get_num_threads(),
        'samples': summary['samples'],
        'ig_steps': 32,
        'seconds': round(seconds, 1),
        'empty_maps': empty,
    }
    print(json.dumps(result, indent=2))
    checks = {
        f'wall time {seconds:.1f} s <= {args.limit:.0f} s': seconds <= args.limit,
        f'no all-zero GradCAM map ({empty})': not any(empty.values()),
    }
    for name, ok in checks.items():
        print(f'{"PASS" if ok else "FAIL"}: {name}')
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if all(checks.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
