import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from jsonargparse import ArgumentParser
from torch import Tensor
from torchgeo.main import main as torchgeo_main

from torchgeo_decur.losses import CoMMLoss
from torchgeo_decur.models import sincos_position_embedding_2d
from torchgeo_decur.tasks import CoMMTask

from ..conftest import ROOT
from .test_decur import PairedDataModule, trainer

TINY = {
    'model1': 'resnet18',
    'model2': 'resnet18',
    'in_channels1': 2,
    'in_channels2': 3,
    'modalities': ['s1', 'rgb'],
    'embed_dim': 32,
    'num_heads': 4,
    'projector_dims': [32, 32, 16],
}


def nt_xent(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """SimCLR's NT-Xent written out: 2N anchors, positives across a and b."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    n = len(a)
    sim = z @ z.T / temperature
    losses = []
    for k in range(2 * n):
        positive = (k + n) % (2 * n)
        others = [j for j in range(2 * n) if j != k]
        losses.append(-(sim[k, positive] - torch.logsumexp(sim[k, others], dim=0)))
    return torch.stack(losses).mean()


def test_paper_defaults() -> None:
    parser = ArgumentParser()
    parser.add_class_arguments(CoMMTask, 'model')
    defaults = vars(parser.get_defaults()['model'])
    assert defaults['embed_dim'] == 512
    assert (defaults['num_layers'], defaults['num_heads']) == (1, 8)
    assert list(defaults['projector_dims']) == [512, 512, 256]
    assert defaults['temperature'] == 0.1
    assert defaults['optimizer'] == 'adamw'
    assert (defaults['lr'], defaults['weight_decay']) == (1e-3, 1e-2)


def test_modules_and_representation() -> None:
    task = CoMMTask(**TINY)
    assert [c.in_channels for c in task.converters.values()] == [512, 512]
    assert task.criterion.temperature == 0.1
    layers = list(task.projector.layers)
    kinds = [type(m).__name__ for m in layers]
    assert kinds == [
        'Linear',
        'BatchNorm1d',
        'ReLU',
        'Linear',
        'BatchNorm1d',
        'ReLU',
        'Linear',
    ]
    assert layers[-1].out_features == 16
    task.eval()
    x1, x2 = torch.randn(3, 2, 64, 64), torch.randn(3, 3, 64, 64)
    rep = task.representation(x1, x2)
    assert rep.shape == (3, 32) and not rep.requires_grad
    torch.testing.assert_close(rep, task.embed([x1, x2]))
    # tokens: one per position of the 2x2 map, with position embeddings
    (fmap,) = task.backbone1.forward_intermediates(
        x1, indices=1, intermediates_only=True
    )
    expected = task.converters['s1'].proj(fmap).flatten(2).transpose(1, 2)
    expected = expected + sincos_position_embedding_2d(2, 2, 32)
    torch.testing.assert_close(task.tokens('s1', x1), expected)


def test_missing_modality_embedding() -> None:
    task = CoMMTask(**TINY).eval()
    x1, x2 = torch.randn(3, 2, 32, 32), torch.randn(3, 3, 32, 32)
    only1 = task.embed([x1, None])
    torch.testing.assert_close(only1, task.fusion([task.tokens('s1', x1)]))
    assert not torch.allclose(only1, task.embed([x1, x2]), atol=1e-4)
    assert task.embed([None, x2]).shape == (3, 32)
    with pytest.raises(ValueError, match='at least one modality'):
        task.embed([None, None])
    with pytest.raises(ValueError, match='one entry per modality'):
        task.embed([x1])


def test_step_fuses_each_view_once_without_leakage() -> None:
    """Per view: Z from both token sets, Z_i from modality i's tokens alone."""
    torch.manual_seed(0)
    task = CoMMTask(**TINY)
    calls: list[list[Tensor]] = []
    encoded: list[tuple[str, Tensor]] = []
    fusion, tokens = task.fusion.forward, task.tokens

    def record_fusion(t: list[Tensor]) -> Tensor:
        calls.append(list(t))
        return fusion(t)

    def record_tokens(m: str, x: Tensor) -> Tensor:
        out = tokens(m, x)
        encoded.append((m, out))
        return out

    task.fusion.forward = record_fusion  # type: ignore[method-assign]
    task.tokens = record_tokens  # type: ignore[method-assign]
    task.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
    batch = {
        'image1': torch.randn(4, 2, 2, 32, 32),
        'image2': torch.randn(4, 2, 3, 32, 32),
    }
    loss = task.shared_step(batch, 'train')
    assert math.isfinite(float(loss.detach()))
    assert [m for m, _ in encoded] == ['s1', 'rgb'] * 2  # 2 views x 2 modalities
    assert len(calls) == 6
    for view in range(2):
        t1, t2 = encoded[2 * view][1], encoded[2 * view + 1][1]
        joint, single1, single2 = calls[3 * view : 3 * view + 3]
        assert [t is u for t, u in zip(joint, (t1, t2), strict=True)] == [True, True]
        assert len(single1) == 1 and single1[0] is t1
        assert len(single2) == 1 and single2[0] is t2


def test_loss_matches_reference_formula() -> None:
    criterion = CoMMLoss(0.1)
    torch.manual_seed(1)
    n_mod = 3  # written for n modalities
    z1, z2 = torch.randn(6, 16), torch.randn(6, 16)
    s1 = [torch.randn(6, 16) for _ in range(n_mod)]
    s2 = [torch.randn(6, 16) for _ in range(n_mod)]
    loss, terms = criterion(z1, z2, s1, s2), criterion.terms
    assert isinstance(CoMMTask(**TINY).criterion, CoMMLoss)
    t = 0.1
    joint = nt_xent(z1, z2, t)
    mods = [(nt_xent(s1[i], z2, t) + nt_xent(s2[i], z1, t)) / 2 for i in range(n_mod)]
    torch.testing.assert_close(terms['loss_joint'], joint)
    for i in range(n_mod):
        torch.testing.assert_close(terms[f'loss_mod{i + 1}'], mods[i])
    torch.testing.assert_close(loss, joint + sum(mods))


def test_trains_every_part(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = CoMMTask(**TINY, weight_decay=0.0)
    parts = {
        'encoder1': task.backbone1.conv1.weight,
        'encoder2': task.backbone2.layer4[-1].conv2.weight,
        'converter1': task.converters['s1'].proj.weight,
        'converter2': task.converters['rgb'].proj.weight,
        'cls': task.fusion.cls_token,
        'attention': task.fusion.layers[0].self_attn.in_proj_weight,
        'mlp': task.fusion.layers[0].linear2.weight,
        'head': task.projector.layers[-1].weight,
    }
    before = {k: v.detach().clone() for k, v in parts.items()}
    t = trainer(tmp_path, max_steps=3)
    t.fit(task, datamodule=PairedDataModule(batch_size=8, n=24))
    optimizer = task.optimizers().optimizer  # type: ignore[union-attr]
    assert isinstance(optimizer, torch.optim.AdamW)
    for name, param in parts.items():
        assert not torch.equal(before[name], param.detach()), name
    metrics = t.callback_metrics
    for key in ('train_loss', 'train_loss_joint', 'train_loss_mod1', 'train_loss_mod2'):
        assert math.isfinite(float(metrics[key])), key
    total = sum(float(metrics[f'train_loss_{k}']) for k in ('joint', 'mod1', 'mod2'))
    assert float(metrics['train_loss']) == pytest.approx(total, rel=1e-5)


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'embed_dim': 30}, 'embed_dim=30 must be a multiple of 4'),
        ({'num_heads': 3}, 'num_heads=3'),
        ({'num_layers': 0}, 'num_layers must be a positive int'),
        ({'temperature': 0.0}, 'temperature must be positive'),
        ({'optimizer': 'sgd'}, "optimizer must be 'lars' or 'adamw'"),
        ({'projector_dims': []}, 'projector dims'),
        ({'modalities': ['s1']}, 'two modalities'),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CoMMTask(**{**TINY, **kwargs})


def test_vit_encoders_give_patch_tokens() -> None:
    task = CoMMTask(
        **{**TINY, 'model1': 'vit_tiny_patch16_224', 'model2': 'vit_tiny_patch16_224'},
        model_kwargs1={'img_size': 32},
        model_kwargs2={'img_size': 32},
    )
    assert task.tokens('s1', torch.randn(2, 2, 32, 32)).shape == (2, 4, 32)


@pytest.mark.filterwarnings('ignore::UserWarning')
def test_config_fast_dev_run(ssl4eo_root: Path, tmp_path: Path) -> None:
    config = ROOT / 'conf' / 'comm_s1s2.yaml'
    settings = yaml.safe_load(config.read_text())['model']['init_args']
    assert settings['embed_dim'] == 512 and settings['num_heads'] == 8
    assert settings['projector_dims'] == [512, 512, 256]
    assert settings['temperature'] == 0.1
    torchgeo_main(
        [
            'fit',
            '--config',
            str(config),
            '--data.init_args.root',
            str(ssl4eo_root),
            '--data.init_args.batch_size=2',
            '--data.init_args.patch_size=32',
            '--data.init_args.num_workers=0',
            '--model.init_args.model1=resnet18',
            '--model.init_args.model2=resnet18',
            '--model.init_args.embed_dim=32',
            '--model.init_args.projector_dims=[32,32,16]',
            '--trainer.fast_dev_run=true',
            '--trainer.accelerator=cpu',
            '--trainer.default_root_dir',
            str(tmp_path),
            '--trainer.enable_progress_bar=false',
        ]
    )
