"""Load what the explanations need: a pretrained task and preprocessed pairs.

:func:`load_task` rebuilds a :class:`~torchgeo_decur.tasks.DeCURTask` or a
:class:`~torchgeo_decur.tasks.MultimodalSSLTask` from its Lightning
checkpoint; :func:`load_pairs` reads samples through the datamodule of a
LightningCLI YAML and preprocesses them for evaluation
(:func:`prepare_pairs`: the dataset's on-device finishing, then each
modality's preprocessing with its standardization, no augmentation);
:func:`embed` gives the projector outputs the analyses look at.

.. versionadded:: 0.1
"""

import inspect
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, cast

import torch
import yaml
from lightning.pytorch import LightningDataModule
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data._utils.collate import default_collate

from ..datamodules.preparation import ModalityPreprocessing
from ..datamodules.sampling import SeededDataset, derive_seed
from ..models.weights.files import encoder_records
from ..tasks import DeCURTask, MultimodalSSLTask, SSLTask
from ..trust import UntrustedFileError, load_file

__all__ = (
    'Pairs',
    'common_dim_of',
    'dimension_groups',
    'embed',
    'load_datamodule',
    'load_pairs',
    'load_task',
    'prepare_pairs',
)

#: Batch keys of modality 1 and modality 2.
KEYS = ('image1', 'image2')

#: The tasks whose checkpoints can be explained.
TASKS: tuple[type[SSLTask], ...] = (DeCURTask, MultimodalSSLTask)


def _describe(obj: object) -> str:
    """A short description of what a file held, for error messages."""
    if isinstance(obj, Mapping):
        keys = sorted(str(k) for k in obj)
        more = ', ...' if len(keys) > 8 else ''
        return f'keys {", ".join(keys[:8])}{more}'
    return f'a {type(obj).__name__}'


def _task_class(
    hparams: Mapping[str, Any], class_path: str | None, state_dict: Mapping[str, Any]
) -> type[SSLTask] | str:
    """The task class of a checkpoint, or why it is not one we explain."""
    if class_path is not None:
        module, _, name = class_path.rpartition('.')
        try:
            cls = getattr(import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            return f'its task class {class_path} cannot be imported'
        if not (isinstance(cls, type) and issubclass(cls, TASKS)):
            return f'it is a checkpoint of {class_path}'
    elif {'method', 'cross_views'} <= set(hparams):
        cls = MultimodalSSLTask
    elif {'common_share', 'decouple', 'projector_dims'} <= set(hparams):
        cls = DeCURTask
    else:
        found = ', '.join(sorted(hparams)[:10]) or 'none'
        return f'its hyper_parameters ({found}) are neither DeCURTask nor baseline ones'
    keys = [str(k) for k in state_dict]
    for now, before in (('encoders.', 'backbone1.'), ('projectors.', 'projector1.')):
        if not any(k.startswith((now, before)) for k in keys):
            return f'its state_dict has no {now}* (or {before}*) keys'
    return cast(type[SSLTask], cls)


def _init_parameters(cls: type) -> set[str]:
    """The arguments of a class, with those its ``**kwargs`` pass to its bases."""
    names: set[str] = set()
    for base in cls.__mro__:
        if '__init__' not in vars(base):
            continue
        parameters = inspect.signature(base.__init__).parameters.values()
        names |= {p.name for p in parameters if p.kind != p.VAR_KEYWORD}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names - {'self'}


def load_task(
    checkpoint: str | os.PathLike[str],
    map_location: str | torch.device = 'cpu',
    trust_checkpoint: bool = False,
) -> SSLTask:
    """Rebuild a pretrained DeCUR or baseline task from its Lightning checkpoint.

    The task class is the one LightningCLI recorded (``_class_path``), else
    it is recognised from the hyperparameters; the task is built from its
    hyperparameters (without initial weights: the checkpoint holds them all)
    and its state dict loaded strictly. The file is read without running code
    (:func:`torchgeo_decur.trust.load_file`).

    Args:
        checkpoint: Lightning checkpoint (``.ckpt``) of
            :class:`~torchgeo_decur.tasks.DeCURTask` or
            :class:`~torchgeo_decur.tasks.MultimodalSSLTask`.
        map_location: Where to load the tensors.
        trust_checkpoint: Unpickle a file that needs more than plain types,
            which runs any code it carries (only for files you trust).

    Returns:
        The task, in evaluation mode.

    Raises:
        FileNotFoundError: If *checkpoint* does not exist.
        ValueError: If it is not a checkpoint of one of these tasks (e.g. a
            CoMM or classification checkpoint, or a plain state dict), or its
            state dict does not fit the task its hyperparameters describe.

    .. versionadded:: 0.1
    """
    path = Path(checkpoint)
    if not path.is_file():
        msg = f'checkpoint not found: {path}'
        raise FileNotFoundError(msg)
    expected = 'a Lightning checkpoint of DeCURTask or MultimodalSSLTask'
    try:
        loaded = load_file(path, map_location=map_location, trust=trust_checkpoint)
    except UntrustedFileError:
        raise
    except Exception as err:
        msg = f'{path} is not {expected}: torch.load failed ({err})'
        raise ValueError(msg) from err
    if not (
        isinstance(loaded, Mapping)
        and isinstance(loaded.get('hyper_parameters'), Mapping)
        and isinstance(loaded.get('state_dict'), Mapping)
    ):
        msg = (
            f'{path} is not {expected}: expected hyper_parameters and a '
            f'state_dict, found {_describe(loaded)}'
        )
        raise ValueError(msg)
    hparams = dict(loaded['hyper_parameters'])
    class_path = hparams.pop('_class_path', None)
    hparams.pop('_instantiator', None)
    state_dict = loaded['state_dict']
    cls = _task_class(hparams, class_path, state_dict)
    if isinstance(cls, str):
        msg = f'{path} is not {expected}: {cls}'
        raise ValueError(msg)
    accepted = _init_parameters(cls)
    kwargs = {k: v for k, v in hparams.items() if k in accepted}
    try:
        task = cls(**kwargs)
        task.load_state_dict(state_dict, strict=True)
    except (RuntimeError, ValueError, TypeError) as err:
        msg = f'{path}: cannot rebuild {cls.__name__} from the checkpoint: {err}'
        raise ValueError(msg) from err
    return task.eval()


def common_dim_of(task: nn.Module) -> int | None:
    """The number of common embedding dimensions of a task.

    Args:
        task: A :class:`~torchgeo_decur.tasks.DeCURTask` (the first
            ``common_dim`` dimensions are common, as in
            :class:`~torchgeo_decur.losses.DeCURLoss`; all of them with
            ``decouple=False``) or a baseline.

    Returns:
        The number of common dimensions, or None for a task without a
        common / unique split (the baselines).

    .. versionadded:: 0.1
    """
    if not isinstance(task, DeCURTask):
        return None
    embed_dim = int(list(task.hparams['projector_dims'])[-1])
    if not task.hparams['decouple']:
        return embed_dim
    return int(task.common_dim)


def dimension_groups(embed_dim: int, common_dim: int | None) -> dict[str, slice]:
    """The groups of embedding dimensions the analyses tell apart.

    Args:
        embed_dim: Embedding size K.
        common_dim: Number of common dimensions (the first ones), or None for
            no split.

    Returns:
        ``{'common': slice, 'unique': slice}``; only ``'common'`` when every
        dimension is common; ``{'all': slice}`` when *common_dim* is None.

    Raises:
        ValueError: If *common_dim* is not in ``[1, embed_dim]``.

    .. versionadded:: 0.1
    """
    if common_dim is None:
        return {'all': slice(0, embed_dim)}
    if not 1 <= common_dim <= embed_dim:
        msg = f'common_dim must be in [1, {embed_dim}], got {common_dim}'
        raise ValueError(msg)
    groups = {'common': slice(0, common_dim)}
    if common_dim < embed_dim:
        groups['unique'] = slice(common_dim, embed_dim)
    return groups


def branches(task: SSLTask) -> tuple[tuple[nn.Module, nn.Module], ...]:
    """The (encoder, projector) of each modality of a task.

    Args:
        task: A task with an encoder and a projector per modality.

    Returns:
        ``((encoder, projector), ...)`` in the order of its modalities.

    .. versionadded:: 0.1
    """
    return tuple((task.encoders[m], task.projectors[m]) for m in task.modality_names)


@torch.no_grad()
def embed(
    task: nn.Module, x1: Tensor, x2: Tensor, batch_size: int = 256
) -> tuple[Tensor, Tensor]:
    """Projector outputs of preprocessed pairs, in evaluation mode.

    Args:
        task: The task (encoders and projectors as :func:`branches` finds).
        x1: Modality 1 images ``(N, C1, H, W)``.
        x2: Modality 2 images ``(N, C2, H, W)``.
        batch_size: Samples per forward pass.

    Returns:
        ``(z1, z2)``, each ``(N, K)`` float32 on the CPU.

    .. versionadded:: 0.1
    """
    was_training = task.training
    task.eval()
    device = next(task.parameters()).device
    out: list[list[Tensor]] = [[], []]
    try:
        for start in range(0, len(x1), batch_size):
            for i, ((backbone, projector), x) in enumerate(
                zip(branches(task), (x1, x2), strict=True)
            ):
                chunk = x[start : start + batch_size].to(device)
                out[i].append(projector(backbone(chunk)).float().cpu())
    finally:
        task.train(was_training)
    return torch.cat(out[0]), torch.cat(out[1])


def prepare_pairs(
    task: nn.Module,
    batch: Mapping[str, Any],
    dataset: object | None = None,
    source: str = 'data',
) -> tuple[Tensor, Tensor]:
    """Preprocess a batch of raw pairs as for evaluation.

    :class:`~torchgeo_decur.datamodules.ModalityPreprocessing` with the
    task's modalities and standardization (the dataset's finishing step, the
    bands matched by name, the normalisation), without augmentation. Of a
    sample with views (``(B, V, C, H, W)``), the first.

    Args:
        task: The task; its ``hparams`` give the modalities and channels.
        batch: A collated batch of raw samples with ``image1`` and ``image2``.
        dataset: The dataset the batch comes from, if any.
        source: Name of the data for error messages (e.g. the config file).

    Returns:
        ``(x1, x2)``, each ``(B, C, H, W)`` as the encoders take them.

    Raises:
        KeyError: If the batch lacks ``image1`` or ``image2``.
        ValueError: If the data lack bands the encoder takes (by name), or
            have another number of channels than ``in_channels1`` /
            ``in_channels2``.

    .. versionadded:: 0.1
    """
    hparams = cast(Mapping[str, Any], task.hparams)
    names = list(hparams['modalities'])
    preparation = ModalityPreprocessing(dict(zip(KEYS, names, strict=True)), dataset)
    out = []
    records = encoder_records(hparams)
    for i, (key, modality) in enumerate(preparation.modalities.items(), start=1):
        expected = int(records[i - 1]['in_chans'])
        bands = preparation.input_bands.get(key, modality.bands)
        missing = [b for b in modality.bands if b not in bands]
        if missing:
            msg = (
                f'{source}: {key} has {len(bands)} bands ({", ".join(bands)}), '
                f'but the encoder of modality {modality.name!r} takes '
                f'in_channels{i}={expected} ({", ".join(modality.bands)}); '
                f'missing: {", ".join(missing)}'
            )
            raise ValueError(msg)
    prepared = preparation(batch)
    for key in KEYS:
        x: Tensor = prepared[key]
        out.append(x[:, 0] if x.ndim == 5 else x)
    return out[0], out[1]


def load_datamodule(config: str | os.PathLike[str]) -> LightningDataModule:
    """Instantiate the datamodule of a LightningCLI YAML (its ``data:`` section).

    Args:
        config: The YAML file; other sections (``model``, ``trainer``) are
            ignored.

    Returns:
        The datamodule, not set up.

    Raises:
        FileNotFoundError: If *config* does not exist.
        ValueError: If it has no ``data:`` section with a ``class_path``, or
            the datamodule cannot be built from it.

    .. versionadded:: 0.1
    """
    from jsonargparse import ArgumentParser

    path = Path(config)
    if not path.is_file():
        msg = f'data config not found: {path}'
        raise FileNotFoundError(msg)
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        msg = f'{path} is not a YAML file: {err}'
        raise ValueError(msg) from err
    data = content.get('data') if isinstance(content, Mapping) else None
    if not (isinstance(data, Mapping) and 'class_path' in data):
        msg = (
            f'{path} has no data: section with a class_path (a LightningCLI config '
            'such as conf/decur_s1s2_demo.yaml)'
        )
        raise ValueError(msg)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, 'data', required=True)
    try:
        namespace = parser.parse_object({'data': dict(data)})
        # jsonargparse >= 4.49 names it instantiate
        instantiate = getattr(parser, 'instantiate', parser.instantiate_classes)
        datamodule = instantiate(namespace).data
    except Exception as err:
        msg = f'{path}: cannot build the datamodule of its data: section: {err}'
        raise ValueError(msg) from err
    return cast(LightningDataModule, datamodule)


@dataclass
class Pairs:
    """Preprocessed pairs of the two modalities.

    Attributes:
        x1: Modality 1 images ``(N, C1, H, W)``, on the CPU.
        x2: Modality 2 images ``(N, C2, H, W)``, on the CPU.
        indices: Dataset index of each pair.
        requested: Number of pairs asked for.

    .. versionadded:: 0.1
    """

    x1: Tensor
    x2: Tensor
    indices: list[int]
    requested: int


def _dataset_of(datamodule: LightningDataModule, source: str) -> Dataset[Any]:
    """Set up a datamodule and return the dataset to read samples from."""
    datamodule.setup('fit')
    for name in ('dataset', 'train_dataset'):
        dataset = getattr(datamodule, name, None)
        if dataset is not None:
            return cast(Dataset[Any], dataset)
    msg = f'{source}: {type(datamodule).__name__} has no dataset after setup("fit")'
    raise ValueError(msg)


def load_pairs(
    config: str | os.PathLike[str],
    task: nn.Module,
    samples: int = 256,
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device = 'cpu',
) -> Pairs:
    """Read and preprocess pairs through the datamodule of a data config.

    The datamodule is set up for ``'fit'``; *samples* indices of its dataset
    (all of them for a :class:`~torchgeo_decur.datamodules.PairedDataModule`,
    else its training set) are drawn with *seed* and read in index order,
    each with generators seeded from ``(seed, index)`` (so e.g. the season
    of an SSL4EO-S12 location is the same every time), then preprocessed by
    :func:`prepare_pairs` on *device*.

    Args:
        config: LightningCLI YAML with a ``data:`` section.
        task: The task the pairs are for (modalities and channels).
        samples: Number of pairs; if the data hold fewer, all of them (with a
            warning).
        batch_size: Samples read and preprocessed at a time.
        seed: Seed of the choice of samples and of their random draws.
        device: Where to preprocess.

    Returns:
        The pairs.

    Raises:
        FileNotFoundError: If *config* does not exist.
        ValueError: If *samples* < 2, the data hold fewer than 2 pairs, or
            their bands do not fit the encoders (see :func:`prepare_pairs`).

    .. versionadded:: 0.1
    """
    if samples < 2:
        msg = (
            'samples must be >= 2 (embeddings are normalised along the batch), '
            f'got {samples}'
        )
        raise ValueError(msg)
    source = str(config)
    datamodule = load_datamodule(config)
    hparams = cast(Mapping[str, Any], task.hparams)
    data_modalities = getattr(datamodule, 'modalities', None)
    if data_modalities is not None and list(data_modalities) != list(
        hparams['modalities']
    ):
        msg = (
            f'{source}: the data are of modalities {list(data_modalities)}, the '
            f'checkpoint of {list(hparams["modalities"])}; preprocessing as the '
            'checkpoint says'
        )
        warnings.warn(msg, UserWarning, stacklevel=2)
    dataset = _dataset_of(datamodule, source)
    n = len(cast(Any, dataset))
    if n < 2:
        msg = f'{source}: the data hold {n} pair(s); explanations need at least 2'
        raise ValueError(msg)
    if samples > n:
        msg = f'{source}: {samples} samples requested, but the data hold {n}; using {n}'
        warnings.warn(msg, UserWarning, stacklevel=2)
    generator = torch.Generator().manual_seed(seed)
    chosen = sorted(torch.randperm(n, generator=generator)[:samples].tolist())
    keys = [(i, derive_seed(seed, i)) for i in chosen]
    collate = getattr(datamodule, 'collate_fn', None) or default_collate
    loader = DataLoader(
        Subset(SeededDataset(dataset), cast(Sequence[int], keys)),
        batch_size=batch_size,
        collate_fn=collate,
    )
    x1: list[Tensor] = []
    x2: list[Tensor] = []
    with torch.no_grad():
        for batch in loader:
            moved = {
                k: v.to(device) if isinstance(v, Tensor) else v
                for k, v in batch.items()
            }
            a, b = prepare_pairs(task, moved, dataset, source)
            x1.append(a.float().cpu())
            x2.append(b.float().cpu())
    return Pairs(torch.cat(x1), torch.cat(x2), chosen, samples)
