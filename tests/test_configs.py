"""Every transfer config runs `torchgeo fit` with fast_dev_run on the fixtures.

The DeCUR weights named in the configs are loaded through the real code path:
a checkpoint in the authors' layout sits in the torch hub cache under the URL's
file name, so nothing is downloaded.
"""

from pathlib import Path

import pytest
import yaml
from torchgeo.main import main as torchgeo_main

from .conftest import ROOT

TRANSFER = sorted((ROOT / 'conf' / 'transfer').glob('*.yaml'))
TORCHGEO = sorted((ROOT / 'conf' / 'torchgeo').glob('*.yaml'))
PAPER = sorted((ROOT / 'conf' / 'paper').glob('*.yaml'))


def test_every_paper_setting_has_a_config() -> None:
    names = {p.stem for p in TRANSFER}
    for ds, mods in (('bigearthnet', ('s1s2', 's1')), ('geonrw', ('rgbdem', 'rgb'))):
        for m in mods:
            for mode in ('linear', 'finetune'):
                for pct in (1, 100):
                    assert f'{ds}_{m}_{mode}_{pct}pct' in names
    for path in TRANSFER:
        config = yaml.safe_load(path.read_text())
        fraction = config['data']['init_args']['train_fraction']
        assert fraction == (0.01 if path.stem.endswith('_1pct') else 1.0)
        mode = config['model']['init_args']['mode']
        assert mode in path.stem


def test_every_paper_table_has_an_authors_protocol_config() -> None:
    """BigEarthNet-MM: S1, S2, S1+S2 x linear / fine-tune x 1% / 100%, each
    with the authors' protocol in the task and the data."""
    names = {p.stem for p in PAPER}
    for m in ('s1', 's2', 's1s2'):
        for mode in ('linear', 'finetune'):
            for pct in (1, 100):
                assert f'bigearthnet_{m}_{mode}_{pct}pct' in names
    for m in ('rgb', 'dem', 'rgbdem'):  # the authors' scripts fine-tune
        for pct in (1, 100):
            assert f'geonrw_{m}_finetune_{pct}pct' in names
    for dataset in ('sunrgbd', 'nyudv2'):  # CMX, as the authors' readme says
        assert f'{dataset}_rgbhha_finetune_100pct' in names
    for path in PAPER:
        config = yaml.safe_load(path.read_text())
        model, data = config['model']['init_args'], config['data']['init_args']
        assert model['protocol'] == data['protocol'] == 'authors'
        cmx = '_rgbhha_' in path.stem
        assert data['seed'] == 42 and data['batch_size'] == (8 if cmx else 64)
        if cmx:  # CMX's config.py and train.py
            assert model['decoder'] == 'cmx' and model['model'] == 'mit_b2'
            assert model['lr'] == 6e-5 and model['lr_schedule'] == 'warmup_poly'
            assert model['warmup_epochs'] == 10 and model['ignore_index'] == 255
            assert data['patch_size'] == [480, 640] and data['val_fraction'] == 0
        if path.stem.startswith('geonrw'):
            assert model['ignore_index'] == 0 and data['tile_size'] == 250
        fraction = 0.01 if path.stem.endswith('_1pct') else 1.0
        assert data['train_fraction'] == fraction and model['mode'] in path.stem


ALL_TRANSFER = TRANSFER + TORCHGEO + PAPER


@pytest.mark.parametrize(
    'config', ALL_TRANSFER, ids=[f'{p.parent.name}/{p.stem}' for p in ALL_TRANSFER]
)
def test_transfer_config_fast_dev_run(
    config: Path,
    hub_cache: Path,
    bigearthnet_root: Path,
    geonrw_root: Path,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    geonrw = config.stem.startswith('geonrw')
    root = geonrw_root if geonrw else bigearthnet_root
    rgbd = config.stem.split('_')[0] in ('sunrgbd', 'nyudv2')
    if rgbd:
        name = 'sunrgbd_root' if config.stem.startswith('sun') else 'nyuv2_root'
        root = request.getfixturevalue(name)
    args = [
        'fit',
        '--config',
        str(config),
        '--data.init_args.root',
        str(root),
        '--data.init_args.num_workers=0',
        '--data.init_args.batch_size=2',
        '--trainer.fast_dev_run=true',
        '--trainer.accelerator=cpu',
        '--trainer.default_root_dir',
        str(tmp_path),
        '--trainer.enable_progress_bar=false',
    ]
    # The fixtures are tiny: 1% of their few training samples selects none
    # (an error by design), and GeoNRW's fixture tiles are 100 px.
    if config.stem.endswith('_1pct'):
        args.append('--data.init_args.train_fraction=0.5')
    if rgbd:  # fixture images: 40 x 48 px (CMX's crop is 480 x 640)
        args.append('--data.init_args.patch_size=[32, 40]')
        if config.stem.startswith('sun'):
            args.append('--data.init_args.size=[40, 48]')
    elif geonrw and config.parent.name == 'paper':  # fixture scenes: 100 px
        args.append('--data.init_args.tile_size=50')
    elif geonrw:
        args += ['--data.init_args.patch_size=64', '--data.init_args.size=128']
    elif config.parent.name != 'paper':  # the authors' protocol crops 224 px
        args.append('--data.init_args.size=64')
    torchgeo_main(args)


@pytest.mark.parametrize(
    'path',
    sorted((ROOT / 'conf').rglob('*.yaml')),
    ids=lambda p: str(p.relative_to(ROOT / 'conf')),
)
def test_every_config_saves_atomically_and_resumes_last(path: Path) -> None:
    trainer = yaml.safe_load(path.read_text())['trainer']
    plugins = [p['class_path'] for p in trainer['plugins']]
    assert 'torchgeo_decur.checkpointing.AtomicCheckpointIO' in plugins
    callbacks = [c['class_path'] for c in trainer['callbacks']]
    assert 'torchgeo_decur.checkpointing.RunCheckpoint' in callbacks
    for callback in trainer['callbacks']:  # last.ckpt: a link, not a 2nd copy
        if callback['class_path'].endswith('RunCheckpoint'):
            assert callback['init_args']['save_last'] == 'link'
    assert 'lightning.pytorch.callbacks.ModelCheckpoint' not in callbacks
