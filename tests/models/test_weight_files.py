from pathlib import Path

import pytest
import torch
from torch import nn

from torchgeo_decur.models import state_dict_mismatches
from torchgeo_decur.models.weights import (
    convert_input_layer,
    read_decur_checkpoint,
    split_joint_state_dict,
)
from torchgeo_decur.models.weights.files import authors_state_dict, encoder_records


def test_split_joint_state_dict() -> None:
    joint = {
        'module.backbone_1.conv1.weight': torch.ones(4, 2, 3, 3),
        'module.backbone_1.head.weight': torch.ones(10, 4),
        'module.backbone_2.conv1.weight': torch.ones(4, 13, 3, 3),
        'module.projector1.0.weight': torch.ones(8, 4),
        'module.bn.running_var': torch.ones(8),
    }
    out = split_joint_state_dict({'epoch': 1, 'model': joint}, ['a', 'b'])
    assert {k: list(v) for k, v in out.items()} == {
        'a': ['conv1.weight'],
        'b': ['conv1.weight'],
    }
    # deformable attention: da<i>_l<stage> goes with backbone i as da_l<stage>
    with_da = split_joint_state_dict(
        {
            **joint,
            'module.da1_l3.proj_q.weight': torch.ones(1),
            'module.da2_l4.rpe_table': torch.zeros(2),
        },
        ['a', 'b'],
    )
    assert sorted(with_da['a']) == ['conv1.weight', 'da_l3.proj_q.weight']
    assert sorted(with_da['b']) == ['conv1.weight', 'da_l4.rpe_table']
    assert torch.equal(with_da['b']['da_l4.rpe_table'], torch.zeros(2))
    with pytest.raises(ValueError, match=r"missing backbone keys 'module\.backbone_2"):
        split_joint_state_dict(
            {k: v for k, v in joint.items() if 'backbone_2' not in k}, ['a', 'b']
        )
    with pytest.raises(ValueError, match='not a DeCUR checkpoint'):
        split_joint_state_dict({'conv1.weight': torch.ones(1)}, ['a', 'b'], 'x.pth')


def test_authors_rda_backbone_file_keys(tmp_path: Path) -> None:
    """The authors' RDA backbone-only files: 'backbone.*' and 'da<i>_l<s>.*'."""
    path = tmp_path / 'encoder.pth'
    torch.save(
        {
            'backbone.conv1.weight': torch.ones(4, 2, 3, 3),
            'backbone.fc.weight': torch.ones(10, 4),
            'da2_l3.proj_q.weight': torch.ones(1),
            'da2_l4.proj_out.bias': torch.ones(1),
        },
        path,
    )
    (state_dict,) = read_decur_checkpoint(path)[0].values()
    assert sorted(state_dict) == [
        'conv1.weight',
        'da_l3.proj_q.weight',
        'da_l4.proj_out.bias',
    ]
    # a plain encoder file keeps its keys, even one named 'backbone...'
    torch.save({'backbone.conv1.weight': torch.ones(1)}, path)
    assert list(read_decur_checkpoint(path)[0]['modality1']) == [
        'backbone.conv1.weight'
    ]


def test_convert_input_layer() -> None:
    weight = torch.randn(4, 3, 7, 7)
    x = torch.rand(1, 3, 16, 16)
    # a permutation: the converted kernel on R, G, B equals the original on B, G, R
    out = convert_input_layer({'conv1.weight': weight}, 'BGR', 'RGB')
    torch.testing.assert_close(
        nn.functional.conv2d(x, out['conv1.weight']),
        nn.functional.conv2d(x[:, [2, 1, 0]], weight),
    )
    # a band repeated on 3 channels folds into one kernel: the same output
    dem = x[:, :1]
    out = convert_input_layer({'conv1.weight': weight}, ['DEM'] * 3, ['DEM'])
    torch.testing.assert_close(
        nn.functional.conv2d(dem, out['conv1.weight']),
        nn.functional.conv2d(dem.expand(1, 3, 16, 16), weight),
    )
    # ViT patch embeddings too; other keys untouched; input not modified
    state_dict = {'patch_embed.proj.weight': weight, 'pos_embed': torch.ones(1)}
    out = convert_input_layer(state_dict, 'BGR', 'RGB')
    assert out['pos_embed'] is state_dict['pos_embed']
    assert state_dict['patch_embed.proj.weight'] is weight
    # already in the wanted layout (1 channel where 3 repeats were declared)
    one = {'conv1.weight': torch.randn(4, 1, 7, 7)}
    assert (
        convert_input_layer(one, ['DEM'] * 3, ['DEM'])['conv1.weight']
        is (one['conv1.weight'])
    )
    with pytest.raises(ValueError, match="missing \\['N'\\]"):
        convert_input_layer({'conv1.weight': weight}, 'BGR', 'RGN')
    with pytest.raises(ValueError, match='3 input channels'):
        convert_input_layer({'conv1.weight': weight}, ['VV', 'VH'], ['VV'])


def test_state_dict_mismatches() -> None:
    expected = {f'w{i}': torch.zeros(2) for i in range(8)}
    assert state_dict_mismatches(expected, dict(expected)) == []
    given = {k: v for k, v in expected.items() if k not in ('w0', 'w1')}
    given['w2'] = torch.zeros(3)
    given['extra'] = torch.zeros(1)
    problems = state_dict_mismatches(expected, given)
    assert problems == [
        'missing keys w0, w1',
        'unexpected keys extra',
        'shape mismatches w2 (3,) != (2,)',
    ]
    many = state_dict_mismatches(expected, {})
    assert many == ['missing keys w0, w1, w2, w3, w4, ... (3 more)']


def test_authors_state_dict_inverts_the_split() -> None:
    state_dicts = {
        'a': {'conv1.weight': torch.ones(1), 'da_l3.rpe_table': torch.zeros(1)},
        'b': {'conv1.weight': torch.full((1,), 2.0)},
    }
    joint = authors_state_dict(state_dicts)
    assert sorted(joint) == [
        'module.backbone_1.conv1.weight',
        'module.backbone_2.conv1.weight',
        'module.da1_l3.rpe_table',
    ]
    back = split_joint_state_dict({'model': joint}, ['a', 'b'])
    assert {k: sorted(v) for k, v in back.items()} == {
        k: sorted(v) for k, v in state_dicts.items()
    }
    assert back['b']['conv1.weight'] is state_dicts['b']['conv1.weight']


def test_encoder_records_new_and_old_hyperparameters() -> None:
    old = {
        'modalities': ['s1', 's2c'],
        'model1': 'resnet18',
        'model2': 'resnet50',
        'in_channels1': 2,
        'in_channels2': 13,
        'model_kwargs1': None,
        'model_kwargs2': {'drop_rate': 0.1},
    }
    new = {
        'modalities': ['s1', 's2c'],
        'encoders': {
            's1': {'model': 'resnet18', 'in_channels': 2, 'model_kwargs': {}},
            's2c': {
                'model': 'resnet50',
                'in_channels': 13,
                'model_kwargs': {'drop_rate': 0.1},
            },
        },
    }
    expected = [
        {'name': 's1', 'index': 1, 'model': 'resnet18', 'in_chans': 2},
        {'name': 's2c', 'index': 2, 'model': 'resnet50', 'in_chans': 13},
    ]
    for hparams in (old, new):
        records = encoder_records(hparams)
        assert [{k: r[k] for k in expected[0]} for r in records] == expected
        assert [r['model_kwargs'] for r in records] == [{}, {'drop_rate': 0.1}]
    # the mapping wins over the two-modality names
    both = {**old, 'encoders': {'s1': {'model': 'vit_small_patch16_224'}}}
    assert [r['model'] for r in encoder_records(both)] == [
        'vit_small_patch16_224',
        'resnet50',
    ]
