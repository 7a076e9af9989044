import inspect
from pathlib import Path

import pytest
import yaml

from torchgeo_decur.cli import build_parser, commands, legacy_arguments, main
from torchgeo_decur.datasets import SSL4EOS12Pair


def options(parser: object, command: str) -> dict[str, object]:
    """The options of one subcommand: {destination: action}."""
    sub = parser._subcommands_action._name_parser_map[command]  # type: ignore[attr-defined]
    return {a.dest: a for a in sub._actions}


def test_every_parameter_is_an_option() -> None:
    """Each subcommand's options are the parameters of the function it runs,
    with their defaults and docstring help; none is missing or extra."""
    parser = build_parser()
    for command, function in commands().items():
        found = options(parser, command)
        parameters = inspect.signature(function).parameters
        assert set(parameters) <= set(found), (command, set(parameters) - set(found))
        extra = set(found) - set(parameters) - {'help', 'config', 'print_config'}
        assert not {e for e in extra if not e.endswith('.help')}, (command, extra)
        for name, parameter in parameters.items():
            action = found[name]
            if parameter.default is not parameter.empty:
                assert action.default == parameter.default, (command, name)
            assert action.help, (command, name)  # from the docstring


def test_parser_has_the_commands() -> None:
    parser = build_parser()
    config = parser.parse_args(['export', '--checkpoint', 'a.ckpt', '--out', 'dir'])
    export = config['export']
    assert (export.checkpoint, export.out, export.overwrite) == ('a.ckpt', 'dir', False)
    with pytest.raises(Exception, match='out'):
        parser.parse_args(['export', '--checkpoint', 'a.ckpt'])  # --out is required


def test_spellings_of_0_1(tmp_path: Path) -> None:
    """0.1's command lines are turned into today's options."""
    functions = commands()

    def convert(command: str, *argv: str) -> list[str]:
        return legacy_arguments(command, list(argv), functions[command])

    assert convert('export', 'a.ckpt', '--out', 'o', '--overwrite') == [
        '--checkpoint',
        'a.ckpt',
        '--out',
        'o',
        '--overwrite=true',
    ]
    assert convert('demo', '--batch-size', '8', '--no-progress', '--output', 'x') == [
        '--batch_size',
        '8',
        '--progress=false',
        '--out',
        'x',
    ]
    # export --torchgeo: the per-modality files TorchGeo's tasks load
    assert convert('export', 'run.ckpt', '--out', 'o', '--torchgeo') == [
        '--checkpoint',
        'run.ckpt',
        '--out',
        'o',
        '--torchgeo_checkpoints=true',
    ]
    assert convert('config', 'write', 'decur_s1s2', '--out', 'x.yaml') == [
        '--action',
        'write',
        '--name',
        'decur_s1s2',
        '--out',
        'x.yaml',
    ]
    assert convert('demo-data', 'root', '--locations', '3') == [
        '--root',
        'root',
        '--num_locations',
        '3',
    ]
    assert convert('sweep-common', '--shares', '0.5', '0.75', '--pretrain-arg=--a=1')[
        :3
    ] == ['--shares', '[0.5, 0.75]', '--pretrain_args+=--a=1']
    # --config: 0.1's data config when it is a LightningCLI YAML, else options
    lightning = tmp_path / 'data.yaml'
    lightning.write_text(yaml.safe_dump({'data': {'class_path': 'x'}}))
    own = tmp_path / 'explain.yaml'
    own.write_text(yaml.safe_dump({'samples': 4}))
    assert convert('explain', '--config', str(lightning))[0] == '--data_config'
    assert convert('explain', '--config', str(own))[0] == '--config'


def test_config_file_of_a_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / 'demo'
    config = tmp_path / 'demo-data.yaml'
    config.write_text(yaml.safe_dump({'root': str(root), 'num_locations': 2}))
    assert main(['demo-data', '--config', str(config), '--size', '16']) == 0
    assert len(SSL4EOS12Pair(root)) == 2
    assert str(root) in capsys.readouterr().out


def test_demo_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / 'demo'
    argv = ['demo-data', str(root), '--locations', '3', '--size', '32']
    assert main(argv) == 0
    assert len(SSL4EOS12Pair(root)) == 3
    assert main(argv) == 0  # second call: the data is there already
    assert str(root) in capsys.readouterr().out
    # other parameters: refused, the flag named, nothing replaced
    assert main(['demo-data', str(root), '--locations', '4', '--size', '32']) == 2
    assert '--overwrite' in capsys.readouterr().err
    assert len(SSL4EOS12Pair(root)) == 3
    assert (
        main(
            ['demo-data', str(root), '--locations', '4', '--size', '32', '--overwrite']
        )
        == 0
    )
    assert len(SSL4EOS12Pair(root)) == 4


def test_demo_data_defaults_are_the_demos() -> None:
    """One default size: `demo-data`, the Python function and the demo agree."""
    from torchgeo_decur.lab.demo import DEMO_SETTINGS

    parser = build_parser()._subcommands_action._name_parser_map['demo-data']
    defaults = {a.dest: a.default for a in parser._actions}
    assert defaults['num_locations'] == DEMO_SETTINGS.locations == 450
    assert defaults['size'] == DEMO_SETTINGS.size == 48


def test_demo_data_refuses_foreign_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / 'mine.txt').write_text('user data')
    assert main(['demo-data', str(tmp_path), '--locations', '2']) == 2
    assert 'error' in capsys.readouterr().err
    assert (tmp_path / 'mine.txt').read_text() == 'user data'
