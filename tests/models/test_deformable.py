import math
from collections.abc import Iterator

import pytest
import timm
import torch
from torch import Tensor, nn

from torchgeo_decur.models.deformable import (
    DeformableAttention2d,
    DeformableResNet,
    add_deformable_attention,
    deformable_config,
)

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])

# Parameter names and shapes of the authors' DAttentionBaseline (zhu-xlab/DeCUR,
# models/dat/dat_blocks.py) as DeCUR builds da*_l3 / da*_l4 for ResNet-50:
# conv_offset = Sequential(depthwise conv k x k stride s over the group's
# channels, LayerNormProxy (its LayerNorm is `.norm`), GELU, 1x1 conv to 2
# without bias); proj_q/k/v/out 1x1 convs with bias; rpe_table
# (n_heads, 2 * q_h - 1, 2 * q_w - 1). No buffers.
AUTHORS_L3 = {
    'conv_offset.0.weight': (256, 1, 5, 5),
    'conv_offset.0.bias': (256,),
    'conv_offset.1.norm.weight': (256,),
    'conv_offset.1.norm.bias': (256,),
    'conv_offset.3.weight': (2, 256, 1, 1),
    'proj_q.weight': (1024, 1024, 1, 1),
    'proj_q.bias': (1024,),
    'proj_k.weight': (1024, 1024, 1, 1),
    'proj_k.bias': (1024,),
    'proj_v.weight': (1024, 1024, 1, 1),
    'proj_v.bias': (1024,),
    'proj_out.weight': (1024, 1024, 1, 1),
    'proj_out.bias': (1024,),
    'rpe_table': (8, 27, 27),
}
AUTHORS_L4 = {
    'conv_offset.0.weight': (256, 1, 3, 3),
    'conv_offset.0.bias': (256,),
    'conv_offset.1.norm.weight': (256,),
    'conv_offset.1.norm.bias': (256,),
    'conv_offset.3.weight': (2, 256, 1, 1),
    'proj_q.weight': (2048, 2048, 1, 1),
    'proj_q.bias': (2048,),
    'proj_k.weight': (2048, 2048, 1, 1),
    'proj_k.bias': (2048,),
    'proj_v.weight': (2048, 2048, 1, 1),
    'proj_v.bias': (2048,),
    'proj_out.weight': (2048, 2048, 1, 1),
    'proj_out.bias': (2048,),
    'rpe_table': (16, 13, 13),
}


@pytest.fixture(autouse=True, scope='module')
def one_thread() -> Iterator[None]:
    """Small models: one thread is as fast, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def resnet18(in_chans: int = 4) -> nn.Module:
    torch.manual_seed(0)
    model = timm.create_model('resnet18', in_chans=in_chans, num_classes=0)
    # non-trivial BN statistics and residual branches (timm zero-inits them)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def small_block(stride: int = 2, query_size: int | tuple[int, int] = 4):
    torch.manual_seed(0)
    block = DeformableAttention2d(
        channels=8,
        heads=4,
        groups=2,
        stride=stride,
        offset_kernel=3,
        query_size=query_size,
    ).double()
    with torch.no_grad():
        block.rpe_table.normal_()
        # large offsets: some positions move by pixels, some are clamped
        block.conv_offset[3].weight.mul_(20)
    return block.eval()


# --- a plain reference computation, loops and einsum only -------------------


def bilinear(img: Tensor, y: float, x: float) -> Tensor:
    """img (C, H, W) at pixel coordinates (y, x), zero outside."""
    _, h, w = img.shape
    y0, x0 = math.floor(y), math.floor(x)
    out = torch.zeros(img.shape[0], dtype=img.dtype)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * img[:, yy, xx]
    return out


def to_pixel(p: float, size: int) -> float:
    """grid_sample coordinate (align_corners=True) to pixel coordinate."""
    return (p + 1) / 2 * (size - 1)


def conv1x1(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """x (C, ...) -> (C', ...)."""
    w = conv.weight[:, :, 0, 0]
    return torch.einsum('oc,c...->o...', w, x) + conv.bias.view(-1, *[1] * (x.ndim - 1))


def reference_forward(block: DeformableAttention2d, x: Tensor) -> Tensor:
    """The authors' maths for one image x (C, H, W), written out."""
    c, h, w = x.shape
    g, cg = block.groups, block.group_channels
    heads, hc = block.heads, block.head_channels
    hq, wq = block.query_size
    q = conv1x1(block.proj_q, x)
    offsets = block.conv_offset(q.reshape(g, cg, h, w))  # (g, 2, Hk, Wk): dy, dx
    hk, wk = offsets.shape[-2:]
    pos = torch.zeros(g, hk, wk, 2, dtype=x.dtype)
    sampled = torch.zeros(c, hk * wk, dtype=x.dtype)
    for gi in range(g):
        for i in range(hk):
            for j in range(wk):
                ry = (i + 0.5) / (hk - 1) * 2 - 1
                rx = (j + 0.5) / (wk - 1) * 2 - 1
                py = min(max(ry + offsets[gi, 0, i, j].item(), -1.0), 1.0)
                px = min(max(rx + offsets[gi, 1, i, j].item(), -1.0), 1.0)
                pos[gi, i, j] = torch.tensor([py, px], dtype=x.dtype)
                sampled[gi * cg : (gi + 1) * cg, i * wk + j] = bilinear(
                    x[gi * cg : (gi + 1) * cg], to_pixel(py, h), to_pixel(px, w)
                )
    k = conv1x1(block.proj_k, sampled)
    v = conv1x1(block.proj_v, sampled)
    out = torch.zeros(c, h * w, dtype=x.dtype)
    for head in range(heads):
        gi = head // (heads // g)
        ch = slice(head * hc, (head + 1) * hc)
        for a in range(h):
            for b in range(w):
                logits = []
                for s in range(hk * wk):
                    py, px = pos[gi, s // wk, s % wk].tolist()
                    qy, qx = a / (h - 1) * 2 - 1, b / (w - 1) * 2 - 1
                    dy, dx = (qy - py) / 2, (qx - px) / 2
                    bias = bilinear(
                        block.rpe_table[head : head + 1].detach(),
                        to_pixel(dy, 2 * hq - 1),
                        to_pixel(dx, 2 * wq - 1),
                    )
                    dot = q[ch, a, b] @ k[ch, s] / math.sqrt(hc)
                    logits.append(dot + bias[0])
                attn = torch.softmax(torch.stack(logits), 0)
                out[ch, a * w + b] = v[ch] @ attn
    return conv1x1(block.proj_out, out.reshape(c, h, w))


class TestDeformableAttention2d:
    @pytest.mark.parametrize(('stride', 'size'), [(2, (5, 6)), (1, (4, 5))])
    def test_matches_reference(self, stride: int, size: tuple[int, int]) -> None:
        block = small_block(stride, query_size=(4, 3))
        x = torch.randn(2, 8, *size, dtype=torch.float64)
        with torch.no_grad():
            out = block(x)
            pos = block.sampling_positions(x)
            for n in range(2):
                expected = reference_forward(block, x[n])
                torch.testing.assert_close(out[n], expected, rtol=1e-9, atol=1e-9)
        # the test is not vacuous: offsets move points, some to the border
        assert (pos.abs() == 1).any()
        assert ((pos.abs() < 1) & (pos.abs() > 0.05)).any()

    def test_zero_offsets_hand_checked(self) -> None:
        block = DeformableAttention2d(4, 1, 1, stride=1, offset_kernel=3).double()
        with torch.no_grad():
            block.conv_offset[3].weight.zero_()
            for proj in (block.proj_k, block.proj_v, block.proj_out):
                proj.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
                proj.bias.zero_()
            block.proj_q.weight.zero_()  # zero queries: only the bias counts
            block.proj_q.bias.zero_()
            block.rpe_table.zero_()  # uniform attention
        x = torch.randn(2, 4, 4, 4, dtype=torch.float64)
        pos = block.sampling_positions(x)
        # key cell centres (i + 0.5) / (Hk - 1), the last one clamped to 1
        axis = torch.tensor([-2 / 3, 0, 2 / 3, 1], dtype=torch.float64)
        torch.testing.assert_close(pos[0, 0, :, 0, 0], axis)
        torch.testing.assert_close(pos[0, 0, 0, :, 1], axis)
        # pixels 0.5, 1.5, 2.5, 3: every pixel's weight in the mean of samples
        wt = torch.tensor([1, 2, 2, 3], dtype=torch.float64) / 8
        mean = torch.einsum('ncij,i,j->nc', x, wt, wt)
        out = block(x)
        torch.testing.assert_close(out, mean[:, :, None, None].expand_as(out))

    def test_position_bias_reads_table(self) -> None:
        block = small_block(stride=1, query_size=(4, 5))
        h, w = block.query_size
        ys = torch.linspace(-1, 1, h, dtype=torch.float64)
        xs = torch.linspace(-1, 1, w, dtype=torch.float64)
        grid = torch.stack(torch.meshgrid(ys, xs, indexing='ij'), -1)
        pos = grid.expand(3 * block.groups, -1, -1, -1)  # keys at the queries
        bias = block._position_bias(pos, h, w).detach()
        assert bias.shape == (3, block.heads, h * w, h * w)
        table = block.rpe_table.detach()
        centre = table[:, h - 1, w - 1]
        torch.testing.assert_close(bias.diagonal(dim1=2, dim2=3)[0].T[0], centre)
        for qi in range(h * w):
            for ki in range(h * w):
                dy = qi // w - ki // w
                dx = qi % w - ki % w
                expected = table[:, h - 1 + dy, w - 1 + dx]
                torch.testing.assert_close(bias[2, :, qi, ki], expected)

    @pytest.mark.parametrize(('stage', 'size'), [(3, 14), (4, 7)])
    def test_resnet50_config(self, stage: int, size: int) -> None:
        channels = {3: 1024, 4: 2048}[stage]
        torch.manual_seed(0)
        block = DeformableAttention2d(**deformable_config(channels, stage))
        expected = AUTHORS_L3 if stage == 3 else AUTHORS_L4
        shapes = {k: tuple(v.shape) for k, v in block.state_dict().items()}
        assert shapes == expected
        x = torch.randn(1, channels, size, size)
        with torch.no_grad():
            out = block(x)
            pos = block.sampling_positions(x)
        assert out.shape == x.shape
        assert torch.isfinite(out).all()
        assert pos.shape == (1, block.groups, 7, 7, 2)  # 49 keys per group

    def test_loads_authors_keys(self) -> None:
        torch.manual_seed(1)
        source = DeformableAttention2d(**deformable_config(1024, 3))
        authors = {f'module.da1_l3.{k}': v for k, v in source.state_dict().items()}
        target = DeformableAttention2d(**deformable_config(1024, 3))
        prefix = 'module.da1_l3.'
        target.load_state_dict({k.removeprefix(prefix): v for k, v in authors.items()})
        x = torch.randn(1, 1024, 14, 14)
        with torch.no_grad():
            torch.testing.assert_close(target(x), source(x))

    @pytest.mark.parametrize('device', DEVICES)
    def test_gradients(self, device: str) -> None:
        block = small_block(stride=2).float().train().to(device)
        x = torch.randn(2, 8, 7, 6, device=device, requires_grad=True)
        (block(x) * torch.randn(2, 8, 7, 6, device=device)).sum().backward()
        for name, p in block.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name
        assert x.grad is not None
        assert x.grad.abs().sum() > 0

    @pytest.mark.parametrize(
        ('kwargs', 'match'),
        [
            ({'channels': 0}, 'channels'),
            ({'heads': 0}, 'heads'),
            ({'groups': -1}, 'groups'),
            ({'stride': 0}, 'stride'),
            ({'offset_kernel': 2.5}, 'offset_kernel'),
            ({'query_size': 0}, 'query_size'),
            ({'query_size': (7, 7, 7)}, 'query_size'),
            ({'heads': 3}, 'divisible by heads'),
            ({'groups': 3}, 'divisible by groups'),
            ({'attn_drop': 1.0}, 'attn_drop'),
            ({'proj_drop': -0.1}, 'proj_drop'),
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, object], match: str) -> None:
        args: dict[str, object] = {
            'channels': 16,
            'heads': 4,
            'groups': 2,
            'stride': 1,
            'offset_kernel': 3,
        }
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            DeformableAttention2d(**args)  # type: ignore[arg-type]

    def test_bad_input(self) -> None:
        block = DeformableAttention2d(16, 4, 2, 1, 3)
        with pytest.raises(ValueError, match=r'\(N, 16, H, W\)'):
            block(torch.randn(1, 8, 4, 4))


class TestDeformableConfig:
    @pytest.mark.parametrize(
        ('channels', 'stage', 'expected'),
        [
            (1024, 3, (8, 4, 2, 5, 14)),
            (2048, 4, (16, 8, 1, 3, 7)),
            (256, 3, (2, 1, 2, 5, 14)),
            (512, 4, (4, 2, 1, 3, 7)),
            (64, 3, (1, 1, 2, 5, 14)),
            (640, 4, (5, 1, 1, 3, 7)),
        ],
    )
    def test_config(self, channels: int, stage: int, expected: tuple[int, ...]) -> None:
        config = deformable_config(channels, stage)
        keys = ('heads', 'groups', 'stride', 'offset_kernel', 'query_size')
        assert tuple(config[k] for k in keys) == expected
        DeformableAttention2d(**config)  # valid

    @pytest.mark.parametrize(
        ('channels', 'stage', 'match'),
        [(1024, 2, 'stage'), (0, 3, 'channels')],
    )
    def test_bad(self, channels: int, stage: int, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            deformable_config(channels, stage)


@pytest.fixture
def pair() -> tuple[nn.Module, DeformableResNet]:
    resnet = resnet18()
    torch.manual_seed(0)
    return resnet, add_deformable_attention(resnet).eval()


class TestDeformableResNet:
    def test_keys_and_attributes(self, pair: tuple[nn.Module, DeformableResNet]):
        resnet, model = pair
        plain = set(resnet.state_dict())
        keys = set(model.state_dict())
        assert plain <= keys
        extra = keys - plain
        assert extra == {f'da_l3.{k}' for k in model.da_l3.state_dict()} | {
            f'da_l4.{k}' for k in model.da_l4.state_dict()
        }
        assert model.da_l3.heads == 2 and model.da_l3.groups == 1
        assert model.da_l4.heads == 4 and model.da_l4.groups == 2
        assert model.num_features == 512
        assert model.feature_info == resnet.feature_info
        assert model.pretrained_cfg == resnet.pretrained_cfg
        assert model.default_cfg == resnet.default_cfg
        assert model.layer3 is resnet.layer3  # adopted, not copied

    def test_shapes(self, pair: tuple[nn.Module, DeformableResNet]) -> None:
        _, model = pair
        x = torch.randn(2, 4, 64, 64)
        with torch.no_grad():
            pooled = model(x)
            features = model.forward_features(x)
            maps = model.forward_intermediates(x, indices=3, intermediates_only=True)
            final, all_maps = model.forward_intermediates(x)
        assert pooled.shape == (2, 512)
        assert features.shape == (2, 512, 2, 2)
        assert [m.shape[1:] for m in maps] == [(128, 8, 8), (256, 4, 4), (512, 2, 2)]
        assert len(all_maps) == 5
        torch.testing.assert_close(final, features)
        torch.testing.assert_close(model.forward_head(features), pooled)
        torch.testing.assert_close(all_maps[-1], features)

    def test_attended_maps(self, pair: tuple[nn.Module, DeformableResNet]) -> None:
        resnet, model = pair
        x = torch.randn(2, 4, 64, 64)
        with torch.no_grad():
            y = resnet.maxpool(resnet.act1(resnet.bn1(resnet.conv1(x))))
            y3 = resnet.layer3(resnet.layer2(resnet.layer1(y)))
            y3 = y3 + model.da_l3(y3)
            y4 = resnet.layer4(y3)
            y4 = y4 + model.da_l4(y4)
            maps = model.forward_intermediates(x, indices=[3, 4], stop_early=True)
            plain = resnet.forward_intermediates(x, indices=2, intermediates_only=True)
        _, (m3, m4) = maps
        torch.testing.assert_close(m3, y3)
        torch.testing.assert_close(m4, y4)
        assert not torch.allclose(m4, plain[1])  # the attention does something

    def test_zero_output_projection_is_plain(
        self, pair: tuple[nn.Module, DeformableResNet]
    ) -> None:
        resnet, model = pair
        with torch.no_grad():
            for block in (model.da_l3, model.da_l4):
                block.proj_out.weight.zero_()
                block.proj_out.bias.zero_()
            x = torch.randn(2, 4, 64, 64)
            assert torch.equal(model(x), resnet(x))
            ours = model.forward_intermediates(x, indices=4, intermediates_only=True)
            theirs = resnet.forward_intermediates(x, indices=4, intermediates_only=True)
        for a, b in zip(ours, theirs, strict=True):
            assert torch.equal(a, b)

    def test_gradients(self, pair: tuple[nn.Module, DeformableResNet]) -> None:
        _, model = pair
        model.train()
        x = torch.randn(2, 4, 96, 96)
        (model(x) * torch.randn(2, 512)).sum().backward()
        for name, p in model.named_parameters():
            if name.startswith('da_'):
                assert p.grad is not None, name
                assert torch.isfinite(p.grad).all(), name
                assert p.grad.abs().sum() > 0, name

    @pytest.mark.parametrize('size', [(96, 96), (160, 160), (96, 128), (32, 32)])
    def test_other_sizes(
        self, pair: tuple[nn.Module, DeformableResNet], size: tuple[int, int]
    ) -> None:
        _, model = pair
        torch.manual_seed(2)
        x = torch.randn(2, 4, *size)
        with torch.no_grad():
            y = model(x)
            y_near = model(x + 1e-4 * torch.randn_like(x))
            maps = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert y.shape == (2, 512)
        assert torch.isfinite(y).all()
        assert maps[0].shape[-2:] == ((size[0] + 15) // 16, (size[1] + 15) // 16)
        # a small change of the input makes a small change of the features
        assert (y_near - y).norm() < 1e-2 * y.norm()

    def test_grad_checkpointing_and_classifier(
        self, pair: tuple[nn.Module, DeformableResNet]
    ) -> None:
        _, model = pair
        x = torch.randn(1, 4, 64, 64)
        with torch.no_grad():
            y = model(x)
            model.set_grad_checkpointing(True)
            torch.testing.assert_close(model(x), y)
            model.reset_classifier(5)
            assert model(x).shape == (1, 5)
        assert model.get_classifier() is model.fc

    @pytest.mark.parametrize('model', [nn.Conv2d(3, 8, 3), 'vit_tiny_patch16_224'])
    def test_not_resnet(self, model: nn.Module | str) -> None:
        if isinstance(model, str):
            model = timm.create_model(model, num_classes=0, img_size=32)
        with pytest.raises(TypeError, match='for ResNet encoders'):
            add_deformable_attention(model)
