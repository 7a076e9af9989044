"""GradCAM, spatial overlap and Integrated Gradients on constructed models."""

import numpy as np
import pytest
import timm
import torch
from torch import Tensor, nn

import torchgeo_decur.lab  # noqa: F401  (registers convnet_small with timm)
from torchgeo_decur.explain import (
    EmbeddingTarget,
    band_importance,
    embedding_statistics,
    gradcam_layer,
    gradcam_maps,
    plot_band_importance,
    plot_gradcam,
    plot_spatial_overlap,
    render_rgb,
    spatial_overlap,
)
from torchgeo_decur.models import create_projector

GROUPS = {'common': slice(0, 2), 'unique': slice(2, 4)}


class MaskedStage(nn.Module):
    """A 'last conv stage' whose channels 0-1 see only the top-left quadrant
    of the map and channels 2-3 only the bottom-right one."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        nn.init.uniform_(self.conv.weight, 0.1, 1.0)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.conv(x))
        h, w = y.shape[-2:]
        mask = torch.zeros_like(y)
        mask[:, :2, : h // 2, : w // 2] = 1
        mask[:, 2:, h // 2 :, w // 2 :] = 1
        return y * mask


class QuadrantEncoder(nn.Module):
    """Common features from the top-left quadrant, unique from bottom-right."""

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 6, 3, 2, 1), nn.ReLU())
        nn.init.uniform_(self.stem[0].weight, 0.0, 1.0)
        self.stage = MaskedStage(6)
        self.feature_info = [
            {'num_chs': 6, 'reduction': 2, 'module': 'stem'},
            {'num_chs': 4, 'reduction': 2, 'module': 'stage'},
        ]

    def forward(self, x: Tensor) -> Tensor:
        return self.stage(self.stem(x)).mean(dim=(-2, -1))


class BandEncoder(nn.Module):
    """Common features read bands 0-2, unique features read only band 3."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        weight = torch.rand(4, 4, 3, 3) + 0.1
        weight[:2, 3] = 0  # common channels: not band 3
        weight[2:, :3] = 0  # unique channels: band 3 only
        self.conv.weight.data = weight

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv(x)).pow(2).mean(dim=(-2, -1))


def inputs(n: int = 6, c: int = 3, size: int = 32, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) + 0.1


def test_gradcam_peak_in_region() -> None:
    torch.manual_seed(0)
    encoder = QuadrantEncoder()
    assert gradcam_layer(encoder) == ('stage', encoder.stage)
    x = inputs()
    maps = gradcam_maps(encoder, nn.Identity(), x, GROUPS)
    assert set(maps) == {'common', 'unique'}
    for group, (rows, cols) in {
        'common': (slice(0, 16), slice(0, 16)),
        'unique': (slice(16, 32), slice(16, 32)),
    }.items():
        m = maps[group]
        assert m.shape == (6, 32, 32) and (m >= 0).all()
        for sample in m:
            peak = divmod(int(sample.argmax()), 32)
            assert rows.start <= peak[0] < rows.stop
            assert cols.start <= peak[1] < cols.stop
            # nearly all of the map is in its quadrant (bilinear spill aside)
            assert sample[rows, cols].sum() > 0.9 * sample.sum()
    # the common maps of the two 'modalities' overlap, common vs unique do not
    same = spatial_overlap(maps['common'], maps['common'])
    apart = spatial_overlap(maps['common'], maps['unique'])
    assert torch.allclose(same, torch.ones(6)) and (apart < 0.1).all()


def test_signed_gradcam_keeps_evidence_against_the_target() -> None:
    # a projector that negates: every feature lowers its target, so GradCAM's
    # ReLU leaves nothing and only the signed maps show where the encoder looks
    torch.manual_seed(0)
    encoder, x = QuadrantEncoder(), inputs()
    negate = nn.Linear(4, 4, bias=False)
    nn.init.constant_(negate.weight, 0.0)
    with torch.no_grad():
        negate.weight.fill_diagonal_(-1.0)
    clipped = gradcam_maps(encoder, negate, x, GROUPS)
    assert all((m == 0).all() for m in clipped.values())
    signed = gradcam_maps(encoder, negate, x, GROUPS, relu=False)
    m = signed['unique']
    assert (m <= 0).all() and (m < 0).any()
    for sample in m:  # the strongest evidence, against, in its quadrant
        row, col = divmod(int(sample.argmin()), 32)
        assert row >= 16 and col >= 16
    positive = gradcam_maps(encoder, nn.Identity(), x, GROUPS, relu=False)
    # the overlap counts where the maps look, whatever their sign
    torch.testing.assert_close(
        spatial_overlap(m, positive['unique']), torch.ones(6), atol=1e-4, rtol=0
    )


def test_integrated_gradients_rank_bands() -> None:
    torch.manual_seed(0)
    encoder = BandEncoder()
    x = inputs(c=4)
    importance = band_importance(encoder, nn.Identity(), x, GROUPS, n_steps=16)
    unique, common = importance['unique'], importance['common']
    assert int(unique.argmax()) == 3 and unique[3] > 0.99
    assert common[3] < 1e-6 and int(common.argmax()) != 3
    assert torch.allclose(unique.sum(), torch.tensor(1.0))
    raw = band_importance(
        encoder, nn.Identity(), x, GROUPS, n_steps=16, normalize=False
    )
    assert torch.allclose(raw['unique'] / raw['unique'].sum(), unique)


def test_targets_use_fixed_statistics() -> None:
    encoder = BandEncoder()
    x = inputs(c=4)
    mean, std = embedding_statistics(encoder, nn.Identity(), x)
    z = encoder(x)
    target = EmbeddingTarget(encoder, nn.Identity(), slice(2, 4), mean, std)
    expected = ((z - z.mean(0)) / (z.var(0, unbiased=False) + 1e-5).sqrt())[:, 2:]
    torch.testing.assert_close(target(x), expected.mean(1))
    # each sample's target does not depend on the rest of the batch
    torch.testing.assert_close(target(x[:1]), target(x)[:1])


def test_convnet_small_and_resnet() -> None:
    torch.manual_seed(0)
    for name, layer in (('convnet_small', 'stages.3'), ('resnet18', 'layer4')):
        kwargs = {'widths': (4, 8, 8, 16)} if name == 'convnet_small' else {}
        backbone = timm.create_model(name, in_chans=2, num_classes=0, **kwargs)
        projector = create_projector(backbone.num_features, [16, 8])
        assert gradcam_layer(backbone)[0] == layer
        x = inputs(n=4, c=2)
        maps = gradcam_maps(backbone, projector, x, {'common': slice(0, 6)})
        assert maps['common'].shape == (4, 32, 32)
        assert backbone.training  # modes restored
    with pytest.raises(ValueError, match='vision transformer'):
        gradcam_layer(
            timm.create_model(
                'vit_tiny_patch16_224', img_size=32, num_classes=0, in_chans=2
            )
        )
    with pytest.raises(ValueError, match='vision transformer'):
        gradcam_layer(timm.create_model('mit_b0', in_chans=3, num_classes=0))
    with pytest.raises(ValueError, match='no Conv2d'):
        gradcam_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 4)))


def test_spatial_overlap() -> None:
    a = torch.zeros(3, 8, 8)
    a[:, :4] = 1
    b = a.clone()
    b[1] = 0
    b[1, 4:] = 1  # disjoint
    b[2] = 0  # empty
    overlap = spatial_overlap(a, b)
    assert overlap[0] == pytest.approx(1.0) and overlap[1] == pytest.approx(0.0)
    assert torch.isnan(overlap[2])
    # other sizes are compared at the size of the first maps
    assert spatial_overlap(a[:1], a[:1, ::2, ::2])[0] == pytest.approx(1.0, abs=0.05)


def test_render_rgb() -> None:
    x = torch.rand(13, 16, 16)
    rgb = render_rgb(x, 's2c')  # B4, B3, B2 = channels 3, 2, 1
    assert rgb.shape == (16, 16, 3) and rgb.min() >= 0 and rgb.max() <= 1
    stretched = np.clip(
        (x[3].numpy() - np.percentile(x[3], 2))
        / (np.percentile(x[3], 98) - np.percentile(x[3], 2)),
        0,
        1,
    )
    np.testing.assert_allclose(rgb[..., 0], stretched, atol=1e-6)
    grey = render_rgb(torch.rand(1, 16, 16), 'dem')
    assert np.array_equal(grey[..., 0], grey[..., 2])
    # SAR: VV, VH, VV - VH, each stretched
    vv, vh = torch.rand(16, 16), torch.rand(16, 16) * 5
    sar = render_rgb(torch.stack([vv, vh]), 's1')
    assert not np.array_equal(sar[..., 0], sar[..., 1])
    one = render_rgb(torch.stack([vv, vv]), 'dem')  # the first band, grey
    np.testing.assert_allclose(sar[..., 0], one[..., 0], atol=1e-6)
    single = render_rgb(torch.stack([vv - vh, vv - vh]), 'dem')
    np.testing.assert_allclose(sar[..., 2], single[..., 0], atol=1e-6)
    assert render_rgb(torch.zeros(2, 4, 4), 'not-registered').max() == 0


def test_plots() -> None:
    x1, x2 = inputs(n=3, c=2), inputs(n=3, c=13)
    maps = {'common': torch.rand(3, 32, 32), 'unique': torch.rand(3, 32, 32)}
    fig = plot_gradcam(x1, x2, maps, maps, ('s1', 's2c'), max_samples=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [
        's1 input',
        's1 common',
        's1 unique',
        's2c input',
        's2c common',
        's2c unique',
    ]
    assert len(fig.axes) == 2 * 6 + 1  # and the colour bar
    assert fig.axes[-1].get_ylabel() == 'GradCAM (scaled to max)'
    signed = {'common': maps['common'] - 0.5, 'unique': torch.zeros(3, 32, 32)}
    fig = plot_gradcam(x1, x2, signed, signed, ('s1', 's2c'), max_samples=2)
    assert 'red raises, blue lowers' in fig.axes[-1].get_ylabel()
    assert fig.axes[-1].get_ylim() == (-1.0, 1.0)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == ['zero'] * 4  # the all-zero unique maps, 2 rows x 2 modalities
    fig = plot_spatial_overlap(
        {'common': np.array([0.9, 0.8, np.nan]), 'unique': np.array([0.2, 0.3])},
        ('s1', 's2c'),
    )
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ['common (mean 0.85, n=2)', 'unique (mean 0.25, n=2)']
    fig = plot_band_importance(
        {'s1': {'common': np.array([0.4, 0.6]), 'unique': np.array([0.5, 0.5])}},
        {'s1': ['VV', 'VH']},
    )
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ['VV', 'VH']
