"""Check CMXSegmentationModel against CMX's own code, weight for weight.

Builds our CMX (two MiT encoders, rectification and fusion after every stage,
SegFormer's MLP decoder) and CMX's (``models/encoders/dual_segformer.py`` and
``models/decoders/MLPDecoder.py`` of a checkout of
huaaaliu/RGBX_Semantic_Segmentation), copies every one of our parameters and
buffers into CMX's model by name, and compares the logits of both on the same
random RGB and HHA inputs, in evaluation mode and, after resetting the batch
norm statistics, in training mode.

CMX's decoder fuses with a convolution that has a bias before its batch norm;
segmentation-models-pytorch's (ours) has none. The bias is set to zero in
CMX's copy (in training mode batch norm cancels it anyway), and the parameter
counts are printed with and without it.

Usage::

    git clone https://github.com/huaaaliu/RGBX_Semantic_Segmentation /tmp/cmx
    .venv/bin/python benchmarks/verify_cmx.py --cmx /tmp/cmx [--variant mit_b2]

It also compares our learning-rate schedule
(``torchgeo_decur.tasks.segmentation.warmup_poly_factor``) with CMX's
``WarmUpPolyLR`` at every step of its NYU-Depth v2 run.

Criteria: every CMX tensor receives one of ours of the same shape, the
largest absolute difference of the logits is below 1e-4 in both modes, and
the learning rates agree to 1e-12 at every step.
"""

import argparse
import sys
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

import torchgeo_decur  # noqa: F401  (registers the MiT models with timm)
from torchgeo_decur.models.cmx import CMXSegmentationModel
from torchgeo_decur.tasks.segmentation import warmup_poly_factor

#: Our fusion module's layers -> CMX's (``FeatureFusionModule``).
FFM_NAMES = {
    'split1': 'cross.channel_proj1',
    'split2': 'cross.channel_proj2',
    'attention': 'cross.cross_attn',
    'merge1': 'cross.end_proj1',
    'merge2': 'cross.end_proj2',
    'norm1': 'cross.norm1',
    'norm2': 'cross.norm2',
    'residual': 'channel_emb.residual',
    'embed': 'channel_emb.channel_embed',
    'norm': 'channel_emb.norm',
}


def cmx_name(key: str) -> str:
    """CMX's name of one of our state dict keys."""
    head, _, rest = key.partition('.')
    if head == 'encoders':  # stream 2's stages are CMX's extra_* ones
        index, _, rest = rest.partition('.')
        return f'backbone.{"extra_" if index == "1" else ""}{rest}'
    if head == 'rectify':
        rest = rest.replace('channel_mlp.', 'channel_weights.mlp.')
        return 'backbone.FRMs.' + rest.replace('spatial_mlp.', 'spatial_weights.mlp.')
    if head == 'fuse':
        index, _, rest = rest.partition('.')
        layer, _, rest = rest.partition('.')
        return f'backbone.FFMs.{index}.{FFM_NAMES[layer]}.{rest}'
    if head == 'decoder' and rest.startswith('mlp_stage.'):  # deepest first
        stage = int(rest.split('.')[1])
        return f'decode_head.linear_c{4 - stage}.proj.{rest.split(".")[-1]}'
    if head == 'decoder':
        return 'decode_head.linear_fuse.' + rest.removeprefix('fuse_stage.')
    return 'decode_head.linear_pred.' + rest.removeprefix('1.')


class TheirCMX(nn.Module):
    """CMX's backbone and decoder, as its ``EncoderDecoder`` joins them."""

    def __init__(self, cmx: Path, variant: str, num_classes: int) -> None:
        super().__init__()
        sys.path.insert(0, str(cmx))
        from models.decoders.MLPDecoder import DecoderHead  # type: ignore
        from models.encoders import dual_segformer  # type: ignore
        from utils.init_func import init_weight  # type: ignore

        self.backbone = getattr(dual_segformer, variant)()
        dims = [64, 128, 320, 512] if variant != 'mit_b0' else [32, 64, 160, 256]
        self.decode_head = DecoderHead(
            in_channels=dims, num_classes=num_classes, embed_dim=512
        )
        # as CMX's EncoderDecoder.init_weights: batch norm eps 1e-3, momentum 0.1
        init_weight(
            self.decode_head,
            nn.init.kaiming_normal_,
            nn.BatchNorm2d,
            1e-3,
            0.1,
            mode='fan_in',
            nonlinearity='relu',
        )

    def forward(self, rgb: Tensor, x: Tensor) -> Tensor:
        out = self.decode_head(self.backbone(rgb, x))
        return nn.functional.interpolate(
            out, size=rgb.shape[-2:], mode='bilinear', align_corners=False
        )


def compare_schedule(cmx: Path) -> bool:
    """Our warm-up poly factor against CMX's ``WarmUpPolyLR``, step by step.

    CMX's settings for NYU-Depth v2: 500 epochs of 100 steps (795 images,
    batch 8), 10 warm-up epochs, power 0.9, lr 6e-5.
    """
    sys.path.insert(0, str(cmx))
    from utils.lr_policy import WarmUpPolyLR  # type: ignore

    total, warmup, lr = 500 * 100, 10 * 100, 6e-5
    theirs = WarmUpPolyLR(lr, 0.9, total, warmup)
    diff = max(
        abs(lr * warmup_poly_factor(i, warmup, total, 0.9) - theirs.get_lr(i))
        for i in range(total)
    )
    passed = diff < 1e-12
    verdict = 'PASS' if passed else 'FAIL'
    print(f'lr schedule, {total} steps: max |ours - CMX| = {diff:.1e} {verdict}')
    return passed


def main() -> int:
    """Run the comparison; 0 if both criteria pass."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cmx', type=Path, required=True, help='CMX checkout')
    parser.add_argument('--variant', default='mit_b2')
    parser.add_argument('--size', type=int, nargs=2, default=(96, 128))
    args = parser.parse_args()
    torch.manual_seed(0)
    encoders = [
        timm.create_model(args.variant, in_chans=3, num_classes=0) for _ in range(2)
    ]
    ours = CMXSegmentationModel(encoders, num_classes=40)
    theirs = TheirCMX(args.cmx, args.variant, 40)
    their_state = theirs.state_dict()
    mapped = {cmx_name(k): v for k, v in ours.state_dict().items()}
    missing = sorted(
        set(their_state) - set(mapped) - {'decode_head.linear_fuse.0.bias'}
    )
    unknown = sorted(set(mapped) - set(their_state))
    shapes = [
        k
        for k in mapped
        if k in their_state and their_state[k].shape != mapped[k].shape
    ]
    mapped['decode_head.linear_fuse.0.bias'] = torch.zeros(512)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    print(f'parameters: ours {n_ours:,}, CMX {n_theirs:,} (CMX has a 512 bias more)')
    ok = not missing and not unknown and not shapes
    verdict = 'PASS' if ok else 'FAIL'
    print(f'names: {verdict} (missing {missing[:5]}, unknown {unknown[:5]})')
    print(f'shapes differing: {shapes[:5]}')
    if not ok:
        return 1
    theirs.load_state_dict(mapped, strict=True)
    rgb, hha = torch.randn(2, 2, 3, *args.size).unbind(0)
    for mode in ('eval', 'train'):
        ours.train(mode == 'train')
        theirs.train(mode == 'train')
        torch.manual_seed(1)  # dropout and drop path: identical draws needed
        with torch.no_grad():
            if mode == 'train':  # no randomness: compare the deterministic parts
                for m in (*ours.modules(), *theirs.modules()):
                    if (
                        isinstance(m, nn.Dropout | nn.Dropout2d)
                        or 'DropPath' in type(m).__name__
                    ):
                        m.eval()
            diff = (ours(rgb, hha) - theirs(rgb, hha)).abs().max().item()
        passed = diff < 1e-4
        ok &= passed
        verdict = 'PASS' if passed else 'FAIL'
        print(f'logits, {mode} mode: max |ours - CMX| = {diff:.2e} {verdict}')
    ok &= compare_schedule(args.cmx)
    return 0 if ok else 1


if __name__ == '__main__':
    raise SystemExit(main())
