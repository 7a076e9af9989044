"""The ``torchgeo-decur`` command: what ``torchgeo`` itself lacks.

Training and evaluation go through TorchGeo's own CLI (``torchgeo fit --config
conf/decur_s1s2.yaml``). This command runs a few functions of the package,
each a subcommand whose options, defaults and help are generated from the
function's signature and docstring (jsonargparse, as LightningCLI does):
``--<parameter> <value>`` for each parameter, and ``--config <yaml>`` with any
of them.

The spellings of 0.1 keep working: ``--batch-size`` for ``--batch_size``,
``--no-progress`` for ``--progress false``, a bare ``--overwrite`` for
``--overwrite true``, several values after a list option, and the renamed
arguments in :data:`RENAMED`.

.. versionadded:: 0.1
"""

import pickle
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser

__all__ = (
    'COMMANDS',
    'POSITIONALS',
    'RENAMED',
    'build_parser',
    'commands',
    'main',
)

#: The subcommands and the functions they run, as ``module:function``.
COMMANDS = {
    'demo': 'torchgeo_decur.lab.demo:demo',
    'config': 'torchgeo_decur.configs:config',
    'demo-data': 'torchgeo_decur.lab.world:make_ssl4eo_s12_demo',
    'export': 'torchgeo_decur.export:export_checkpoint',
    'paper-table': 'torchgeo_decur.paper:paper_table',
    'explain': 'torchgeo_decur.explain:explain',
    'sweep-common': 'torchgeo_decur.lab.sweep:sweep_common_share',
}

#: Arguments of 0.1 that have another name now, per subcommand. ``'*'`` is a
#: positional argument; ``--config`` is renamed unless its file holds the
#: subcommand's options (a LightningCLI config has ``data:``, ``model:`` or
#: ``trainer:`` at the top).
RENAMED = {
    'demo': {'--output': '--out'},
    'demo-data': {'*': '--root', '--locations': '--num_locations'},
    'export': {'*': '--checkpoint', '--torchgeo': '--torchgeo_checkpoints'},
    'explain': {'--config': '--data_config'},
    'sweep-common': {
        '--config': '--pretrain',
        '--pretrain-arg': '--pretrain_args+',
        '--downstream-arg': '--downstream_args+',
    },
}


#: Subcommands whose leading positional arguments stand for options, in order
#: (``torchgeo-decur config path decur_s1s2``).
POSITIONALS = {'config': ('--action', '--name'), 'paper-table': ('--runs',)}


def commands() -> dict[str, Callable[..., Any]]:
    """The function of each subcommand, imported.

    Returns:
        ``{subcommand: function}``.
    """
    out = {}
    for name, target in COMMANDS.items():
        module, _, function = target.partition(':')
        out[name] = getattr(__import__(module, fromlist=[function]), function)
    return out


def build_parser() -> ArgumentParser:
    """Build the parser of ``torchgeo-decur``, one subcommand per function.

    Returns:
        The parser.
    """
    parser = ArgumentParser(
        prog='torchgeo-decur',
        description='DeCUR multimodal self-supervised learning for TorchGeo. '
        'Train with `torchgeo fit --config conf/decur_s1s2.yaml`.',
        exit_on_error=False,
    )
    subcommands = parser.add_subcommands(dest='command')
    for name, function in commands().items():
        sub = ArgumentParser(exit_on_error=False)
        sub.add_argument('--config', action=ActionConfigFile, help='YAML of options')
        sub.add_function_arguments(function, as_positional=False)
        summary = (function.__doc__ or '').strip().splitlines()[0]
        subcommands.add_subcommand(name, sub, help=summary)
    return parser


def _kinds(function: Callable[..., Any]) -> tuple[set[str], set[str]]:
    """The boolean and the list parameters of a function."""
    flags, lists = set(), set()
    for name, hint in typing.get_type_hints(function).items():
        origins = {typing.get_origin(t) for t in (hint, *typing.get_args(hint))}
        if hint is bool:
            flags.add(name)
        elif origins & {list, Sequence, typing.Sequence}:
            lists.add(name)
    return flags, lists


def _is_options_file(path: str) -> bool:
    """Whether *path* is a YAML of a subcommand's options (not a LightningCLI one)."""
    try:
        content = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    lightning = {'data', 'model', 'trainer'}
    return isinstance(content, dict) and not lightning & set(content)


def _rename(command: str, argv: list[str]) -> list[str]:
    """Rename the 0.1 arguments of one subcommand (see :data:`RENAMED`)."""
    renamed, out = RENAMED.get(command, {}), []
    positional = list(POSITIONALS.get(command, ()))
    leading = 0
    while leading < len(argv) and positional and not argv[leading].startswith('-'):
        out += [positional.pop(0), argv[leading]]
        leading += 1
    argv = argv[leading:]
    for i, token in enumerate(argv):
        option, eq, value = token.partition('=')
        new = renamed.get(option)
        if i == 0 and '*' in renamed and not token.startswith('-'):
            out += [renamed['*'], token]  # 0.1's positional argument
        elif option == '--config' and new:
            path = value if eq else (argv[i + 1] if i + 1 < len(argv) else '')
            out.append(token if _is_options_file(path) else new + eq + value)
        else:
            out.append(new + eq + value if new else token)
    return out


def legacy_arguments(
    command: str, argv: Sequence[str], function: Callable[..., Any]
) -> list[str]:
    """Turn 0.1's spellings of a subcommand's arguments into today's.

    Args:
        command: The subcommand.
        argv: Its arguments.
        function: The function it runs.

    Returns:
        The arguments, as the generated parser takes them.

    .. versionadded:: 0.2
    """
    flags, lists = _kinds(function)
    argv = _rename(command, list(argv))
    out: list[str] = []
    i = 0
    while i < len(argv):
        token, i = argv[i], i + 1
        option, eq, value = token.partition('=')
        if not option.startswith('--'):
            out.append(token)
            continue
        name, values = option[2:].replace('-', '_'), []
        while not eq and i < len(argv) and not argv[i].startswith('--'):
            values.append(argv[i])
            i += 1
        if not eq and not values and name in flags:
            out.append(f'--{name}=true')
        elif not eq and not values and name[:3] == 'no_' and name[3:] in flags:
            out.append(f'--{name[3:]}=false')
        elif name in lists and values and not values[0].startswith('['):
            out += [f'--{name}', f'[{", ".join(values)}]']
        else:
            out += [f'--{name}{eq}{value}', *values]
    return out


def _report(command: str, result: Any, kwargs: dict[str, Any]) -> None:
    """Print what a subcommand did (the demo prints its own table)."""
    match command:
        case 'config' | 'paper-table':
            pass  # prints what it was asked for
        case 'demo-data':
            print(f'SSL4EO-S12-format demo data in {result}')
        case 'export':
            for kind, path in result.items():
                print(f'{kind}: {path}')
        case 'explain':
            from .explain import FIGURES, SUMMARY

            print(f'explained {result["samples"]} pairs of {kwargs["data_config"]}:')
            for name in [*FIGURES.values(), SUMMARY]:
                print(f'  {Path(kwargs["out"]) / name}')
        case 'sweep-common':
            metric = kwargs['metric']
            names = (
                [metric]
                if metric
                else sorted({k for r in result for k in r} - {'share'})
            )
            print('\nshare  ' + '  '.join(f'{n:>24s}' for n in names))
            for row in result:
                cells = '  '.join(f'{row.get(n, float("nan")):>24.4f}' for n in names)
                print(f'{row["share"]:<5g}  {cells}')
            if metric:
                best = max(result, key=lambda r: r[metric])
                print(f'\nbest share by {metric}: {best["share"]:g}')
            out = Path(kwargs['out'])
            print(f'results: {out / "sweep.csv"}, {out / "sweep.json"}')


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``torchgeo-decur`` command.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or 2 for bad arguments and errors of the data,
        files, output folders or checkpoints, which are printed.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    functions = commands()
    if argv and argv[0] in functions:
        argv[1:] = legacy_arguments(argv[0], argv[1:], functions[argv[0]])
    parser = build_parser()
    try:
        config = parser.parse_args(argv)
    except ArgumentError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    try:
        command = config['command']
        kwargs = {k: v for k, v in vars(config[command]).items() if k != 'config'}
        _report(command, functions[command](**kwargs), kwargs)
    except (OSError, pickle.UnpicklingError, ValueError, TypeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
