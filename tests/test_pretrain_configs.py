"""Every pretraining config of conf/ runs one real step through `torchgeo fit`.

At full model size (ResNet-50, MiT-B2, deformable attention; 8192-d
projectors), on the small fixtures, with only the data sizes overridden.
conf/decur_s1s2.yaml has its own, longer test (tests/tasks/test_decur.py).
"""

from pathlib import Path

import pytest
import yaml
from torchgeo.main import main as torchgeo_main

from .conftest import ROOT

#: Data overrides of each config for its fixture: tiles of the 100 px GeoNRW
#: scenes, small patches and batches.
CONFIGS = {
    'decur_rgb_dem': ('geonrw_root', ['--data.init_args.tile_size=50']),
    'decur_rgb_dem_rda': ('geonrw_root', ['--data.init_args.tile_size=50']),
    'decur_rgb_depth': ('sunrgbd_root', ['--data.init_args.size=48']),
    'decur_s1s2_rda': ('ssl4eo_root', []),
    'decur_s1s2_vits16': ('ssl4eo_root', []),
    'decur_s1s2_v11': ('ssl4eo_v11_root', []),
    'decur_s1s2a_v11': ('ssl4eo_v11_root', []),
    'decur_s1s2a_v11_shards': ('ssl4eo_v11_shards_root', []),
    'decur_s1s2adem_v11_shards': ('ssl4eo_v11_shards_root', []),
}


def test_every_pretraining_config_is_tested() -> None:
    names = {p.stem for p in (ROOT / 'conf').glob('decur_*.yaml')}
    assert names - {'decur_s1s2', 'decur_s1s2_demo'} == set(CONFIGS)


@pytest.mark.slow
@pytest.mark.filterwarnings('ignore::UserWarning')
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_pretraining_config_fast_dev_run(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, imagenet_cache: Path
) -> None:
    fixture, overrides = CONFIGS[name]
    root = request.getfixturevalue(fixture)
    config = ROOT / 'conf' / f'{name}.yaml'
    settings = yaml.safe_load(config.read_text())['model']['init_args']
    torchgeo_main(
        [
            'fit',
            '--config',
            str(config),
            '--data.init_args.root',
            str(root),
            '--data.init_args.batch_size=2',
            '--data.init_args.patch_size=32',
            '--data.init_args.num_workers=0',
            *overrides,
            '--trainer.fast_dev_run=true',
            '--trainer.accelerator=cpu',
            '--trainer.default_root_dir',
            str(tmp_path),
            '--trainer.enable_progress_bar=false',
        ]
    )
    assert settings['projector_dims'] == [8192, 8192, 8192]  # full size
