"""Checkpoints that are whole or absent: never half written.

Lightning writes a local checkpoint to a temporary file in the system's
temporary folder and moves it into place. When that folder is on another file
system than the checkpoint (the node's ``/tmp`` and a shared project disk on
most clusters), the move is a copy, and a job killed during it leaves a
truncated ``last.ckpt`` that the next ``--ckpt_path last.ckpt`` cannot read;
the full copy in ``/tmp`` (3.6 GB at the paper's size) may not fit there
either. :class:`AtomicCheckpointIO` streams the checkpoint to a temporary file
beside its target, flushes it to disk and renames it over the target, which
is atomic on POSIX file systems: a reader finds the old file or the new one.

.. versionadded:: 0.1
"""

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

__all__ = ('AtomicCheckpointIO',)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save checkpoints atomically: a temporary file beside the target, renamed.

    Use it in a config::

        trainer:
          plugins:
            - class_path: torchgeo_decur.checkpointing.AtomicCheckpointIO

    Local paths only; other paths (``s3://``, ...) are saved as Lightning does.

    .. versionadded:: 0.1
    """

    def save_checkpoint(
        self,
        checkpoint: dict[str, Any],
        path: _PATH,
        storage_options: Any | None = None,
    ) -> None:
        """Save a checkpoint so that *path* is never left half written.

        Args:
            checkpoint: The checkpoint dict.
            path: Where to save it.
            storage_options: Not supported (as in ``TorchCheckpointIO``).
        """
        if '://' in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            super().save_checkpoint(checkpoint, path, storage_options)  # raises
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{target.name}.', dir=target.parent)
        try:
            with os.fdopen(fd, 'wb') as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
