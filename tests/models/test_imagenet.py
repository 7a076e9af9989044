"""The authors' ImageNet starts, loaded from a hub cache the tests write."""

from pathlib import Path

import pytest
import timm
import torch
from segmentation_models_pytorch.encoders import encoders as smp_encoders
from torch import Tensor, nn

import torchgeo_decur.lab  # noqa: F401  (registers mit_b*, convnet_small)
from torchgeo_decur.models import (
    IMAGENET,
    create_encoder,
    create_encoders,
    create_projector,
    imagenet_backbone,
    imagenet_model_name,
    is_decur_source,
    output_size,
)
from torchgeo_decur.models.deformable import DeformableResNet
from torchgeo_decur.models.imagenet import reset_input_layer

from ..conftest import mit_decur_task, put_in_hf_cache


def imagenet_file(model: str, classes: int = 1000, seed: int = 0) -> dict[str, Tensor]:
    """A state dict of *model* with a classifier, as ImageNet files hold."""
    torch.manual_seed(seed)
    return timm.create_model(model, num_classes=classes).state_dict()


def put_mit(cache: Path, name: str, seed: int = 0) -> dict[str, Tensor]:
    """Store an MiT encoder's weights where smp's ImageNet entry points."""
    torch.manual_seed(seed)
    state_dict = timm.create_model(name, num_classes=0).state_dict()
    settings = smp_encoders[name]['pretrained_settings']['imagenet']
    put_in_hf_cache(cache, settings['repo_id'], state_dict, settings['revision'])
    return state_dict


def assert_loaded(model: nn.Module, state_dict: dict[str, Tensor], skip: str) -> None:
    """Every parameter of *model* but those starting with *skip* is the file's."""
    own = model.state_dict()
    compared = [k for k in own if not k.startswith(skip) and k in state_dict]
    assert len(compared) > 10
    for key in compared:
        assert torch.equal(own[key], state_dict[key]), key


def test_imagenet_model_name() -> None:
    assert imagenet_model_name('resnet50') == 'resnet50.tv_in1k'
    assert imagenet_model_name('resnet18') == 'resnet18.tv_in1k'
    assert (
        imagenet_model_name('vit_small_patch16_224')
        == 'vit_small_patch16_224.augreg_in21k_ft_in1k'
    )
    assert imagenet_model_name('resnet50.a1_in1k') == 'resnet50.a1_in1k'
    assert imagenet_model_name('mit_b2') == 'mit_b2'
    assert imagenet_model_name('efficientnet_b0') == 'efficientnet_b0'


def test_resnet_from_torchvision_weights(hf_cache: Path) -> None:
    file = imagenet_file('resnet18')
    put_in_hf_cache(hf_cache, 'timm/resnet18.tv_in1k', file, None)
    rgb = create_encoder('resnet18', 3, IMAGENET)
    assert_loaded(rgb, file, skip='fc.')
    # a DEM: the sum of the RGB filters, = the layer on the DEM repeated 3 times
    dem = create_encoder('resnet18', 1, IMAGENET)
    torch.testing.assert_close(
        dem.conv1.weight, file['conv1.weight'].sum(dim=1, keepdim=True)
    )
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(
        dem.conv1(x), rgb.conv1(x.expand(-1, 3, -1, -1)), rtol=1e-5, atol=1e-5
    )
    # Sentinel-2: a new first layer (the authors' nn.Conv2d), the rest ImageNet
    s2 = create_encoder('resnet18', 13, IMAGENET)
    assert s2.conv1.weight.shape == (64, 13, 7, 7)
    repeated = file['conv1.weight'].repeat(1, 5, 1, 1)[:, :13] * 3 / 13
    assert not torch.allclose(s2.conv1.weight, repeated)
    assert_loaded(s2, file, skip=('fc.', 'conv1.'))  # type: ignore[arg-type]


def test_resnet_with_deformable_attention(hf_cache: Path) -> None:
    file = imagenet_file('resnet50')
    put_in_hf_cache(hf_cache, 'timm/resnet50.tv_in1k', file, None)
    encoder = create_encoder('resnet50', 3, IMAGENET, deformable_attention=True)
    assert isinstance(encoder, DeformableResNet)
    assert_loaded(encoder, file, skip='fc.')
    assert encoder(torch.rand(1, 3, 64, 64)).shape == (1, 2048)


def test_true_keeps_timms_default_tag(hf_cache: Path) -> None:
    put_in_hf_cache(hf_cache, 'timm/resnet18.tv_in1k', imagenet_file('resnet18'), None)
    other = imagenet_file('resnet18', seed=1)
    put_in_hf_cache(hf_cache, 'timm/resnet18.a1_in1k', other, None)
    assert_loaded(create_encoder('resnet18', 3, True), other, skip='fc.')


def test_vit_small(hf_cache: Path) -> None:
    file = imagenet_file('vit_small_patch16_224')
    name = 'timm/vit_small_patch16_224.augreg_in21k_ft_in1k'
    put_in_hf_cache(hf_cache, name, file, None)
    encoder = create_encoder('vit_small_patch16_224', 3, IMAGENET)
    assert_loaded(encoder, file, skip='head.')
    s1 = create_encoder('vit_small_patch16_224', 2, IMAGENET)
    assert s1.patch_embed.proj.weight.shape == (384, 2, 16, 16)
    assert_loaded(s1, file, skip=('head.', 'patch_embed.proj.'))  # type: ignore[arg-type]


def test_mit_from_segformer_weights(hf_cache: Path) -> None:
    file = put_mit(hf_cache, 'mit_b2')
    encoder = create_encoder('mit_b2', 3, IMAGENET)
    assert_loaded(encoder, file, skip='head.')
    assert torch.equal(
        create_encoder('mit_b2', 3, True).state_dict()['norm4.weight'],
        file['norm4.weight'],
    )
    hha = create_encoder('mit_b2', 1, IMAGENET)
    torch.testing.assert_close(
        hha.patch_embed1.proj.weight,
        file['patch_embed1.proj.weight'].sum(dim=1, keepdim=True),
    )


def test_mit_head_of_the_authors(hf_cache: Path) -> None:
    file = put_mit(hf_cache, 'mit_b0')
    encoder = create_encoder('mit_b0', 3, IMAGENET, num_classes=2048)
    assert_loaded(encoder, file, skip='head.')
    assert isinstance(encoder.head, nn.Linear)
    assert encoder.head.weight.shape == (2048, 256)
    assert output_size(encoder) == 2048
    assert encoder(torch.rand(2, 3, 32, 32)).shape == (2, 2048)
    assert output_size(create_encoder('mit_b0', 3)) == 256


def test_mit_file_of_another_variant(hf_cache: Path) -> None:
    b0 = timm.create_model('mit_b0', num_classes=0).state_dict()
    settings = smp_encoders['mit_b2']['pretrained_settings']['imagenet']
    put_in_hf_cache(hf_cache, settings['repo_id'], b0, settings['revision'])
    with pytest.raises(ValueError, match=r'model.safetensors does not fit mit_b2'):
        create_encoder('mit_b2', 3, IMAGENET)


def test_decur_task_with_the_authors_mit(hf_cache: Path) -> None:
    file = put_mit(hf_cache, 'mit_b0')
    task = mit_decur_task(IMAGENET)
    for name in ('rgb_indoor', 'hha'):
        assert_loaded(task.encoders[name], file, skip='head.')
        assert task.projectors[name].layers[0].in_features == 64  # type: ignore[index]
    batch = {'image1': torch.rand(4, 3, 32, 32), 'image2': torch.rand(4, 3, 32, 32)}
    out = task.forward(batch['image1'], batch['image2'])
    assert [tuple(z.shape) for z in out] == [(4, 64), (4, 64)]  # through the head
    assert task.project('hha', batch['image2']).shape == (4, 32)
    assert task.hparams['encoders']['hha']['model_kwargs'] == {'num_classes': 64}


def test_not_a_decur_source() -> None:
    assert not is_decur_source(IMAGENET)


def test_errors(hf_cache: Path) -> None:
    with pytest.raises(ValueError, match=r"modality='s1' needs DeCUR weights"):
        create_encoder('resnet18', 2, IMAGENET, modality='s1')
    with pytest.raises(ValueError, match=r'in_channels must be >= 1'):
        imagenet_backbone('resnet18', 0)
    with pytest.raises(ValueError, match=r"unknown timm model 'no_such_net'"):
        create_encoder('no_such_net', 3, IMAGENET)
    with pytest.raises(ValueError, match=r"no ImageNet weights for 'convnet_small'"):
        create_encoder('convnet_small', 3, IMAGENET)
    with pytest.raises(ValueError, match=r'has no convolution'):
        reset_input_layer(nn.Linear(2, 2))
    with pytest.raises(Exception, match=r'resnet18.tv_in1k|offline|cache'):
        create_encoder('resnet18', 3, IMAGENET)  # nothing in the cache
    assert create_projector(8, [4]) is not None


def test_downstream_encoders_from_imagenet(hf_cache: Path) -> None:
    """A transfer task's encoders take the same start (one per modality)."""
    file = imagenet_file('resnet18')
    put_in_hf_cache(hf_cache, 'timm/resnet18.tv_in1k', file, None)
    rgb, dem = create_encoders('resnet18', [3, 1], ['rgb', 'dem'], IMAGENET)
    assert_loaded(rgb, file, skip='fc.')
    torch.testing.assert_close(
        dem.conv1.weight, file['conv1.weight'].sum(dim=1, keepdim=True)
    )
