from pathlib import Path
from typing import Any

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchgeo.models import ResNet18_Weights

from torchgeo_decur.models import ResNet50_Weights
from torchgeo_decur.models import encoders as encoders_module
from torchgeo_decur.models.heads import (
    FCNHead,
    LateFusionClassifier,
    MultimodalSegmentationModel,
    create_encoders,
    encoder_feature_maps,
)


def encoders(*channels: int) -> nn.ModuleList:
    names = {1: 'dem', 2: 's1', 3: 'rgb', 13: 's2c'}
    return create_encoders('resnet18', channels, [names[c] for c in channels])


@pytest.fixture(scope='module')
def rgb_dem() -> nn.ModuleList:
    """RGB and DEM encoders, shared by the tests that do not train them."""
    return encoders(3, 1).eval()


class TestCreateEncoders:
    @pytest.mark.parametrize(
        ('in_channels', 'modalities', 'match'),
        [
            ((2, 13), ('s1',), 'in_channels and modalities'),
            ((), (), '1 or 2 modalities'),
            ((3, 1, 2), ('rgb', 'dem', 's1'), '1 or 2 modalities'),
            ((0,), ('s1',), 'in_channels must be >= 1'),
            ((2, 2), ('s1', 's1'), 'distinct'),
            ((12,), ('s2c',), "modality 's2c' has 13 bands"),
        ],
    )
    def test_errors(
        self, in_channels: tuple[int, ...], modalities: tuple[str, ...], match: str
    ) -> None:
        with pytest.raises(ValueError, match=match):
            create_encoders('resnet18', in_channels, modalities)

    def test_unregistered_modality_with_channels(self) -> None:
        with pytest.raises(ValueError, match="'lidar' is not registered"):
            create_encoders('resnet18', (4,), ('lidar',))

    @pytest.mark.parametrize(
        ('weights', 'expected'),
        [
            (None, [None, None]),
            (True, [None, None]),
            (ResNet50_Weights.DECUR_S1S2, ['s1', 's2c']),
            ('ResNet50_Weights.DECUR_S1S2', ['s1', 's2c']),
            (ResNet18_Weights.SENTINEL2_ALL_MOCO, [None, None]),
        ],
    )
    def test_modality_passed_for_decur_weights(
        self,
        monkeypatch: pytest.MonkeyPatch,
        weights: Any,
        expected: list[str | None],
    ) -> None:
        calls: list[dict[str, Any]] = []

        def fake(model: str, in_channels: int, w: Any, **kwargs: Any) -> nn.Module:
            calls.append(kwargs)
            assert w is weights
            return timm.create_model(model, in_chans=in_channels, num_classes=0)

        monkeypatch.setattr(encoders_module, 'create_encoder', fake)
        create_encoders('resnet18', (2, 13), ('s1', 's2c'), weights=weights)
        assert calls == [
            {'modality': m, 'deformable_attention': None, 'da_blocks': 'trained'}
            for m in expected
        ]

    def test_joint_checkpoint(self, tmp_path: Path) -> None:
        # A DeCUR pretraining checkpoint: each encoder and a missing modality
        # must get their own backbone out of the same joint file.
        from torchgeo_decur.tasks.decur import DeCURTask

        pre = DeCURTask(
            model1='resnet18',
            model2='resnet18',
            in_channels1=3,
            in_channels2=1,
            modalities=('rgb', 'dem'),
            projector_dims=(16, 16),
        )
        path = tmp_path / 'decur.ckpt'
        torch.save(
            {'state_dict': pre.state_dict(), 'hyper_parameters': dict(pre.hparams)},
            path,
        )
        both = create_encoders('resnet18', (3, 1), ('rgb', 'dem'), weights=str(path))
        dem = create_encoders('resnet18', (1,), ('dem',), weights=str(path))
        for enc, ref in [
            (both[0], pre.backbone1),
            (both[1], pre.backbone2),
            (dem[0], pre.backbone2),
        ]:
            for (k, v), (k_ref, v_ref) in zip(
                enc.state_dict().items(), ref.state_dict().items(), strict=True
            ):
                assert k == k_ref
                assert torch.equal(v, v_ref), k


class TestLateFusionClassifier:
    @pytest.mark.parametrize('channels', [(2, 13), (2,)])
    def test_forward(self, channels: tuple[int, ...]) -> None:
        model = LateFusionClassifier(encoders(*channels), 5)
        assert model.head.in_features == 512 * len(channels)
        xs = [torch.randn(2, c, 32, 32) for c in channels]
        assert model(*xs).shape == (2, 5)

    def test_late_fusion(self) -> None:
        # The logits are a linear function of the concatenated pooled features.
        model = LateFusionClassifier(encoders(2, 13), 3).eval()
        x1, x2 = torch.randn(2, 2, 32, 32), torch.randn(2, 13, 32, 32)
        feats = torch.cat([model.encoders[0](x1), model.encoders[1](x2)], dim=1)
        torch.testing.assert_close(model(x1, x2), model.head(feats))

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match='at least one encoder'):
            LateFusionClassifier([], 3)
        with pytest.raises(ValueError, match='num_classes'):
            LateFusionClassifier(encoders(2), 0)
        with pytest.raises(ValueError, match='expected 1 inputs, got 2'):
            LateFusionClassifier(encoders(2), 3)(torch.randn(2, 2, 32, 32), None)


class TestFCNHead:
    def test_shape_and_sum(self) -> None:
        head = FCNHead([8, 16, 32], 4)
        feats = [
            torch.randn(2, 8, 8, 8),
            torch.randn(2, 16, 4, 4),
            torch.randn(2, 32, 2, 2),
        ]
        out = head(feats, (32, 32))
        assert out.shape == (2, 4, 32, 32)
        # Upsampling the features first and then applying the 1x1 convolutions
        # (the paper's order) gives the same sum.
        expected = sum(
            conv(F.interpolate(f, size=(32, 32), mode='bilinear'))
            for conv, f in zip(head.convs, feats, strict=True)
        )
        torch.testing.assert_close(out, expected)

    def test_wrong_levels(self) -> None:
        with pytest.raises(ValueError, match='expected 3 feature levels, got 2'):
            FCNHead([8, 16, 32], 4)([torch.randn(1, 8, 4, 4)] * 2, (8, 8))


class TestMultimodalSegmentationModel:
    @pytest.mark.parametrize('decoder', ['fcn', 'unet', 'deeplabv3plus'])
    @pytest.mark.parametrize('size', [64, 50])
    def test_shape(self, rgb_dem: nn.ModuleList, decoder: str, size: int) -> None:
        model = MultimodalSegmentationModel(rgb_dem, (3, 1), 5, decoder=decoder).eval()
        x1, x2 = torch.randn(2, 3, size, size), torch.randn(2, 1, size, size)
        with torch.no_grad():
            assert model(x1, x2).shape == (2, 5, size, size)

    def test_fcn_levels(self, rgb_dem: nn.ModuleList) -> None:
        # FCN: last three levels of each encoder, channels summed over modalities.
        model = MultimodalSegmentationModel(rgb_dem, (3, 1), 5)
        assert [c.in_channels for c in model.head.convs] == [256, 512, 1024]
        feats = encoder_feature_maps(model.encoders[0], torch.randn(2, 3, 64, 64), 3)
        assert [f.shape[1:] for f in feats] == [(128, 8, 8), (256, 4, 4), (512, 2, 2)]

    def test_single_modality(self, rgb_dem: nn.ModuleList) -> None:
        model = MultimodalSegmentationModel(rgb_dem[:1], (3,), 5, decoder='unet')
        with torch.no_grad():
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5, 32, 32)

    def test_vit(self) -> None:
        encs = create_encoders(
            'vit_tiny_patch16_224',
            (3, 1),
            ('rgb', 'dem'),
            model_kwargs={'img_size': 32},
        )
        model = MultimodalSegmentationModel(encs, (3, 1), 5).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, 32, 32), torch.randn(2, 1, 32, 32))
        assert out.shape == (2, 5, 32, 32)

    def test_errors(self, rgb_dem: nn.ModuleList) -> None:
        with pytest.raises(ValueError, match=r"decoder must be one of.*'pspnet'"):
            MultimodalSegmentationModel(rgb_dem, (3, 1), 5, decoder='pspnet')  # type: ignore[arg-type]
        with pytest.raises(ValueError, match='one entry of in_channels per encoder'):
            MultimodalSegmentationModel(rgb_dem, (3,), 5)
        model = MultimodalSegmentationModel(rgb_dem, (3, 1), 5)
        with pytest.raises(ValueError, match='same height and width'):
            model(torch.randn(2, 3, 32, 32), torch.randn(2, 1, 64, 64))
        with pytest.raises(ValueError, match='expected 2 inputs, got 1'):
            model(torch.randn(2, 3, 32, 32))


def test_heads_see_the_attended_features() -> None:
    """With deformable attention, FCN and late fusion use the stage 3/4 maps
    after the blocks: zeroing the blocks' output projections changes them."""
    torch.manual_seed(0)
    encoders = create_encoders(
        'resnet18', (2, 3), ('s1', 'rgb'), deformable_attention=True
    )
    seg = MultimodalSegmentationModel(encoders, (2, 3), num_classes=4).eval()
    cls = LateFusionClassifier(encoders, num_classes=4).eval()
    x1, x2 = torch.randn(1, 2, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        attended = seg(x1, x2), cls(x1, x2)
        for encoder in encoders:
            for block in (encoder.da_l3, encoder.da_l4):
                nn.init.zeros_(block.proj_out.weight)
                nn.init.zeros_(block.proj_out.bias)
        plain = seg(x1, x2), cls(x1, x2)
    assert attended[0].shape == (1, 4, 64, 64)
    for a, b in zip(attended, plain, strict=True):
        assert not torch.allclose(a, b)
