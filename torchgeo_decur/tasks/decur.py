"""DeCUR task for multimodal self-supervised learning."""

from collections.abc import Sequence
from typing import Any, Literal

from torch import Tensor
from torchvision.models._api import WeightsEnum

from ..losses import DeCURLoss
from ..models import create_projector
from ._ssl import PairedSSLTask


class DeCURTask(PairedSSLTask):
    """DeCUR: Decoupling Common and Unique Representations.

    Two encoders (one per modality), each followed by its own projector, are
    trained with :class:`~torchgeo_decur.losses.DeCURLoss`: the first
    ``common_dim`` embedding dimensions are driven to be correlated across the
    modalities, the others to be decorrelated, and each modality's two views are
    trained with a full Barlow Twins term.

    Batches are dicts with ``image1`` of shape ``(B, 2, C1, H, W)`` and
    ``image2`` of shape ``(B, 2, C2, H, W)``: two augmented views (dim 1) of
    modality 1 and of modality 2. The datamodule draws the augmentations (see
    :mod:`torchgeo_decur.transforms`).

    Defaults are the paper's SAR-optical settings: ResNet-50 per modality, an
    8192-8192-8192 projector, 87.5% common dimensions, lambda 0.0051, and LARS
    with lr 0.2 for weights and 0.0048 for biases and normalisation parameters,
    weight decay 1e-6, momentum 0.9, cosine decay without warm-up (paper,
    Appendix B, and the authors' code). The loss is the paper's Eq. 6 unless
    ``weighting='official'`` (the authors' code, which trained the published
    checkpoints; see :class:`~torchgeo_decur.losses.DeCURLoss`).

    Checkpoints record, for each modality, its bands in channel order and its
    preprocessing (``checkpoint['torchgeo_decur']``), so that exports and
    loaders know what the encoders expect. What the dataset skipped (bad files)
    is logged per epoch as ``train_skipped_samples`` /
    ``train_skipped_seasons``, and the first bad files are named in a warning
    at the end of each epoch.

    If you use this task in your research, please cite the following paper:

    * https://arxiv.org/abs/2309.05300

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
        projector_dims: Sequence[int] = (8192, 8192, 8192),
        common_dim: int | None = None,
        common_share: float = 0.875,
        lambd: float = 0.0051,
        intra: bool = True,
        decouple: bool = True,
        lr: float = 0.2,
        lr_biases: float = 0.0048,
        weight_decay: float = 1e-6,
        momentum: float = 0.9,
        warmup_epochs: float = 0,
        gather_distributed: bool = True,
        weighting: Literal['paper', 'official'] = 'paper',
        optimizer: Literal['lars', 'adamw'] = 'lars',
        deformable_attention: bool | None = None,
    ) -> None:
        """Initialize a new DeCURTask instance.

        Args:
            model1: Name of the `timm <https://huggingface.co/docs/timm>`__ model
                for modality 1 (any model with pooled features).
            model2: Name of the timm model for modality 2.
            in_channels1: Number of input channels of modality 1; None takes
                the registered modality's number of bands (2 for ``s1``). Must
                be given for a modality that is not registered, and is then
                recorded in the checkpoint.
            in_channels2: Number of input channels of modality 2, as
                *in_channels1* (13 for ``s2c``).
            modalities: Names of the two modalities (see
                :func:`~torchgeo_decur.modalities.register_modality`), recorded in the
                checkpoint so exported encoders say what they take.
            weights1: Initial weights of encoder 1: a weight enum, its name, a
                path to a state dict or checkpoint, True for timm's ImageNet
                weights, or None for random weights. From joint DeCUR weights
                (e.g. ``ResNet50_Weights.DECUR_S1S2``) the encoder of
                ``modalities[0]`` is taken.
            weights2: Initial weights of encoder 2, as *weights1*.
            model_kwargs1: Extra keyword arguments for ``timm.create_model`` of
                encoder 1 (e.g. ``{'img_size': 64}`` for a ViT).
            model_kwargs2: Extra keyword arguments for encoder 2.
            projector_dims: Output sizes of the projector layers; the last one is
                the embedding size K.
            common_dim: Number of common embedding dimensions Kc. Defaults to
                ``round(common_share * K)``.
            common_share: Share of common dimensions when *common_dim* is None
                (0.875 for SAR-optical, 0.75 for RGB-DEM and RGB-depth).
            lambd: Weight of the off-diagonal terms.
            intra: Whether to add the intra-modal Barlow Twins terms.
            decouple: Whether to split common and unique dimensions; False makes
                all dimensions common (cross-modal Barlow Twins).
            lr: Learning rate of the weights (LARS).
            lr_biases: Learning rate of biases and normalisation parameters, which
                get neither weight decay nor LARS adaptation.
            weight_decay: Weight decay of the weights.
            momentum: Momentum of LARS.
            warmup_epochs: Epochs of linear warm-up before the cosine decay; 0
                (the paper) for none.
            gather_distributed: Gather embeddings from all processes so that the
                loss is that of the global batch under DDP.
            weighting: How the loss combines its terms: ``'paper'`` (Eq. 6, the
                plain sum) or ``'official'`` (the authors' code).
            optimizer: ``'lars'`` (the paper's ResNet setting; *momentum*
                applies) or ``'adamw'`` (the authors' MiT, ViT and
                deformable-attention runs, with lr 1e-4). Both use the two
                parameter groups (*lr* / *lr_biases*; no weight decay on biases
                and normalisation parameters) and the same schedule.
            deformable_attention: Add deformable attention after stages 3 and
                4 of both (ResNet) encoders, each with its own blocks (DeCUR's
                ECCV version; see :mod:`torchgeo_decur.models.deformable`).
                None follows the initial weights (True for the ``*_RDA``
                entries), False without weights. The value used is recorded
                in the checkpoint.

        Raises:
            ValueError: If *modalities* does not name two known modalities,
                *common_dim* / *common_share* do not fit the projector output,
                or *weighting* or *optimizer* is unknown.
        """
        self.check_optimizer(optimizer)
        self.weights1 = weights1
        self.weights2 = weights2
        super().__init__()

    def configure_heads(self, features1: int, features2: int) -> None:
        """Initialize the projectors.

        Args:
            features1: Size of the pooled features of encoder 1.
            features2: Size of the pooled features of encoder 2.
        """
        dims: list[int] = list(self.hparams['projector_dims'])
        self.projector1 = create_projector(features1, dims)
        self.projector2 = create_projector(features2, dims)

    def configure_losses(self) -> None:
        """Initialize the DeCUR loss.

        Raises:
            ValueError: If the common dimensions do not fit the projector output.
        """
        embed_dim: int = list(self.hparams['projector_dims'])[-1]
        common_dim: int | None = self.hparams['common_dim']
        if common_dim is None:
            share: float = self.hparams['common_share']
            if not 0 < share <= 1:
                msg = f'common_share must be in (0, 1], got {share}'
                raise ValueError(msg)
            common_dim = max(1, round(share * embed_dim))
        if not 1 <= common_dim <= embed_dim:
            msg = (
                f'common_dim={common_dim} must be between 1 and the projector '
                f'output size {embed_dim} (last of projector_dims)'
            )
            raise ValueError(msg)
        self.common_dim = common_dim
        self.criterion = DeCURLoss(
            common_dim=common_dim,
            lambd=self.hparams['lambd'],
            intra=self.hparams['intra'],
            decouple=self.hparams['decouple'],
            gather_distributed=self.hparams['gather_distributed'],
            weighting=self.hparams['weighting'],
        )

    def shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        """Compute and log the loss of one batch.

        Args:
            batch: The batch.
            stage: ``train`` or ``val``.

        Returns:
            The total loss.
        """
        x1 = self.views(batch, 'image1', 1)
        x2 = self.views(batch, 'image2', 2)
        z1_a = self.projector1(self.backbone1(x1[:, 0]))
        z1_b = self.projector1(self.backbone1(x1[:, 1]))
        z2_a = self.projector2(self.backbone2(x2[:, 0]))
        z2_b = self.projector2(self.backbone2(x2[:, 1]))
        loss: Tensor = self.criterion(z1_a, z1_b, z2_a, z2_b)
        loss_terms = ('common', 'unique', 'intra1', 'intra2')
        terms = {
            f'loss_{name}' if name in loss_terms else name: value
            for name, value in self.criterion.terms.items()
        }
        self.log_losses(stage, loss, terms, x1.shape[0])
        return loss
