"""CoMM task: contrastive multimodal learning with a fused embedding."""

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..losses import CoMMLoss
from ..models import (
    FusionTransformer,
    LatentConverter,
    create_projector,
    encoder_feature_maps,
)
from ..models.heads import feature_info
from .ssl import SSLTask

__all__ = ('CoMMTask',)


class CoMMTask(SSLTask):
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
    modality ``i``'s tokens enter the fusion), every view encoded once, and
    trains them with :class:`~torchgeo_decur.losses.CoMMLoss`. Its terms are
    logged as ``<stage>_loss_joint`` and ``<stage>_loss_mod<i>``.

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

    max_modalities = 2

    def __init__(
        self,
        embed_dim: int = 512,
        num_layers: int = 1,
        num_heads: int = 8,
        temperature: float = 0.1,
        projector_dims: Sequence[int] = (512, 512, 256),
        optimizer: Literal['lars', 'adamw'] = 'adamw',
        lr: float = 1e-3,
        lr_biases: float = 1e-3,
        weight_decay: float = 1e-2,
        **kwargs: Any,
    ) -> None:
        """Initialize a new CoMMTask instance.

        Args:
            embed_dim: Size ``d`` of the tokens and of the fused embedding; a
                multiple of 4 (sin-cos position embeddings) and of *num_heads*.
            num_layers: Number of layers of the fusion transformer.
            num_heads: Number of attention heads of the fusion transformer.
            temperature: Temperature of the NT-Xent (InfoNCE) terms.
            projector_dims: Output sizes of the projection head's layers
                (Linear-BN-ReLU for all but the last, a plain Linear last).
            optimizer: ``'adamw'`` (the authors') or ``'lars'``.
            lr: Learning rate of the weights.
            lr_biases: Learning rate of biases and normalisation parameters,
                which get no weight decay.
            weight_decay: Weight decay of the weights.
            **kwargs: The encoders and the rest of the optimiser
                (:class:`~torchgeo_decur.tasks.SSLTask`): ``modalities``,
                ``model1``, ``model2``, ``weights1``, ``weights2``,
                ``encoders``, ``momentum``, ...

        Raises:
            ValueError: If a size is not positive, *embed_dim* is not a
                multiple of 4 and of *num_heads*, *temperature* is not
                positive, or as :class:`~torchgeo_decur.tasks.SSLTask`.
        """
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
        super().__init__(
            projector_dims=projector_dims,
            optimizer=optimizer,
            lr=lr,
            lr_biases=lr_biases,
            weight_decay=weight_decay,
            **kwargs,
        )

    def configure_heads(self, features: Mapping[str, int]) -> None:
        """Initialize the latent converters, the fusion and the projection head.

        Args:
            features: Size of the pooled features of each modality's encoder.

        Raises:
            ValueError: If an encoder gives no feature maps.
        """
        dim: int = self.hparams['embed_dim']
        # channels of each encoder's last feature map
        self.converters = nn.ModuleDict(
            {
                name: LatentConverter(feature_info(encoder)[-1]['num_chs'], dim)
                for name, encoder in self.encoders.items()
            }
        )
        self.fusion = FusionTransformer(
            dim,
            num_layers=self.hparams['num_layers'],
            num_heads=self.hparams['num_heads'],
        )
        self.projector = create_projector(dim, list(self.hparams['projector_dims']))

    def configure_losses(self) -> None:
        """Initialize CoMM's loss.

        Raises:
            ValueError: If the temperature is not positive.
        """
        self.criterion = CoMMLoss(
            self.hparams['temperature'], self.hparams['gather_distributed']
        )

    def legacy_prefixes(self) -> dict[str, str]:
        """State dict prefixes of 0.1 (``converters.<i>.`` too) and their names now.

        Returns:
            ``{'backbone1.': 'encoders.<modality 1>.', ...}``.
        """
        prefixes = super().legacy_prefixes()
        for i, name in enumerate(self.modality_names):
            prefixes[f'converters.{i}.'] = f'converters.{name}.'
        return prefixes

    def tokens(self, modality: str, x: Tensor) -> Tensor:
        """Encode one modality and turn its last feature map into tokens.

        Args:
            modality: Modality name.
            x: Its images of shape ``(B, C, H, W)``.

        Returns:
            Tokens of shape ``(B, h * w, embed_dim)``.
        """
        (fmap,) = encoder_feature_maps(self.encoders[modality], x, 1)
        converter: LatentConverter = self.converters[modality]  # type: ignore[assignment]
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
        names = self.modality_names
        if len(inputs) != len(names):
            msg = (
                f'inputs must have one entry per modality ({len(names)}), '
                f'got {len(inputs)}'
            )
            raise ValueError(msg)
        tokens = [
            self.tokens(m, x)
            for m, x in zip(names, inputs, strict=True)
            if x is not None
        ]
        if not tokens:
            msg = 'inputs must hold at least one modality (all are None)'
            raise ValueError(msg)
        return self.fusion(tokens)

    @torch.no_grad()
    def representation(self, *inputs: Tensor) -> Tensor:
        """What a linear probe sees: the fused CLS embedding of all modalities.

        Args:
            *inputs: Images ``(B, C_i, H, W)`` of each modality, in order.

        Returns:
            Features of shape ``(B, embed_dim)``.
        """
        return self.embed(inputs)

    def compute_loss(
        self, views: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """CoMM's loss of the two augmentations of all modalities.

        Args:
            views: ``{modality: views of shape (B, 2, C, H, W)}``; view 0 of
                every modality is ``X'``, view 1 is ``X''``.

        Returns:
            The loss and its terms ``loss_joint``, ``loss_mod<i>``.
        """
        joint: list[Tensor] = []
        single: list[list[Tensor]] = []
        for v in (0, 1):  # X', X''
            # each view of each modality is encoded once
            tokens = [self.tokens(m, x[:, v]) for m, x in views.items()]
            joint.append(self.projector(self.fusion(tokens)))
            single.append([self.projector(self.fusion([t])) for t in tokens])
        loss = self.criterion(joint[0], joint[1], single[0], single[1])
        return loss, dict(self.criterion.terms)
