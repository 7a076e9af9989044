"""Shared test fixtures."""

import ctypes
import gc
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import timm
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from torchgeo_decur.models import MiTB2_Weights, ResNet50_Weights

#: Small datasets in the real on-disk formats, written by their data.py
#: (``tests/data/<dataset>/data.py``), as TorchGeo's tests keep them.
DATA = Path(__file__).resolve().parent / 'data'
ROOT = Path(__file__).resolve().parents[1]


def fake_trainer(split: str) -> SimpleNamespace:
    """Stand-in for a Trainer in a given stage, for ``on_after_batch_transfer``."""
    return SimpleNamespace(
        training=split == 'train',
        validating=split == 'val',
        sanity_checking=False,
        testing=split == 'test',
        predicting=split == 'predict',
    )


def quiet_trainer(**kwargs: Any) -> Trainer:
    """A quiet CPU trainer: one step (fast_dev_run) unless *kwargs* say else."""
    settings: dict[str, Any] = {
        'fast_dev_run': True,
        'accelerator': 'cpu',
        'logger': False,
        'enable_checkpointing': False,
        'enable_progress_bar': False,
        'enable_model_summary': False,
    }
    return Trainer(**{**settings, **kwargs})


def copy_fixture(name: str, dest: Path) -> Path:
    """Copy a fixture dataset into *dest* (fixtures are never written to)."""
    src = DATA / name
    if not src.is_dir():
        pytest.fail(f'fixture {src} is missing: run {src / "data.py"}')
    out = dest / name
    shutil.copytree(src, out, ignore=shutil.ignore_patterns('data.py'))
    return out


@pytest.fixture
def ssl4eo_root(tmp_path: Path) -> Path:
    """A writable copy of the SSL4EO-S12 fixture."""
    return copy_fixture('ssl4eo_s12', tmp_path)


@pytest.fixture
def ssl4eo_v11_root(tmp_path: Path) -> Path:
    """SSL4EO-S12 v1.1 Zarr chunk files: 2 files of 3 locations, 32 px."""
    from .datasets.v11_data import make_v11

    return make_v11(tmp_path / 'ssl4eo-s12-v1.1', files=2, locations=3, size=32)


@pytest.fixture
def ssl4eo_v11_shards_root(tmp_path: Path) -> Path:
    """SSL4EO-S12 v1.1 WebDataset shards: 2 shards of 3 locations, 32 px."""
    from .datasets.v11_data import make_v11_shards

    return make_v11_shards(tmp_path / 'shards', shards=2, locations=3, size=32)


@pytest.fixture
def bigearthnet_root(tmp_path: Path) -> Path:
    """A writable copy of the BigEarthNet v1 (S1 + S2) fixture."""
    return copy_fixture('bigearthnet', tmp_path)


@pytest.fixture
def geonrw_root(tmp_path: Path) -> Path:
    """A writable copy of the GeoNRW fixture."""
    return copy_fixture('geonrw', tmp_path)


@pytest.fixture
def sunrgbd_root(tmp_path: Path) -> Path:
    """A writable copy of the SUN RGB-D fixture (CMX layout)."""
    return copy_fixture('sunrgbd', tmp_path)


@pytest.fixture
def nyuv2_root(tmp_path: Path) -> Path:
    """A writable copy of the NYU-Depth v2 fixture (CMX layout)."""
    return copy_fixture('nyuv2', tmp_path)


#: Input channels of each encoder in the authors' files (GeoNRW: the DEM on
#: three channels, as they trained it).
FILE_CHANNELS = {'s1': 2, 's2c': 13, 'rgb': 3, 'dem': 3}


def authors_checkpoints(folder: Path, joint: ResNet50_Weights) -> None:
    """Write a joint entry's files in the layout of the authors' published ones.

    The joint file (both backbones, projectors, the loss's batch norm) and the
    backbone-only file of each modality, which the per-modality entries serve.

    Args:
        folder: Where to write the files (a hub cache's ``checkpoints``).
        joint: A joint weight entry (both modalities).
    """
    state: dict[str, torch.Tensor] = {}
    for i, name in enumerate(joint.modalities, start=1):
        backbone = timm.create_model(
            'resnet50', in_chans=FILE_CHANNELS[name], num_classes=0
        )
        torch.save(backbone.state_dict(), folder / joint.modality(name).meta['file'])
        state.update(
            {f'module.backbone_{i}.{k}': v for k, v in backbone.state_dict().items()}
        )
        state[f'module.projector{i}.0.weight'] = torch.zeros(8, 2048)
    state['module.bn.running_mean'] = torch.zeros(8)
    torch.save({'epoch': 100, 'model': state}, folder / joint.meta['file'])


def authors_mit_checkpoints(folder: Path, joint: MiTB2_Weights) -> None:
    """As :func:`authors_checkpoints`, for a joint MiT entry (SUN RGB-D).

    The joint file keeps each backbone's 512 -> 2048 head, as the authors'
    files do; their backbone-only files have none (``convert_checkpoint_rgbd.py``).
    """
    state: dict[str, torch.Tensor] = {}
    for i, name in enumerate(joint.modalities, start=1):
        backbone = timm.create_model(joint.meta['model'], in_chans=3, num_classes=2048)
        plain = {
            k: v for k, v in backbone.state_dict().items() if not k.startswith('head.')
        }
        torch.save(plain, folder / joint.modality(name).meta['file'])
        state.update(
            {f'module.backbone_{i}.{k}': v for k, v in backbone.state_dict().items()}
        )
        state[f'module.projector{i}.0.weight'] = torch.zeros(8, 2048)
    state['module.bn.running_mean'] = torch.zeros(8)
    torch.save({'epoch': 200, 'model': state}, folder / joint.meta['file'])


@pytest.fixture(scope='session')
def authors_hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torch hub cache holding stand-ins of the authors' ResNet-50 and MiT-B2 files.

    Written once per session (about 1 GB): the joint and per-modality files
    of ``DECUR_S1S2``, ``DECUR_RGB_DEM`` and ``MiTB2_Weights.DECUR_RGB_HHA``
    under the URLs' file names, so the real download-or-cache code path finds
    them. Read only.
    """
    hub = tmp_path_factory.mktemp('hub')
    (hub / 'checkpoints').mkdir()
    for weights in (ResNet50_Weights.DECUR_S1S2, ResNet50_Weights.DECUR_RGB_DEM):
        authors_checkpoints(hub / 'checkpoints', weights)
    authors_mit_checkpoints(hub / 'checkpoints', MiTB2_Weights.DECUR_RGB_HHA)
    return hub


@pytest.fixture
def hub_cache(authors_hub: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The torch hub cache is *authors_hub*, and nothing is downloaded."""
    monkeypatch.setattr(torch.hub, '_hub_dir', str(authors_hub))

    def no_download(url: str, *args: object, **kwargs: object) -> None:
        raise AssertionError(f'tests must not download {url}')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_download)
    return authors_hub


def mit_decur_task(weights: str | None = None, head: int = 64) -> Any:
    """A small DeCURTask on RGB + HHA with MiT-B0 encoders that keep a head.

    The head stands for the authors' 512 -> 2048 layer (``num_classes``).
    """
    from torchgeo_decur.tasks import DeCURTask

    mit = {'model': 'mit_b0', 'weights': weights, 'model_kwargs': {'num_classes': head}}
    return DeCURTask(
        modalities=['rgb_indoor', 'hha'],
        encoders={'rgb_indoor': mit, 'hha': mit},
        projector_dims=[32, 32],
        common_dim=24,
        optimizer='adamw',
    )


def put_in_hf_cache(
    cache: Path,
    repo_id: str,
    state_dict: dict[str, torch.Tensor],
    revision: str | None = None,
) -> None:
    """Store *state_dict* as ``model.safetensors`` of *repo_id* in a hub cache.

    In the Hugging Face hub's cache layout, at the commit *revision*, or as
    the repository's ``main`` (what timm asks for) without one.
    """
    from safetensors.torch import save_file

    commit = revision or 'c0ffee' * 6 + 'c0ff'
    repo = cache / f'models--{repo_id.replace("/", "--")}'
    snapshot = repo / 'snapshots' / commit
    snapshot.mkdir(parents=True)
    tensors = {k: v.contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(snapshot / 'model.safetensors'))
    if revision is None:
        (repo / 'refs').mkdir()
        (repo / 'refs' / 'main').write_text(commit)


def offline_hf_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make *cache* the Hugging Face hub cache, offline: nothing is downloaded."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    return cache


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty, offline Hugging Face hub cache."""
    cache = tmp_path / 'hf'
    cache.mkdir()
    return offline_hf_cache(cache, monkeypatch)


@pytest.fixture(scope='session')
def imagenet_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hub cache with stand-ins of the ImageNet files the configs start from.

    ResNet-50 (torchvision's, as timm names it), ViT-S/16 (timm's augreg)
    and MiT-B2 (smp's copy of SegFormer's), random weights of the right
    architectures, about 0.3 GB, written once per session. Read only.
    """
    from segmentation_models_pytorch.encoders import encoders

    cache = tmp_path_factory.mktemp('hf')
    for name in ('resnet50.tv_in1k', 'vit_small_patch16_224.augreg_in21k_ft_in1k'):
        model = timm.create_model(name.split('.')[0], num_classes=1000)
        put_in_hf_cache(cache, f'timm/{name}', model.state_dict())
    mit = timm.create_model('mit_b2', num_classes=0).state_dict()
    settings = encoders['mit_b2']['pretrained_settings']['imagenet']
    put_in_hf_cache(cache, settings['repo_id'], mit, settings['revision'])
    return cache


@pytest.fixture
def imagenet_cache(imagenet_files: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """*imagenet_files* as the offline Hugging Face hub cache."""
    return offline_hf_cache(imagenet_files, monkeypatch)


def _rss_mb() -> float:
    """Resident memory of this process in MB (Linux), else 0."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@pytest.fixture(autouse=True)
def _release_memory() -> Iterator[None]:
    """After a test that ran for over a second, give freed memory back.

    Fits free their tensors, but glibc keeps the freed blocks in its arenas:
    the suite's process grew past 20 GB and was killed for lack of memory
    once the 18 ResNet-50 configs of ``conf/paper/`` joined it (6 of them:
    3.1 GB without this, 1.6 GB with it). ``TORCHGEO_DECUR_RSS_LOG=<file>``
    appends the process's resident memory after each such test.
    """
    start = time.perf_counter()
    yield
    if time.perf_counter() - start < 1:
        return
    gc.collect()
    if sys.platform.startswith('linux'):
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    log = os.environ.get('TORCHGEO_DECUR_RSS_LOG')
    if log:
        with open(log, 'a') as f:
            f.write(f'{_rss_mb():.0f}\n')


@pytest.fixture(autouse=True)
def _fast_dev_run_saves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep ``fast_dev_run`` from writing ``last.ckpt``, as Lightning documents.

    Lightning 2.6's ``ModelCheckpoint.on_train_end`` writes ``last.ckpt`` even
    under ``fast_dev_run`` (its other hooks skip it): 4.7 GB for one step of a
    paper-size config; all of them together filled CI's disk. The tests that
    smoke-run a config check that one step runs, not what Lightning then
    writes; tests of checkpointing never use ``fast_dev_run``.
    """
    original = ModelCheckpoint.on_train_end

    def on_train_end(
        self: ModelCheckpoint, trainer: Trainer, pl_module: object
    ) -> None:
        if not trainer.fast_dev_run:
            original(self, trainer, pl_module)  # type: ignore[arg-type]

    monkeypatch.setattr(ModelCheckpoint, 'on_train_end', on_train_end)
