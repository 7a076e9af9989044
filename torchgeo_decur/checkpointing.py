"""Checkpoints and other outputs that are whole or absent: never half written.

Lightning writes a local checkpoint to a temporary file in the system's
temporary folder and moves it into place. When that folder is on another file
system than the checkpoint (the node's ``/tmp`` and a shared project disk on
most clusters), the move is a copy, and a job killed during it leaves a
truncated ``last.ckpt`` that the next ``--ckpt_path last.ckpt`` cannot read;
the full copy in ``/tmp`` (3.6 GB at the paper's size) may not fit there
either. :class:`AtomicCheckpointIO` streams the checkpoint to a temporary file
beside its target, flushes it to disk and renames it over the target, which
is atomic on POSIX file systems: a reader finds the old file or the new one.
A save killed half way leaves only its temporary file (``.last.ckpt.XXXX``),
which :class:`RunCheckpoint` removes when the next run starts.

Each run of a config writes its own ``version_N`` folder, so Lightning's
``--ckpt_path last`` looks only in the new, empty one and starts over.
:class:`RunCheckpoint` (the configs' checkpoint callback) also looks in the
other versions of the same logger folder and resumes the newest ``last.ckpt``.

Exports, explain reports and demo runs write their files with
:func:`staged_files` (all renamed into place at the end, or none) into a folder
checked with :func:`writable_folder` before the work starts.

.. versionadded:: 0.1
"""

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

__all__ = (
    'AtomicCheckpointIO',
    'RunCheckpoint',
    'link_to_checkpoint',
    'live_checkpoint',
    'remove_orphans',
    'staged_files',
    'writable_folder',
)

#: How AtomicCheckpointIO names its temporary files: ``.<target name>.<random>``.
TEMPORARY = '.*.ckpt.*'


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
        with staged_files([target]) as temporary:
            torch.save(checkpoint, temporary[target])


@contextmanager
def staged_files(
    targets: Iterable[str | os.PathLike[str]],
) -> Iterator[dict[Path, Path]]:
    """Write several files so that all of them appear, or none.

    Yields a temporary path beside each target (``.<name>.<random>``, in the
    target's folder, so that the rename stays on one file system). When the
    block ends, each temporary file is flushed to disk and renamed over its
    target; if the block raises (a full disk, a kill), the temporary files are
    removed and the targets are untouched.

    Args:
        targets: The files to write; their folders are created.

    Yields:
        ``{target: temporary path}``.

    .. versionadded:: 0.2
    """
    temporary: dict[Path, Path] = {}
    try:
        for target in map(Path, targets):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f'.{target.name}.', dir=target.parent)
            os.close(fd)
            temporary[target] = Path(tmp)
        yield temporary
        for tmp in temporary.values():
            with open(tmp, 'rb+') as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        for target, tmp in temporary.items():
            os.replace(tmp, target)
    except BaseException:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)
        raise


def writable_folder(folder: str | os.PathLike[str]) -> Path:
    """Create an output folder and check that files can be written in it.

    Called before the work, so that a read-only or missing place fails in
    seconds rather than after the run.

    Args:
        folder: The folder.

    Returns:
        The folder.

    Raises:
        PermissionError: If it cannot be created or written to (names it).
        FileExistsError: If it exists and is not a folder.

    .. versionadded:: 0.2
    """
    path = Path(folder)
    if path.exists() and not path.is_dir():
        msg = f'{path} exists and is not a folder'
        raise FileExistsError(msg)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.write-test.', dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        msg = f'cannot write to the output folder {path}: {err.strerror or err}'
        raise PermissionError(msg) from err
    return path


def remove_orphans(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files of checkpoint saves that were killed.

    Args:
        folder: A checkpoint folder (nothing happens if it does not exist).

    Returns:
        The removed files.

    .. versionadded:: 0.2
    """
    orphans = sorted(
        p for p in Path(folder).glob(TEMPORARY) if p.is_file() or p.is_symlink()
    )
    for path in orphans:
        path.unlink(missing_ok=True)
    return orphans


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, resuming ``--ckpt_path last`` across runs.

    For ``ckpt_path='last'``, the newest ``last*.ckpt`` among this run's
    folder and the ``<version>/checkpoints`` folders beside it (the logger's
    earlier runs) is resumed; the resumed run writes to its own new version,
    so nothing of the earlier run is overwritten. Orphaned temporary files of
    killed saves (:class:`AtomicCheckpointIO`) are removed from this run's
    folder and the resumed checkpoint's at the start (not from other runs,
    which may be saving at the time).

    Use it in a config in place of ModelCheckpoint, with the same arguments::

        trainer:
          callbacks:
            - class_path: torchgeo_decur.checkpointing.RunCheckpoint
              init_args:
                save_last: link

    ``save_last: link`` (every packaged config) makes ``last.ckpt`` a
    symbolic link to the newest checkpoint instead of a second copy of it
    (2.8 GB at the paper's size). The link is replaced atomically, and a
    ``last.ckpt`` left dangling by a job killed between Lightning's removal of
    the previous checkpoint and its relinking resolves to the newest
    checkpoint beside it.

    .. versionadded:: 0.2
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Resolve the checkpoint folder and check that it can be written to.

        A read-only ``default_root_dir`` fails here, before any training,
        with the folder named (rather than at the first save).

        Args:
            trainer: The trainer.
            pl_module: The module.
            stage: The stage.

        Raises:
            PermissionError: If the folder cannot be created or written to.
        """
        super().setup(trainer, pl_module, stage)
        local = self.dirpath and '://' not in str(self.dirpath)
        if stage == 'fit' and trainer.is_global_zero and local:
            writable_folder(self.dirpath)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Remove orphans of killed saves in this run's and the resumed run's folder.

        Args:
            trainer: The trainer.
            pl_module: The module.
        """
        super().on_train_start(trainer, pl_module)
        folders = {self.dirpath}
        if trainer.ckpt_path:
            folders.add(os.path.dirname(trainer.ckpt_path))
        for folder in folders:
            if trainer.is_global_zero and folder and '://' not in str(folder):
                remove_orphans(folder)

    @staticmethod
    def _link_checkpoint(trainer: Trainer, filepath: str, linkpath: str) -> None:
        """Point *linkpath* at *filepath* with a link renamed into place.

        Lightning removes the old ``last.ckpt`` and then links the new one; a
        kill in between would leave none. Here a relative link is made under a
        temporary name beside it and renamed over it (a copy where the file
        system has no symbolic links).

        Args:
            trainer: The trainer.
            filepath: The checkpoint linked to.
            linkpath: The link (``last.ckpt``).
        """
        if trainer.is_global_zero and '://' in str(linkpath):
            ModelCheckpoint._link_checkpoint(trainer, filepath, linkpath)
            return
        same = os.path.abspath(filepath) == os.path.abspath(linkpath)
        if trainer.is_global_zero and not same:
            link_to_checkpoint(filepath, linkpath)
        trainer.strategy.barrier()

    def _find_last_checkpoints(self, trainer: Trainer) -> set[str]:
        """This run's last checkpoints and those of the logger's other versions."""
        found = super()._find_last_checkpoints(trainer)
        if self.dirpath is None and trainer.loggers:
            logger = trainer.loggers[0]
            root = Path(logger.save_dir or trainer.default_root_dir) / str(logger.name)
            runs = root.glob(
                f'*/checkpoints/{self.CHECKPOINT_NAME_LAST}*{self.FILE_EXTENSION}'
            )
            found |= {os.path.normpath(p) for p in runs}
        resolved = (live_checkpoint(p) for p in found if '://' not in p)
        remote = {p for p in found if '://' in p}
        return remote | {p for p in resolved if p is not None}


def link_to_checkpoint(
    target: str | os.PathLike[str], link: str | os.PathLike[str]
) -> None:
    """Make *link* a relative symbolic link to *target*, replaced atomically.

    Where the file system has no symbolic links, *link* becomes a copy,
    written with :func:`staged_files`.

    Args:
        target: The checkpoint.
        link: The link to create or replace (``last.ckpt``).

    .. versionadded:: 0.2
    """
    path = Path(link)
    relative = os.path.relpath(target, path.parent)
    temporary = path.parent / f'.{path.name}.{os.getpid()}.link'
    temporary.unlink(missing_ok=True)
    try:
        os.symlink(relative, temporary)
    except OSError:
        with staged_files([path]) as staged:
            shutil.copyfile(target, staged[path])
        return
    os.replace(temporary, path)


def live_checkpoint(path: str | os.PathLike[str]) -> str | None:
    """A last checkpoint, or what stands in for it if its link dangles.

    A ``last.ckpt`` link whose checkpoint was removed (the job was killed
    between Lightning's removal of the previous checkpoint and the relinking)
    stands for the newest other checkpoint in its folder: the one that save
    had just written.

    Args:
        path: A ``last*.ckpt`` file or link.

    Returns:
        *path* if it can be read, the newest checkpoint beside a dangling
        link, or None if there is none.

    .. versionadded:: 0.2
    """
    file = Path(path)
    if file.exists():
        return os.path.normpath(file)
    siblings = [
        p
        for p in file.parent.glob('*.ckpt')
        if p.is_file() and not p.name.startswith('.') and p != file
    ]
    if not siblings:
        return None
    return os.path.normpath(max(siblings, key=lambda p: p.stat().st_mtime))
