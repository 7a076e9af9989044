"""DeCUR task for multimodal self-supervised learning."""

from typing import Any, Literal

from torch import Tensor

from ..losses import DeCURLoss
from .ssl import SSLTask

__all__ = ('DeCURTask',)


class DeCURTask(SSLTask):
    """DeCUR: Decoupling Common and Unique Representations.

    One encoder and one projector per modality
    (:class:`~torchgeo_decur.tasks.SSLTask`), trained with
    :class:`~torchgeo_decur.losses.DeCURLoss`: the first ``common_dim``
    embedding dimensions are driven to be correlated across the modalities,
    the others to be decorrelated, and each modality's two views are trained
    with a full Barlow Twins term. With more than two modalities the cross
    terms are summed over every pair of modalities (``modalities=['s1',
    's2a', 'dem']`` and an ``encoders`` entry each; see
    :class:`~torchgeo_decur.losses.DeCURLoss`); ``weighting='official'`` is
    defined for two.

    Defaults are the paper's SAR-optical settings: ResNet-50 per modality, an
    8192-8192-8192 projector, 87.5% common dimensions, lambda 0.0051, and LARS
    with lr 0.2 for weights and 0.0048 for biases and normalisation parameters,
    weight decay 1e-6, momentum 0.9, cosine decay without warm-up (paper,
    Appendix B, and the authors' code). The loss is the paper's Eq. 6 unless
    ``weighting='official'`` (the authors' code, which trained the published
    checkpoints; see :class:`~torchgeo_decur.losses.DeCURLoss`).

    If you use this task in your research, please cite the following paper:

    * https://arxiv.org/abs/2309.05300

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        common_dim: int | None = None,
        common_share: float = 0.875,
        lambd: float = 0.0051,
        intra: bool = True,
        decouple: bool = True,
        weighting: Literal['paper', 'official'] = 'paper',
        **kwargs: Any,
    ) -> None:
        """Initialize a new DeCURTask instance.

        Args:
            common_dim: Number of common embedding dimensions Kc. Defaults to
                ``round(common_share * K)``.
            common_share: Share of common dimensions when *common_dim* is None
                (0.875 for SAR-optical, 0.75 for RGB-DEM and RGB-depth).
            lambd: Weight of the off-diagonal terms.
            intra: Whether to add the intra-modal Barlow Twins terms.
            decouple: Whether to split common and unique dimensions; False makes
                all dimensions common (cross-modal Barlow Twins).
            weighting: How the loss combines its terms: ``'paper'`` (Eq. 6, the
                plain sum) or ``'official'`` (the authors' code).
            **kwargs: The encoders, projectors and optimiser
                (:class:`~torchgeo_decur.tasks.SSLTask`): ``modalities``,
                ``encoders``, ``projector_dims``, ``lr``, ...
                (``model1``, ``weights1``, ... are deprecated aliases).

        Raises:
            ValueError: If *common_dim* / *common_share* do not fit the
                projector output, *weighting* is unknown or ``'official'``
                with other than two modalities, or as
                :class:`~torchgeo_decur.tasks.SSLTask`.
        """
        super().__init__(**kwargs)

    def configure_losses(self) -> None:
        """Initialize the DeCUR loss.

        Raises:
            ValueError: If the common dimensions do not fit the projector
                output, or ``weighting='official'`` has other than two
                modalities.
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
        names = self.modality_names
        if self.hparams['weighting'] == 'official' and len(names) != 2:
            msg = (
                "weighting='official' is the authors' code for two modalities; "
                f"{len(names)} given ({names}): use weighting='paper'"
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

    def compute_loss(
        self, views: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """DeCUR's loss of the two views of every modality.

        Args:
            views: ``{modality: views of shape (B, 2, C, H, W)}``.

        Returns:
            The loss, and its terms as ``loss_common``, ``loss_unique``,
            ``loss_intra1``, ``loss_intra2``, ... (one per modality),
            ``common_diag``, ``unique_diag``, ``unique_absdiag``, ``offdiag``.
        """
        z = [self.project(m, x[:, v]) for m, x in views.items() for v in (0, 1)]
        loss: Tensor = self.criterion(*z)
        terms = {
            f'loss_{k}' if _is_loss_term(k) else k: v
            for k, v in self.criterion.terms.items()
        }
        return loss, terms


def _is_loss_term(name: str) -> bool:
    """Whether a term of :class:`~torchgeo_decur.losses.DeCURLoss` is a loss."""
    return name in ('common', 'unique') or (
        name.startswith('intra') and name[5:].isdigit()
    )
