"""Reporting the samples a dataset skipped, for self-supervised tasks."""

from typing import Any

from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

#: Per-sample counts a dataset may put in its samples (see
#: :class:`~torchgeo_decur.datasets.SSL4EOS12Pair`), logged per epoch.
SKIP_COUNTS = ('skipped_samples', 'skipped_seasons')

#: How many bad files an epoch's warning names.
FILES_PER_WARNING = 5


class SkipReportMixin(LightningModule):
    """Log what a dataset skipped and name the first bad files once per epoch.

    Datasets that skip bad files (``on_bad_sample='skip'``) count per sample
    what they replaced (``skipped_samples``: locations, ``skipped_seasons``:
    seasons) and say why (``bad_files``: one ``'path ...: reason'`` line per
    bad file). Batches that carry these keys are logged as
    ``<stage>_skipped_samples`` / ``<stage>_skipped_seasons``, summed over the
    epoch (and over processes), and the first few bad files of each epoch are
    named in one warning at its end, so that the data can be cleaned.

    .. versionadded:: 0.1
    """

    _bad_files: dict[str, dict[str, None]]

    def _report_skips(self, batch: dict[str, Any], stage: str) -> None:
        """Log the skip counts of a batch and keep its bad files.

        Args:
            batch: The batch.
            stage: ``train`` or ``val``.
        """
        batch_size = None
        for key in SKIP_COUNTS:
            value = batch.get(key)
            if isinstance(value, Tensor):
                batch_size = batch_size or len(value)
                self.log(
                    f'{stage}_{key}',
                    value.sum().float(),
                    on_step=False,
                    on_epoch=True,
                    reduce_fx='sum',
                    sync_dist=True,
                    batch_size=batch_size,
                )
        files = batch.get('bad_files')
        if files:
            if not hasattr(self, '_bad_files'):
                self._bad_files = {}
            seen = self._bad_files.setdefault(stage, {})
            for lines in files:
                for line in lines.splitlines():
                    seen[line] = None

    def _warn_skips(self, stage: str) -> None:
        """Name the first bad files of the epoch in one warning, then forget them.

        Args:
            stage: ``train`` or ``val``.
        """
        seen = getattr(self, '_bad_files', {}).pop(stage, None)
        if not seen:
            return
        first = list(seen)[:FILES_PER_WARNING]
        more = len(seen) - len(first)
        msg = (
            f'epoch {self.current_epoch} ({stage}): {len(seen)} bad file(s) were '
            'skipped (logged as '
            f'{stage}_skipped_samples / {stage}_skipped_seasons); first:\n  '
            + '\n  '.join(first)
            + (f'\n  ... and {more} more' if more else '')
        )
        rank_zero_warn(msg, category=UserWarning)

    def on_train_epoch_end(self) -> None:
        """Warn about the bad files of the training epoch."""
        self._warn_skips('train')
        super().on_train_epoch_end()

    def on_validation_epoch_end(self) -> None:
        """Warn about the bad files of the validation epoch."""
        self._warn_skips('val')
        super().on_validation_epoch_end()

    def on_test_epoch_end(self) -> None:
        """Warn about the bad files of the test epoch."""
        self._warn_skips('test')
        super().on_test_epoch_end()
