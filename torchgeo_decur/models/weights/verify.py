"""Published files, downloaded once and checked by SHA-256 before every read.

A registry entry's file is kept where :func:`torch.hub.load_state_dict_from_url`
keeps it (``<torch hub dir>/checkpoints/<file>``), so that a file put there by
hand is used offline. Before it is read, its SHA-256 is compared with the one
the entry records (``meta['sha256']``). Where the authors' hash is not known
(see the user guide's trust page), the hash found at the first use is recorded
beside the file (``<file>.sha256``) and every later read is checked against it:
trust on first use, which catches a file that changes afterwards.

.. versionadded:: 0.2
"""

import hashlib
import os
from pathlib import Path

import torch

from ...checkpointing import staged_files

__all__ = ('HashMismatchError', 'cached_file', 'sha256_of', 'verify_file')


class HashMismatchError(ValueError):
    """A weight file is not the one its entry names.

    .. versionadded:: 0.2
    """


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks.

    Args:
        path: The file.

    Returns:
        The hexadecimal digest.
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, expected: str | None, url: str) -> str:
    """Check a file against its expected hash, or record it at first use.

    Args:
        path: The file in the hub cache.
        expected: Its published SHA-256, or None if unknown.
        url: Where it comes from (named in the error).

    Returns:
        The file's SHA-256.

    Raises:
        HashMismatchError: If the hash differs from *expected* or, without
            one, from the hash recorded at the file's first use.
    """
    found = sha256_of(path)
    record = path.with_name(path.name + '.sha256')
    origin = 'published'
    if expected is None:
        if not record.is_file():
            _write_text(record, found + '\n')
            return found
        expected, origin = record.read_text().strip(), f'recorded in {record}'
    if found != expected:
        msg = (
            f'{path} is not the published file {url}: its SHA-256 is {found}, '
            f'expected {expected} ({origin}). Delete the file (and {record.name} '
            'if present) and load the weights again to download it afresh.'
        )
        raise HashMismatchError(msg)
    return found


def cached_file(
    url: str, expected: str | None, progress: bool = True, model_dir: str | None = None
) -> Path:
    """The hub-cache copy of a published file, downloaded if absent, verified.

    Args:
        url: The file's URL; its last part is the cached file's name.
        expected: Its SHA-256, or None to record it at first use.
        progress: Whether to show a download progress bar.
        model_dir: The cache folder; ``<torch hub dir>/checkpoints`` by default.

    Returns:
        The verified file.

    Raises:
        OSError: If the file is absent and cannot be downloaded (names the
            path to put it at for offline use).
        HashMismatchError: See :func:`verify_file`.
    """
    folder = Path(model_dir or Path(torch.hub.get_dir()) / 'checkpoints')
    path = folder / os.path.basename(url)
    if not path.is_file():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), progress=progress)
        except OSError as err:
            msg = (
                f'cannot download {url} ({err}). To load it offline, download '
                f'the file elsewhere and put it at {path}'
            )
            raise OSError(msg) from err
    verify_file(path, expected, url)
    return path


def _write_text(path: Path, text: str) -> None:
    """Write a small file whole or not at all."""
    with staged_files([path]) as temporary:
        temporary[path].write_text(text)
