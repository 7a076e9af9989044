"""The YAML configs of the plugin, from a clone or from the installed package.

The configs live in the repository's top-level ``conf/``; a wheel carries a
byte-identical copy as ``torchgeo_decur/conf`` (``setup.py``). This module
finds them wherever the package is installed, so that
``torchgeo fit --config $(torchgeo-decur config path decur_s1s2)`` works
outside a clone. Configs name their datasets by ``root`` only and refer to no
other file, so a copied config runs as it is.

.. versionadded:: 0.2
"""

import difflib
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Literal

from .checkpointing import staged_files

__all__ = ('config', 'config_folder', 'config_path', 'list_configs')


def config_folder() -> Path:
    """The folder of the configs: the installed package's, else the clone's.

    Returns:
        ``torchgeo_decur/conf`` of a wheel install, or ``conf/`` beside the
        package in a clone (editable installs included).

    Raises:
        FileNotFoundError: If neither exists (a broken install).
    """
    packaged = Path(str(resources.files('torchgeo_decur'))) / 'conf'
    clone = Path(__file__).resolve().parent.parent / 'conf'
    for folder in (packaged, clone):
        if folder.is_dir():
            return folder
    msg = (
        f'no configs found: neither {packaged} (a wheel install) nor {clone} '
        '(a clone) exists; reinstall torchgeo-decur'
    )
    raise FileNotFoundError(msg)


def _describe(path: Path) -> str:
    """The first comment line of a config: the setting it reproduces."""
    for line in path.read_text().splitlines():
        if line.startswith('#'):
            return line.lstrip('# ').strip()
    return ''


def list_configs() -> dict[str, str]:
    """Every config by name, with the setting it reproduces.

    Returns:
        ``{name: description}``; a name is the path under ``conf/`` without
        ``.yaml`` (``decur_s1s2``, ``transfer/geonrw_rgb_linear_1pct``).
    """
    folder = config_folder()
    paths = sorted(folder.rglob('*.yaml'))
    return {
        p.relative_to(folder).with_suffix('').as_posix(): _describe(p) for p in paths
    }


def config_path(name: str) -> Path:
    """The file of one config.

    Args:
        name: As :func:`list_configs` names it; ``.yaml`` and a leading
            ``conf/`` are accepted.

    Returns:
        The path of the YAML file.

    Raises:
        ValueError: If no config has that name (the message suggests close
            names).
    """
    key = name.removeprefix('conf/').removesuffix('.yaml')
    names = list_configs()
    if key not in names:
        close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
        hint = f'; did you mean {", ".join(close)}?' if close else ''
        msg = f"unknown config {name!r}{hint} ('torchgeo-decur config' lists them)"
        raise ValueError(msg)
    return config_folder() / f'{key}.yaml'


def config(
    action: Literal['list', 'show', 'path', 'write'] = 'list',
    name: str | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Path | None:
    """List, print, locate or copy the packaged configs.

    ``torchgeo-decur config`` lists every config with the setting it
    reproduces; ``config show NAME`` prints one; ``config path NAME`` prints
    its path (for ``torchgeo fit --config $(torchgeo-decur config path
    decur_s1s2)``); ``config write NAME --out FILE`` copies it to edit.

    Args:
        action: ``'list'``, ``'show'``, ``'path'`` or ``'write'``.
        name: The config (all actions but ``'list'``).
        out: Where ``'write'`` copies it (a file, or a folder to copy into).
        overwrite: Whether ``'write'`` may replace an existing file.

    Returns:
        The config's path (``'path'``, ``'show'``), the written file
        (``'write'``), or None (``'list'``).

    Raises:
        ValueError: If *action* is unknown, or *name* or *out* is missing or
            unknown.
        FileExistsError: If the output exists and *overwrite* is False.
    """
    if action == 'list':
        names = list_configs()
        width = max(map(len, names))
        for key, description in names.items():
            print(f'{key:<{width}}  {description}')
        return None
    if action not in ('show', 'path', 'write'):
        msg = f"action must be 'list', 'show', 'path' or 'write', got {action!r}"
        raise ValueError(msg)
    if name is None:
        msg = (
            f"'config {action}' needs a config name "
            "('torchgeo-decur config' lists them)"
        )
        raise ValueError(msg)
    path = config_path(name)
    if action == 'path':
        print(path)
        return path
    if action == 'show':
        print(path.read_text(), end='')
        return path
    return _write(path, out, overwrite)


def _write(path: Path, out: str | os.PathLike[str] | None, overwrite: bool) -> Path:
    """Copy a config to *out* (a file or a folder), never over a file unasked."""
    if out is None:
        msg = "'config write' needs --out FILE (or a folder)"
        raise ValueError(msg)
    target = Path(out)
    if target.is_dir():
        target = target / path.name
    if target.exists() and not overwrite:
        msg = f'{target} exists; pass --overwrite to replace it'
        raise FileExistsError(msg)
    with staged_files([target]) as temporary:
        shutil.copyfile(path, temporary[target])
    print(target)
    return target
