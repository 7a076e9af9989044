"""CoMM task: contrastive multimodal learning with a fused embedding."""

from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightly.loss import NTXentLoss
from torch import Tensor, nn
from torchvision.models._api import WeightsEnum

from ..models import (
    FusionTransformer,
    LatentConverter,
    create_projector,
    encoder_feature_maps,
)
from ..models.heads import _feature_info
from ._ssl import PairedSSLTask


class CoMMTask(PairedSSLTask):
    r"""CoMM: Contrastive MultiModal learning.

    One encoder per modality; a :class:`~torchgeo_decur.models.LatentConverter`
    per modality turns the encoder's last feature map into tokens (1x1
    convolution to ``embed_dim`` channels, one token per position, fixed 2D
    sin-cos position embeddings); a
    :class:`~torchgeo_decur.models.FusionTransformer` fuses the tokens of the
    modalities with a CLS token, whose output is the multimodal embedding; a
    projection head (Linear-BN-ReLU x2, Linear) maps it to the space of the
    loss.

    Each step embeds, from two augmentations ``X'`` and ``X''`` of the
    multimodal input, the fused embeddings ``Z'`` and ``Z''`` (all
    modalities) and, for each modality ``i``, ``Z'_i`` and ``Z''_i`` (only
    modality ``i``'s tokens enter the fusion). Every view is encoded once.
    With ``L(a, b)`` the NT-Xent (SimCLR) loss of projected embeddings, the
    loss is

    .. math::

        L(Z', Z'') + \sum_i \frac{L(Z'_i, Z'') + L(Z''_i, Z')}{2}

    the paper's :math:`-I(Z', Z'') - \sum_i (I(Z_i, Z') + I(Z_i, Z''))/2`
    with InfoNCE estimates: a modality's embedding of one augmentation is
    contrasted with the fused embedding of the other. (The authors' code
    averages the ``n + 1`` terms instead of summing them, a factor of
    ``1 / (n + 1)``.) The terms are logged as ``<stage>_loss_joint`` and
    ``<stage>_loss_mod<i>``.

    Batches are dicts with ``image1`` of shape ``(B, 2, C1, H, W)`` and
    ``image2`` of shape ``(B, 2, C2, H, W)``: two augmented views (dim 1) of
    each modality; view 0 of every modality is ``X'``, view 1 is ``X''``.

    :meth:`representation` (what a linear probe sees) is the fused CLS
    embedding, before the projection head; :meth:`embed` gives it for any
    subset of the modalities (missing-modality evaluation).

    Encoders: any timm model whose ``forward_intermediates`` gives feature
    maps (ResNets, MiT, DeCUR's deformable ResNets, ...). For ViTs, timm
    returns the last block's patch tokens reshaped to a map (class and
    register tokens dropped, before the final norm), which is what the
    converter sees; the ViT's final norm then gets no gradient, so DDP needs
    ``--trainer.strategy=ddp_find_unused_parameters_true``.

    Defaults follow the authors' code (``Duplums/CoMM``): fusion width 512
    (their image experiments), 1 layer, 8 heads, a 512-512-256 projection
    head, temperature 0.1, AdamW with lr 1e-3 and weight decay 1e-2 (their
    MultiBench runs, which train ResNet-18 image encoders from scratch); no
    weight decay on biases and normalisation parameters, as theirs.

    If you use this task in your research, please cite the following paper:

    * https://arxiv.org/abs/2409.07402

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        model1: str = 'resnet50',
        model2: str = 'resnet50',
        in_channels1: int | None = None,
        in_channels2: int | None = None,
        modalities: Sequence[str] = ('s1', 's2c'),
        weights1: WeightsEnum | str | bool | None = None,
        weights2: WeightsEnum | str | bool | None = None,
        model_kwargs1: dict[str, Any] | None = None,
        model_kwargs2: dict[str, Any] | None = None,
        embed_dim: int = 512,
        num_layers: int = 1,
        num_heads: int = 8,
        projector_dims: Sequence[int] = (512, 512, 256),
        temperature: float = 0.1,
        lr: float = 1e-3,
        lr_biases: float = 1e-3,
        weight_decay: float = 1e-2,
        momentum: float = 0.9,
        warmup_epochs: float = 0,
        optimizer: Literal['lars', 'adamw'] = 'adamw',
        deformable_attention: bool | None = None,
        gather_distributed: bool = True,
    ) -> None:
        """Initialize a new CoMMTask instance.

        Args:
            model1: Name of the `timm <https://huggingface.co/docs/timm>`__ model
                for modality 1 (any model with ``forward_intermediates``).
            model2: Name of the timm model for modality 2.
            in_channels1: Number of input channels of modality 1; None takes
                the registered modality's number of bands.
            in_channels2: Number of input channels of modality 2, as
                *in_channels1*.
            modalities: Names of the two modalities (see
                :func:`~torchgeo_decur.modalities.register_modality`), recorded
                in the checkpoint.
            weights1: Initial weights of encoder 1: a weight enum, its name, a
                path to a state dict or checkpoint, True for timm's ImageNet
                weights, or None for random weights. From joint DeCUR weights
                the encoder of ``modalities[0]`` is taken.
            weights2: Initial weights of encoder 2, as *weights1*.
            model_kwargs1: Extra keyword arguments for ``timm.create_model`` of
                encoder 1 (e.g. ``{'img_size': 64}`` for a ViT).
            model_kwargs2: Extra keyword arguments for encoder 2.
            embed_dim: Size ``d`` of the tokens and of the fused embedding; a
                multiple of 4 (sin-cos position embeddings) and of *num_heads*.
            num_layers: Number of layers of the fusion transformer.
            num_heads: Number of attention heads of the fusion transformer.
            projector_dims: Output sizes of the projection head's layers
                (Linear-BN-ReLU for all but the last, a plain Linear last).
            temperature: Temperature of the NT-Xent (InfoNCE) terms.
            lr: Learning rate of the weights.
            lr_biases: Learning rate of biases and normalisation parameters,
                which get no weight decay.
            weight_decay: Weight decay of the weights.
            momentum: Momentum of LARS (unused by AdamW).
            warmup_epochs: Epochs of linear warm-up before the cosine decay.
            optimizer: ``'adamw'`` (the authors') or ``'lars'``.
            deformable_attention: Add DeCUR's deformable attention after stages
                3 and 4 of both (ResNet) encoders; None follows the initial
                weights (see :class:`~torchgeo_decur.tasks.DeCURTask`).
            gather_distributed: Gather embeddings from all processes so that the
                loss is that of the global batch under DDP.

        Raises:
            ValueError: If *modalities* does not name two known modalities,
                a size is not positive, *embed_dim* is not a multiple of 4 and
                of *num_heads*, *temperature* is not positive, or *optimizer*
                is unknown.
        """
        self.check_optimizer(optimizer)
        for name, value in (
            ('embed_dim', embed_dim),
            ('num_layers', num_layers),
            ('num_heads', num_heads),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f'{name} must be a positive int, got {value!r}'
                raise ValueError(msg)
        if embed_dim % 4 or embed_dim % num_heads:
            msg = (
                f'embed_dim={embed_dim} must be a multiple of 4 (sin-cos position '
                f'embeddings) and of num_heads={num_heads}'
            )
            raise ValueError(msg)
        if not temperature > 0:
            msg = f'temperature must be positive, got {temperature}'
            raise ValueError(msg)
        self.weights1 = weights1
        self.weights2 = weights2
        super().__init__()

    @property
    def backbones(self) -> list[nn.Module]:
        """The encoders, one per modality, in the order of ``modalities``."""
        return [self.backbone1, self.backbone2]

    def configure_heads(self, features1: int, features2: int) -> None:
        """Initialize the latent converters, the fusion and the projection head.

        Args:
            features1: Size of the pooled features of encoder 1.
            features2: Size of the pooled features of encoder 2.

        Raises:
            ValueError: If an encoder gives no feature maps.
        """
        dim: int = self.hparams['embed_dim']
        # channels of each encoder's last feature map
        channels = [_feature_info(b)[-1]['num_chs'] for b in self.backbones]
        self.converters = nn.ModuleList(LatentConverter(c, dim) for c in channels)
        self.fusion = FusionTransformer(
            dim,
            num_layers=self.hparams['num_layers'],
            num_heads=self.hparams['num_heads'],
        )
        self.projector = create_projector(dim, list(self.hparams['projector_dims']))

    def configure_losses(self) -> None:
        """Initialize the NT-Xent loss of every InfoNCE term."""
        self.criterion = NTXentLoss(
            temperature=self.hparams['temperature'],
            gather_distributed=self.hparams['gather_distributed'],
        )

    def tokens(self, index: int, x: Tensor) -> Tensor:
        """Encode one modality and turn its last feature map into tokens.

        Args:
            index: 0-based number of the modality.
            x: Its images of shape ``(B, C, H, W)``.

        Returns:
            Tokens of shape ``(B, h * w, embed_dim)``.
        """
        (fmap,) = encoder_feature_maps(self.backbones[index], x, 1)
        converter: LatentConverter = self.converters[index]  # type: ignore[assignment]
        return converter(fmap)

    def embed(self, inputs: Sequence[Tensor | None]) -> Tensor:
        """Fused embedding of any subset of the modalities.

        A missing modality (None) contributes no tokens to the fusion, as in
        training's per-modality embeddings.

        Args:
            inputs: One entry per modality, in the order of ``modalities``: its
                images ``(B, C_i, H, W)``, or None if it is missing.

        Returns:
            The fused CLS embedding of shape ``(B, embed_dim)`` (before the
            projection head).

        Raises:
            ValueError: If *inputs* does not have one entry per modality or
                all are None.
        """
        inputs = list(inputs)
        n = len(self.backbones)
        if len(inputs) != n:
            msg = f'inputs must have one entry per modality ({n}), got {len(inputs)}'
            raise ValueError(msg)
        tokens = [self.tokens(i, x) for i, x in enumerate(inputs) if x is not None]
        if not tokens:
            msg = 'inputs must hold at least one modality (all are None)'
            raise ValueError(msg)
        return self.fusion(tokens)

    @torch.no_grad()
    def representation(self, x1: Tensor, x2: Tensor) -> Tensor:
        """What a linear probe sees of a pair: the fused CLS embedding.

        Args:
            x1: Modality 1 images of shape ``(B, C1, H, W)``.
            x2: Modality 2 images of shape ``(B, C2, H, W)``.

        Returns:
            Features of shape ``(B, embed_dim)``.
        """
        return self.embed([x1, x2])

    def comm_loss(
        self,
        joint1: Tensor,
        joint2: Tensor,
        single1: Sequence[Tensor],
        single2: Sequence[Tensor],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """CoMM's loss of projected embeddings.

        Args:
            joint1: Projected ``Z'`` (all modalities of augmentation 1).
            joint2: Projected ``Z''`` (all modalities of augmentation 2).
            single1: Projected ``Z'_i`` for each modality ``i``.
            single2: Projected ``Z''_i`` for each modality ``i``.

        Returns:
            The loss ``L(Z', Z'') + sum_i (L(Z'_i, Z'') + L(Z''_i, Z')) / 2``
            and its terms ``loss_joint`` and ``loss_mod<i>`` (1-based).
        """
        terms = {'loss_joint': self.criterion(joint1, joint2)}
        for i, (z1, z2) in enumerate(zip(single1, single2, strict=True), start=1):
            terms[f'loss_mod{i}'] = (
                self.criterion(z1, joint2) + self.criterion(z2, joint1)
            ) / 2
        loss = torch.stack(list(terms.values())).sum()
        return loss, terms

    def shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        """Compute and log the loss of one batch.

        Args:
            batch: The batch.
            stage: ``train`` or ``val``.

        Returns:
            The total loss.
        """
        views = [
            self.views(batch, f'image{i}', i) for i in range(1, len(self.backbones) + 1)
        ]
        joint: list[Tensor] = []
        single: list[list[Tensor]] = []
        for v in (0, 1):  # X', X''
            # each view of each modality is encoded once
            tokens = [self.tokens(i, x[:, v]) for i, x in enumerate(views)]
            joint.append(self.projector(self.fusion(tokens)))
            single.append([self.projector(self.fusion([t])) for t in tokens])
        loss, terms = self.comm_loss(joint[0], joint[1], single[0], single[1])
        self.log_losses(stage, loss, terms, views[0].shape[0])
        return loss
