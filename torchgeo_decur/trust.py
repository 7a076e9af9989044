"""Files from outside are data, never code: reading checkpoints safely.

A ``.pth`` or ``.ckpt`` file is a pickle, and unpickling can call any
function the file names (a full :func:`pickle.load`).
Every file this package reads from a user or a download goes through
:func:`load_file`, which reads it with ``weights_only=True``: tensors,
containers, numbers and strings, plus the short allow-list
:data:`SAFE_TYPES` of plain types that checkpoints of this package, of
Lightning and of the DeCUR authors hold. A file that needs anything else is
refused with :class:`UntrustedFileError`, which names the file and the types,
before any of its code runs.

A file you trust (you wrote it, or you know its source) that needs more can
be read with ``trust_checkpoint=True`` (``--trust-checkpoint`` on the command
line), which allows every global the file names (still through torch's
``weights_only`` reader, never the full unpickler): that imports and may call
whatever code those globals are.
The safe way to use such a file again is to read it once with trust and
write plain state dicts (``torchgeo-decur export --trust-checkpoint``).

.. versionadded:: 0.2
"""

import argparse
import importlib
import os
import pathlib
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ('SAFE_TYPES', 'UntrustedFileError', 'load_file')

#: Types a safe read accepts besides tensors and plain containers: the
#: ``args`` namespace and numpy scalars that training scripts save beside
#: their weights, and paths in hyperparameters.
SAFE_TYPES: list[Any] = [
    argparse.Namespace,
    pathlib.PosixPath,
    pathlib.WindowsPath,
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
    np.dtype,
    np.dtypes.Float64DType,
    np.dtypes.Float32DType,
    np.dtypes.Int64DType,
    np.dtypes.Int32DType,
    np.dtypes.BoolDType,
    np._core.multiarray.scalar,  # type: ignore[attr-defined]
]


class UntrustedFileError(pickle.UnpicklingError, ValueError):
    """A file needs code to be loaded, and the caller did not trust it.

    .. versionadded:: 0.2
    """


def load_file(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = 'cpu',
    trust: bool = False,
) -> Any:
    """Read a file written by :func:`torch.save` without running its code.

    Args:
        path: The file.
        map_location: Where to load the tensors.
        trust: Also allow every global the file names, which imports and
            may call that code; only for files you trust.

    Returns:
        The loaded object.

    Raises:
        UntrustedFileError: If the file holds types outside :data:`SAFE_TYPES`
            (or pickle instructions a safe read refuses) and *trust* is False;
            names the file and the types.
        pickle.UnpicklingError: If the file is not a torch file at all.
    """
    path = Path(path)
    if trust:
        warnings.warn(
            f'{path}: read with trust_checkpoint=True, which runs any code the '
            'file carries',
            UserWarning,
            stacklevel=2,
        )
        allowed = [*SAFE_TYPES, *_resolve(path, _unsafe_types(path))]
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True)
    with torch.serialization.safe_globals(list(SAFE_TYPES)):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:
            if not _is_torch_file(path):
                msg = f'{path} is not a file written by torch.save: {err}'
                raise pickle.UnpicklingError(msg) from err
            unsafe = _unsafe_types(path)
            reason = _reason(str(err))
    refused = (
        f'reading it would call {", ".join(unsafe)}, which plain weights do not need'
        if unsafe
        else f'the safe reader refused it ({reason})'
    )
    msg = (
        f'{path} was not loaded: {refused}. If you trust the file (you wrote it '
        'or know its source), pass trust_checkpoint=True (--trust-checkpoint), '
        'which runs any code it carries, e.g. once with '
        '`torchgeo-decur export --trust-checkpoint` to write plain weights.'
    )
    raise UntrustedFileError(msg)


def _is_torch_file(path: Path) -> bool:
    """Whether a file is a torch.save zip archive or a pickle (protocol 2+)."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, 'rb') as f:
        return f.read(1) == b'\x80'


def _reason(message: str) -> str:
    """The line of torch's refusal that says what was refused."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if 'WeightsUnpickler error' in line:
            return lines[i + 1]
    return lines[0] if lines else 'refused by the safe unpickler'


def _resolve(path: Path, names: list[str]) -> list[Any]:
    """Import the globals ``module.qualname`` a trusted file names.

    Raises:
        UntrustedFileError: If a global cannot be imported here.
    """
    found = []
    for name in names:
        parts = name.split('.')
        for i in range(len(parts) - 1, 0, -1):
            try:
                obj = importlib.import_module('.'.join(parts[:i]))
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except (ImportError, AttributeError):
                continue
            found.append(obj)
            break
        else:
            msg = f'{path} needs {name}, which cannot be imported here'
            raise UntrustedFileError(msg)
    return found


def _unsafe_types(path: Path) -> list[str]:
    """The globals a file names that a safe read refuses ([] if unreadable)."""
    try:
        with torch.serialization.safe_globals(list(SAFE_TYPES)):
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # damaged files: the caller reports the load error
        return []
