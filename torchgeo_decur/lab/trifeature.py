"""Bimodal Trifeature: synthetic shape/texture/colour pairs, generated in memory.

Trifeature (Hermann & Lampinen, NeurIPS 2020, https://arxiv.org/abs/2006.12433)
images show one of 10 shapes, filled with one of 10 textures, in one of 10
colours, on a grey background. CoMM (Dufumier et al., ICLR 2025, "What to
align in multimodal contrastive learning?", https://arxiv.org/abs/2409.07402)
makes a bimodal benchmark of it: the two "modalities" are two images of the
**same shape** whose textures and colours are independent, so that

* the shape is information both modalities share (redundancy, R),
* the texture of each image is unique to it (U1, U2),
* whether the texture of image 1 and the colour of image 2 form one of 10
  fixed pairs (a random bijection M from textures to colours) is synergy
  (S): neither image alone says anything about it.

Pretrained on pairs that all satisfy ``colour2 = M[texture1]`` (the *biased*
set), a model can learn the synergy; probed on unbiased pairs (where it holds
for about 10%), balanced accuracy above 50% says it did.

This module renders the images itself, vectorised over the batch with
torch (masks from point-in-polygon and periodic functions of rotated pixel
coordinates; no per-pixel Python loop, no file, no download): 10000 pairs of
32 x 32 px take about half a second on one CPU thread, of 64 x 64 px about
2.5 s. Everything is a function of the seeds: the 80/20 split of the 1000
(shape, texture, colour) combinations (:func:`combination_split`), the
bijection M (:func:`synergy_map`, its own seed, whatever was generated
before) and the pairs of each split (:class:`BimodalTrifeature`).

Geometry (all relative to the image side, so that 64 px images show the
same scenes as 32 px ones at twice the resolution):

* each shape fits in a disc of radius :data:`SHAPE_RADIUS` (0.35 of the
  side) around its centre, is rotated by an angle drawn uniformly in
  ``[-45, 45)`` degrees, and its centre is drawn uniformly where the disc
  stays one pixel inside the image;
* each texture is periodic with period :data:`TEXTURE_PERIOD` (0.1 of the
  side, 4.8 px at 48 px) in a frame rotated by its own angle in
  ``[-45, 45)`` degrees and shifted by a random phase; pixels of the shape
  where the texture is off stay grey.

The reference renderer (Hermann & Lampinen's, as CoMM's code reproduces it)
draws 128 px templates with a texture period of 10 px into 224 px images,
which at 48 px would leave a texture period of 2.1 px. The period here
keeps both visible at 48 px: at 0.2 of the side (tried first) a shape
holds only about three periods of its texture and the shapes could not be
told apart by eye at 32 px; at 0.1 they can at 48 px (0.07 at 64 px).
Textures and shapes follow the reference's descriptions, redrawn as
functions of the coordinates (see :data:`TEXTURES`).

.. versionadded:: 0.1
"""

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor
from torchgeo.datasets.utils import Sample

from ..datasets import MultimodalDataset
from ..modalities import Modality, register_modality
from ..transforms.augmentation import trifeature_augmentation
from ..transforms.normalize import Scale

__all__ = (
    'BACKGROUND',
    'COLOURS',
    'SHAPES',
    'SHAPE_RADIUS',
    'TEXTURES',
    'TEXTURE_PERIOD',
    'BimodalTrifeature',
    'combination_split',
    'render',
    'shape_mask',
    'synergy_map',
    'texture_mask',
)

#: The 10 shapes, in label order. Each is drawn inside the unit disc of its
#: own frame (x right, y down), scaled by :data:`SHAPE_RADIUS`: an
#: equilateral triangle and a regular pentagon (circumradius 1 and 0.9,
#: pointing up), a square (half-side 0.7), a plus (arms 0.6 wide, 1.9 long),
#: a circle (radius 0.8), a tee (bar 1.2 x 0.6 over a 0.6 wide stem), a
#: rhombus (diagonals 2 and 1.24), a five-pointed star (radii 1 and 0.45), a
#: "fivesquare" (a square of 3 x 3 cells, the four corners and the centre
#: filled) and an isosceles trapezoid (narrow side up).
SHAPES: tuple[str, ...] = (
    'triangle',
    'square',
    'plus',
    'circle',
    'tee',
    'rhombus',
    'pentagon',
    'star',
    'fivesquare',
    'trapezoid',
)

#: The 10 textures, in label order; with ``(a, b)`` the pixel coordinates in
#: the texture's rotated frame in periods (:data:`TEXTURE_PERIOD`), shifted by
#: a random phase, and ``{.}`` the fractional part, a pixel is on if:
#:
#: * ``solid``: always;
#: * ``stripes``: ``{b} < 1/3`` (lines a third of the period wide);
#: * ``grid``: ``{a} < 1/3`` or ``{b} < 1/3``;
#: * ``hexgrid``: a triangular lattice of lines, three families at 60
#:   degrees to each other, each 1/4 of the period wide;
#: * ``dots``: within 0.33 periods of the centre of its cell;
#: * ``noise``: with probability 0.5, independently for every pixel;
#: * ``triangles``: in the upward triangle of its cell (apex at 0.1, base
#:   at 0.9 of the cell's height, base 0.8 wide);
#: * ``zigzags``: ``{a + |{b} - 1/2|} < 0.4`` (bands zigzagging at 45 degrees);
#: * ``rain``: in a short vertical streak (0.25 x 0.6 periods) placed at random
#:   in its cell of 0.5 x 1 periods, present in 75% of the cells;
#: * ``pluses``: in a plus (arms 0.24 wide, 0.76 long) centred in its cell,
#:   every other row of cells shifted by half a period.
TEXTURES: tuple[str, ...] = (
    'solid',
    'stripes',
    'grid',
    'hexgrid',
    'dots',
    'noise',
    'triangles',
    'zigzags',
    'rain',
    'pluses',
)

#: The 10 colours, in label order, as RGB in [0, 1]: the values of the
#: reference implementation (Hermann & Lampinen's, as in CoMM's code). In the
#: uint8 images, ``floor(255 * value + 0.5)``.
COLOURS: dict[str, tuple[float, float, float]] = {
    'red': (1.0, 0.0, 0.0),
    'green': (0.0, 1.0, 0.0),
    'blue': (0.0, 0.0, 1.0),
    'yellow': (1.0, 1.0, 0.0),
    'pink': (1.0, 0.4, 1.0),
    'cyan': (0.0, 1.0, 1.0),
    'purple': (0.3, 0.0, 0.5),
    'ocean': (0.1, 0.4, 0.5),
    'orange': (1.0, 0.6, 0.0),
    'white': (1.0, 1.0, 1.0),
}

#: Background grey, RGB in [0, 1] (128 in the uint8 images).
BACKGROUND: tuple[float, float, float] = (0.5, 0.5, 0.5)

#: Radius of the disc every shape fits in, as a fraction of the image side.
SHAPE_RADIUS = 0.35

#: Period of the textures, as a fraction of the image side (4.8 px at 48 px).
TEXTURE_PERIOD = 0.1

#: Range of the random rotations of shapes and textures, in degrees.
ANGLE_RANGE = (-45.0, 45.0)

#: Smallest image side :func:`render` accepts.
MIN_SIZE = 8

#: Images rendered at once when a dataset is generated (bounds the memory of
#: the float intermediates).
_CHUNK = 4096

_NUM = 10


def _uint8(rgb: Sequence[float]) -> list[int]:
    """RGB in [0, 1] to 8-bit, rounding halves up."""
    return [math.floor(255 * v + 0.5) for v in rgb]


_PALETTE = torch.tensor([_uint8(c) for c in COLOURS.values()], dtype=torch.uint8)
_GREY = torch.tensor(_uint8(BACKGROUND), dtype=torch.uint8)


# --------------------------------------------------------------------------- #
# Shapes: inside tests in the shape's frame (unit disc)
# --------------------------------------------------------------------------- #


def _regular(k: int, radius: float) -> list[tuple[float, float]]:
    """Vertices of a regular k-gon with a vertex straight up (y points down)."""
    return [
        (
            radius * math.cos(-math.pi / 2 + 2 * math.pi * i / k),
            radius * math.sin(-math.pi / 2 + 2 * math.pi * i / k),
        )
        for i in range(k)
    ]


def _convex(u: Tensor, v: Tensor, vertices: Sequence[tuple[float, float]]) -> Tensor:
    """Whether points are inside a convex polygon (edges included).

    Args:
        u: x coordinates.
        v: y coordinates.
        vertices: The polygon's vertices, in order around it.

    Returns:
        A boolean tensor shaped like *u*.
    """
    cu = sum(p[0] for p in vertices) / len(vertices)
    cv = sum(p[1] for p in vertices) / len(vertices)
    inside = torch.ones_like(u, dtype=torch.bool)
    for (ax, ay), (bx, by) in zip(vertices, [*vertices[1:], vertices[0]], strict=True):
        # side of edge a -> b, oriented so that the centroid is inside
        side = 1.0 if (bx - ax) * (cv - ay) - (by - ay) * (cu - ax) >= 0 else -1.0
        inside &= side * ((bx - ax) * (v - ay) - (by - ay) * (u - ax)) >= 0
    return inside


def _box(u: Tensor, v: Tensor, u0: float, u1: float, v0: float, v1: float) -> Tensor:
    """Whether points are inside the rectangle ``[u0, u1] x [v0, v1]``."""
    return (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)


def _star(u: Tensor, v: Tensor, outer: float, inner: float, points: int) -> Tensor:
    """Whether points are inside a regular star with a point straight up."""
    sector = 2 * math.pi / points
    r = torch.sqrt(u * u + v * v)
    # angle from the upward tip, folded to [0, sector / 2]
    phi = torch.remainder(torch.atan2(v, u) + math.pi / 2, sector)
    phi = torch.minimum(phi, sector - phi)
    x, y = r * torch.cos(phi), r * torch.sin(phi)
    # inside iff on the centre's side of the edge from the tip to the notch
    ax, ay = outer, 0.0
    bx, by = inner * math.cos(sector / 2), inner * math.sin(sector / 2)
    return (bx - ax) * (y - ay) - (by - ay) * (x - ax) >= 0


def _fivesquare(u: Tensor, v: Tensor, half: float) -> Tensor:
    """Corners and centre of a 3 x 3 grid of cells covering a square."""
    cell = 2 * half / 3
    i = torch.floor((u + half) / cell)
    j = torch.floor((v + half) / cell)
    return _box(u, v, -half, half, -half, half) & (torch.remainder(i + j, 2) == 0)


def _triangle(u: Tensor, v: Tensor) -> Tensor:
    return _convex(u, v, _regular(3, 1.0))


def _square(u: Tensor, v: Tensor) -> Tensor:
    return _box(u, v, -0.7, 0.7, -0.7, 0.7)


def _plus(u: Tensor, v: Tensor) -> Tensor:
    return _box(u, v, -0.3, 0.3, -0.95, 0.95) | _box(u, v, -0.95, 0.95, -0.3, 0.3)


def _circle(u: Tensor, v: Tensor) -> Tensor:
    return u * u + v * v <= 0.8**2


def _tee(u: Tensor, v: Tensor) -> Tensor:
    return _box(u, v, -0.6, 0.6, -0.8, -0.2) | _box(u, v, -0.3, 0.3, -0.2, 0.95)


def _rhombus(u: Tensor, v: Tensor) -> Tensor:
    return _convex(u, v, [(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)])


def _pentagon(u: Tensor, v: Tensor) -> Tensor:
    return _convex(u, v, _regular(5, 0.9))


def _five_star(u: Tensor, v: Tensor) -> Tensor:
    return _star(u, v, 1.0, 0.45, 5)


def _five_squares(u: Tensor, v: Tensor) -> Tensor:
    return _fivesquare(u, v, 0.7)


def _trapezoid(u: Tensor, v: Tensor) -> Tensor:
    return _convex(u, v, [(-0.4, -0.55), (0.4, -0.55), (0.83, 0.55), (-0.83, 0.55)])


#: Inside test of each shape, in the order of :data:`SHAPES`; all points of
#: every shape are within the unit disc.
_SHAPE_TESTS: tuple[Callable[[Tensor, Tensor], Tensor], ...] = (
    _triangle,
    _square,
    _plus,
    _circle,
    _tee,
    _rhombus,
    _pentagon,
    _five_star,
    _five_squares,
    _trapezoid,
)


# --------------------------------------------------------------------------- #
# Textures: periodic functions of the rotated coordinates (in periods)
# --------------------------------------------------------------------------- #


def _frac(x: Tensor) -> Tensor:
    return x - torch.floor(x)


def _cell_table(
    a: Tensor, b: Tensor, fields: int, generator: torch.Generator | None
) -> tuple[Tensor, ...]:
    """Random values per cell ``(floor(a), floor(b))`` of each image.

    Args:
        a: Cell coordinate along the first axis, ``[n, H, W]``.
        b: Cell coordinate along the second axis, ``[n, H, W]``.
        fields: Number of uniform values per cell.
        generator: Source of randomness.

    Returns:
        *fields* tensors ``[n, H, W]``: the values of each pixel's cell.
    """
    n = a.shape[0]
    ia, ib = torch.floor(a).long(), torch.floor(b).long()
    ia0 = ia.flatten(1).min(1).values.view(n, 1, 1)
    ib0 = ib.flatten(1).min(1).values.view(n, 1, 1)
    ia, ib = ia - ia0, ib - ib0
    rows, cols = int(ia.max()) + 1, int(ib.max()) + 1
    table = torch.rand(n, fields, rows * cols, generator=generator)
    index = (ia * cols + ib).flatten(1)  # [n, H * W]
    values = table.gather(2, index.unsqueeze(1).expand(-1, fields, -1))
    return tuple(values[:, k].view_as(a) for k in range(fields))


def _texture_on(
    kind: int, a: Tensor, b: Tensor, generator: torch.Generator | None
) -> Tensor:
    """Whether each pixel of a texture is on.

    Args:
        kind: Texture index (see :data:`TEXTURES`).
        a: First coordinate in the rotated, shifted frame, in periods.
        b: Second coordinate, in periods.
        generator: Source of randomness (noise, rain).

    Returns:
        A boolean tensor shaped like *a*.
    """
    name = TEXTURES[kind]
    fa, fb = _frac(a), _frac(b)
    if name == 'solid':
        return torch.ones_like(a, dtype=torch.bool)
    if name == 'stripes':
        return fb < 1 / 3
    if name == 'grid':
        return (fa < 1 / 3) | (fb < 1 / 3)
    if name == 'hexgrid':
        on = fb < 0.25
        for deg in (30.0, 150.0):
            c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
            on |= _frac(a * c + b * s) < 0.25
        return on
    if name == 'dots':
        return (fa - 0.5) ** 2 + (fb - 0.5) ** 2 < 0.33**2
    if name == 'noise':
        return torch.rand(a.shape, generator=generator) < 0.5
    if name == 'triangles':
        return (fb < 0.9) & ((fa - 0.5).abs() < (fb - 0.1) / 2)
    if name == 'zigzags':
        return _frac(a + (fb - 0.5).abs()) < 0.4
    if name == 'rain':
        # cells of 0.5 x 1 periods, one streak of 0.25 x 0.6 periods in each
        a2 = 2 * a
        present, x0, y0 = _cell_table(a2, b, 3, generator)
        x = _frac(a2) - 0.5 * x0
        y = fb - 0.4 * y0
        return (present < 0.75) & (x >= 0) & (x < 0.5) & (y >= 0) & (y < 0.6)
    if name == 'pluses':
        shift = 0.5 * torch.remainder(torch.floor(b), 2)
        ca, cb = (_frac(a + shift) - 0.5).abs(), (fb - 0.5).abs()
        return ((ca < 0.12) & (cb < 0.38)) | ((cb < 0.12) & (ca < 0.38))
    raise AssertionError(name)  # pragma: no cover


# --------------------------------------------------------------------------- #
# Rendering
# --------------------------------------------------------------------------- #


def _check_labels(values: Tensor, name: str, n: int | None = None) -> Tensor:
    """Check a 1-D tensor of labels in ``[0, 10)``.

    Raises:
        ValueError: If it is not 1-D integer, has the wrong length or a value
            out of range.
    """
    values = torch.as_tensor(values)
    if values.ndim != 1 or values.is_floating_point() or values.is_complex():
        msg = (
            f'{name} must be a 1-D integer tensor, got {values.dtype} '
            f'{tuple(values.shape)}'
        )
        raise ValueError(msg)
    if n is not None and len(values) != n:
        msg = f'{name} must have {n} elements (one per image), got {len(values)}'
        raise ValueError(msg)
    if len(values) and (int(values.min()) < 0 or int(values.max()) >= _NUM):
        msg = (
            f'{name} must be in [0, {_NUM}), got values in '
            f'[{int(values.min())}, {int(values.max())}]'
        )
        raise ValueError(msg)
    return values.long().cpu()


def _check_size(size: int) -> None:
    if size < MIN_SIZE:
        msg = f'size must be >= {MIN_SIZE} px, got {size}'
        raise ValueError(msg)


def _check_param(
    value: Tensor | None, name: str, shape: tuple[int, ...]
) -> Tensor | None:
    if value is None:
        return None
    value = torch.as_tensor(value, dtype=torch.float32)
    if tuple(value.shape) != shape:
        msg = f'{name} must have shape {shape}, got {tuple(value.shape)}'
        raise ValueError(msg)
    return value


def _grid(size: int) -> tuple[Tensor, Tensor]:
    """Pixel centres ``(x, y)``, each ``[1, size, size]``."""
    c = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(c, c, indexing='ij')
    return x[None], y[None]


def shape_mask(
    shape: Tensor,
    size: int,
    generator: torch.Generator | None = None,
    angle: Tensor | None = None,
    centre: Tensor | None = None,
) -> Tensor:
    """Masks of shapes, randomly rotated and placed (vectorised).

    Args:
        shape: Shape indices ``[N]`` (see :data:`SHAPES`).
        size: Image side in pixels.
        generator: Source of the random angles and centres.
        angle: Rotations ``[N]`` in degrees instead of random ones (drawn
            uniformly in ``[-45, 45)``).
        centre: Centres ``[N, 2]`` as ``(x, y)`` in pixels (the image spans
            ``[0, size]``) instead of random ones (drawn uniformly where the
            shape's disc stays one pixel inside the image).

    Returns:
        Boolean masks ``[N, size, size]``.

    Raises:
        ValueError: If an argument has the wrong shape or is out of range.

    .. versionadded:: 0.1
    """
    shape = _check_labels(shape, 'shape')
    _check_size(size)
    n = len(shape)
    angle = _check_param(angle, 'angle', (n,))
    centre = _check_param(centre, 'centre', (n, 2))
    radius = SHAPE_RADIUS * size
    low, high = ANGLE_RANGE
    drawn = torch.rand(n, 3, generator=generator)
    if angle is None:
        angle = low + (high - low) * drawn[:, 0]
    if centre is None:
        margin = radius + 1
        centre = margin + (size - 2 * margin) * drawn[:, 1:]
    x, y = _grid(size)
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for kind in range(_NUM):
        idx = torch.nonzero(shape == kind).flatten()
        if not len(idx):
            continue
        theta = torch.deg2rad(angle[idx]).view(-1, 1, 1)
        cos, sin = torch.cos(theta), torch.sin(theta)
        dx = (x - centre[idx, 0].view(-1, 1, 1)) / radius
        dy = (y - centre[idx, 1].view(-1, 1, 1)) / radius
        # the point in the shape's frame: rotate back by the shape's angle
        u = cos * dx + sin * dy
        v = cos * dy - sin * dx
        mask[idx] = _SHAPE_TESTS[kind](u, v)
    return mask


def texture_mask(
    texture: Tensor,
    size: int,
    generator: torch.Generator | None = None,
    angle: Tensor | None = None,
    offset: Tensor | None = None,
) -> Tensor:
    """Where textures are on, over whole images (vectorised).

    Args:
        texture: Texture indices ``[N]`` (see :data:`TEXTURES`).
        size: Image side in pixels.
        generator: Source of the random angles, phases, noise and rain.
        angle: Rotations ``[N]`` in degrees instead of random ones (drawn
            uniformly in ``[-45, 45)``).
        offset: Phases ``[N, 2]`` in periods instead of random ones (drawn
            uniformly in ``[0, 1)``).

    Returns:
        Boolean masks ``[N, size, size]``.

    Raises:
        ValueError: If an argument has the wrong shape or is out of range.

    .. versionadded:: 0.1
    """
    texture = _check_labels(texture, 'texture')
    _check_size(size)
    n = len(texture)
    angle = _check_param(angle, 'angle', (n,))
    offset = _check_param(offset, 'offset', (n, 2))
    low, high = ANGLE_RANGE
    drawn = torch.rand(n, 3, generator=generator)
    if angle is None:
        angle = low + (high - low) * drawn[:, 0]
    if offset is None:
        offset = drawn[:, 1:]
    period = TEXTURE_PERIOD * size
    x, y = _grid(size)
    x, y = x - size / 2, y - size / 2
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for kind in range(_NUM):
        idx = torch.nonzero(texture == kind).flatten()
        if not len(idx):
            continue
        theta = torch.deg2rad(angle[idx]).view(-1, 1, 1)
        cos, sin = torch.cos(theta), torch.sin(theta)
        a = (cos * x + sin * y) / period + offset[idx, 0].view(-1, 1, 1)
        b = (cos * y - sin * x) / period + offset[idx, 1].view(-1, 1, 1)
        mask[idx] = _texture_on(kind, a, b, generator)
    return mask


def render(
    shape: Tensor,
    texture: Tensor,
    colour: Tensor,
    size: int,
    generator: torch.Generator | None = None,
    *,
    angle: Tensor | None = None,
    centre: Tensor | None = None,
    texture_angle: Tensor | None = None,
    texture_offset: Tensor | None = None,
) -> Tensor:
    """Render Trifeature images, vectorised over the batch.

    Each image shows its shape (:func:`shape_mask`) in its colour where its
    texture (:func:`texture_mask`) is on, and the grey background
    (:data:`BACKGROUND`) everywhere else, with no anti-aliasing: every pixel
    is either the colour or the grey. The random draws come from *generator*
    in a fixed order (shape angles and centres, then texture angles, phases,
    noise and rain), so a seeded generator gives the same images every time.

    Args:
        shape: Shape indices ``[N]`` (see :data:`SHAPES`).
        texture: Texture indices ``[N]`` (see :data:`TEXTURES`).
        colour: Colour indices ``[N]`` (see :data:`COLOURS`).
        size: Image side in pixels (32 to 64 are typical).
        generator: Source of randomness (torch's global generator if None).
        angle: Shape rotations ``[N]`` in degrees instead of random ones.
        centre: Shape centres ``[N, 2]``, ``(x, y)`` in pixels, instead of
            random ones.
        texture_angle: Texture rotations ``[N]`` in degrees instead of random
            ones.
        texture_offset: Texture phases ``[N, 2]`` in periods instead of random
            ones.

    Returns:
        RGB images ``[N, 3, size, size]``, uint8.

    Raises:
        ValueError: If the labels are not 1-D integer tensors of the same
            length with values in ``[0, 10)``, if *size* is below 8, or if a
            fixed parameter has the wrong shape.

    .. versionadded:: 0.1
    """
    shape = _check_labels(shape, 'shape')
    n = len(shape)
    texture = _check_labels(texture, 'texture', n)
    colour = _check_labels(colour, 'colour', n)
    on = shape_mask(shape, size, generator, angle, centre)
    on &= texture_mask(texture, size, generator, texture_angle, texture_offset)
    fill = _PALETTE[colour].view(n, 3, 1, 1)
    return torch.where(on.unsqueeze(1), fill, _GREY.view(1, 3, 1, 1))


# --------------------------------------------------------------------------- #
# Split, synergy and pairs
# --------------------------------------------------------------------------- #


def _derive_seed(*parts: int) -> int:
    """A torch seed that depends on *parts* only."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2)
    return int((int(state[0]) << 32 | int(state[1])) % 2**62)


#: Salts of the derived seeds, so that the split, the bijection and the
#: pairs never share a random stream.
_SALT_SPLIT, _SALT_SYNERGY, _SALT_PAIRS = 1, 2, 3


def _check_seed(seed: int, name: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        msg = f'{name} must be an integer >= 0, got {seed!r}'
        raise ValueError(msg)
    return int(seed)


def combination_split(
    seed: int = 0,
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """Split the 1000 (shape, texture, colour) combinations 80/20.

    A random permutation from *seed* alone: its first 800 combinations train,
    the other 200 test, so that test images show combinations never seen in
    training (as the reference's split).

    Args:
        seed: Seed of the split.

    Returns:
        The training and the test combinations, each sorted, as
        ``(shape, texture, colour)`` index triples.

    Raises:
        ValueError: If *seed* is negative.

    .. versionadded:: 0.1
    """
    seed = _check_seed(seed, 'seed')
    generator = torch.Generator().manual_seed(_derive_seed(_SALT_SPLIT, seed))
    order = torch.randperm(_NUM**3, generator=generator)
    n_train = _NUM**3 * 8 // 10

    def triples(codes: Tensor) -> list[tuple[int, int, int]]:
        return [(c // 100, c // 10 % 10, c % 10) for c in sorted(codes.tolist())]

    return triples(order[:n_train]), triples(order[n_train:])


def synergy_map(seed: int = 0) -> Tensor:
    """The fixed random bijection M from textures to colours.

    Drawn from *seed* alone (its own generator), so it does not depend on
    anything generated before.

    Args:
        seed: Seed of the bijection.

    Returns:
        ``M`` as a LongTensor ``[10]``: ``M[texture]`` is the colour index
        paired with that texture.

    Raises:
        ValueError: If *seed* is negative.

    .. versionadded:: 0.1
    """
    seed = _check_seed(seed, 'seed')
    generator = torch.Generator().manual_seed(_derive_seed(_SALT_SYNERGY, seed))
    return torch.randperm(_NUM, generator=generator)


def _render_chunked(combos: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Render ``(shape, texture, colour)`` rows in chunks of bounded memory."""
    out = torch.empty(len(combos), 3, size, size, dtype=torch.uint8)
    for start in range(0, len(combos), _CHUNK):
        c = combos[start : start + _CHUNK]
        out[start : start + len(c)] = render(c[:, 0], c[:, 1], c[:, 2], size, generator)
    return out


class BimodalTrifeature(MultimodalDataset):
    """Bimodal Trifeature pairs (CoMM's benchmark), generated in memory.

    Each sample is a pair of images with the **same shape** and, otherwise,
    combinations of the split::

        {'image1': uint8 [3, H, W], 'image2': uint8 [3, H, W],  # RGB, 0-255
         'shape': int64, 'texture1': int64, 'texture2': int64,
         'colour1': int64, 'colour2': int64,
         'synergy': int64}  # 1 iff colour2 == M[texture1], else 0

    Labels of the benchmark: R = ``shape``, U1 = ``texture1``, U2 =
    ``texture2``, S = ``synergy``.

    The training images show only the 800 training combinations of
    :func:`combination_split` and the test images only the 200 others. A
    pair ``(c1, c2)`` of combinations is valid if both belong to the split
    and share the shape, and, with *biased*, if ``colour2 = M[texture1]``
    (:func:`synergy_map`); *num_pairs* pairs are drawn uniformly, with
    replacement, among the valid ones, and each image is rendered with its
    own random pose (:func:`render`), so a combination pair drawn twice gives
    different images. Unbiased, about 10% of the pairs have synergy 1; biased,
    all.

    The whole dataset is generated once, at construction, from *seed* and
    the split (the two splits never share a random stream), and kept in
    memory as uint8 (10000 pairs of 32 px: 61 MB). The
    :class:`~torchgeo_decur.lab.TrifeaturePairDataModule` scales the
    images to [0, 1] and augments them on the device, as the modalities
    ``trifeature1`` and ``trifeature2`` say.

    If you use this dataset in your research, please cite:

    * https://arxiv.org/abs/2006.12433 (Trifeature)
    * https://arxiv.org/abs/2409.07402 (CoMM, the bimodal benchmark)

    .. versionadded:: 0.1
    """

    #: Bands of ``image1`` and ``image2``, in channel order.
    input_bands: ClassVar[dict[str, tuple[str, ...]]] = {
        'image1': ('R', 'G', 'B'),
        'image2': ('R', 'G', 'B'),
    }

    #: Label keys of a sample, in order.
    label_keys: ClassVar[tuple[str, ...]] = (
        'shape',
        'texture1',
        'texture2',
        'colour1',
        'colour2',
        'synergy',
    )

    def __init__(
        self,
        split: Literal['train', 'test'] = 'train',
        num_pairs: int = 10000,
        size: int = 32,
        biased: bool = False,
        seed: int = 0,
        split_seed: int = 0,
        synergy_seed: int = 0,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        """Initialize a new BimodalTrifeature instance (generates the pairs).

        Args:
            split: ``'train'`` or ``'test'`` combinations.
            num_pairs: Number of pairs.
            size: Side of the images in pixels (at least 8).
            biased: Whether every pair has ``colour2 = M[texture1]`` (the
                biased pretraining set of the synergy experiment).
            seed: Seed of the pairs and their rendering.
            split_seed: Seed of the 80/20 split of the combinations.
            synergy_seed: Seed of the bijection M.
            transforms: A function/transform that takes a sample and returns a
                transformed version.

        Raises:
            ValueError: If an argument is out of range, or if no pair is
                valid (a biased split without any).
        """
        if split not in ('train', 'test'):
            msg = f"split must be 'train' or 'test', got {split!r}"
            raise ValueError(msg)
        if (
            isinstance(num_pairs, bool)
            or not isinstance(num_pairs, int)
            or num_pairs < 1
        ):
            msg = f'num_pairs must be an integer >= 1, got {num_pairs!r}'
            raise ValueError(msg)
        if isinstance(size, bool) or not isinstance(size, int):
            msg = f'size must be an integer, got {size!r}'
            raise ValueError(msg)
        _check_size(size)
        self.split = split
        self.num_pairs = num_pairs
        self.size = size
        self.biased = bool(biased)
        self.seed = _check_seed(seed, 'seed')
        self.split_seed = _check_seed(split_seed, 'split_seed')
        self.synergy_seed = _check_seed(synergy_seed, 'synergy_seed')
        self.transforms = transforms

        train, test = combination_split(self.split_seed)
        #: Combinations of the split, ``[K, 3]`` (shape, texture, colour).
        self.combinations = torch.tensor(train if split == 'train' else test)
        #: The bijection M (texture index -> colour index).
        self.synergy_map = synergy_map(self.synergy_seed)

        c = self.combinations
        valid = c[:, None, 0] == c[None, :, 0]  # same shape
        if self.biased:
            valid &= c[None, :, 2] == self.synergy_map[c[:, None, 1]]
        candidates = torch.nonzero(valid)  # [P, 2] indices into combinations
        if not len(candidates):
            msg = (
                f'no valid pair in the {split} split (biased={biased}, '
                f'split_seed={split_seed})'
            )
            raise ValueError(msg)

        split_index = 0 if split == 'train' else 1
        generator = torch.Generator().manual_seed(
            _derive_seed(_SALT_PAIRS, self.seed, split_index)
        )
        pick = torch.randint(len(candidates), (num_pairs,), generator=generator)
        c1 = c[candidates[pick, 0]]
        c2 = c[candidates[pick, 1]]
        images = _render_chunked(torch.cat([c1, c2]), size, generator)
        self.image1, self.image2 = images[:num_pairs], images[num_pairs:]
        self._labels = {
            'shape': c1[:, 0].clone(),
            'texture1': c1[:, 1].clone(),
            'texture2': c2[:, 1].clone(),
            'colour1': c1[:, 2].clone(),
            'colour2': c2[:, 2].clone(),
            'synergy': (self.synergy_map[c1[:, 1]] == c2[:, 2]).long(),
        }

    @property
    def labels(self) -> dict[str, Tensor]:
        """Labels of all pairs: ``{name: LongTensor [num_pairs]}``.

        Names as in :attr:`label_keys`; a new dict of the same tensors (do not
        modify them in place).
        """
        return dict(self._labels)

    def __len__(self) -> int:
        """Return the number of pairs.

        Returns:
            *num_pairs*.
        """
        return self.num_pairs

    def __getitem__(self, index: int) -> Sample:
        """Return a pair and its labels.

        Args:
            index: Index of the pair.

        Returns:
            ``{'image1', 'image2', 'shape', 'texture1', 'texture2', 'colour1',
            'colour2', 'synergy'}``: uint8 images ``[3, H, W]`` and int64
            scalars.

        Raises:
            IndexError: If *index* is out of range.
        """
        if not -self.num_pairs <= index < self.num_pairs:
            msg = f'pair index {index} out of range for {self.num_pairs} pairs'
            raise IndexError(msg)
        sample: Sample = {'image1': self.image1[index], 'image2': self.image2[index]}
        for key in self.label_keys:
            sample[key] = self._labels[key][index]
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def describe(self, sample: Sample, view: int) -> str:
        """Words for the shape, texture and colour of one image of a sample.

        Args:
            sample: A sample (or one of a batch, with scalar labels).
            view: 1 or 2.

        Returns:
            Shape, texture and colour names, e.g. ``'square, stripes, red'``.
        """
        colours = list(COLOURS)
        return (
            f'{SHAPES[int(sample["shape"])]}, '
            f'{TEXTURES[int(sample[f"texture{view}"])]}, '
            f'{colours[int(sample[f"colour{view}"])]}'
        )

    def plot(
        self,
        sample: Sample,
        show_titles: bool = True,
        suptitle: str | None = None,
    ) -> Figure:
        """Plot a sample: both images with their labels.

        Args:
            sample: A sample returned by :meth:`__getitem__` (images uint8 in
                0-255, or floats in [0, 1]).
            show_titles: Whether to show the labels above the images.
            suptitle: Optional string to use as a suptitle.

        Returns:
            A matplotlib Figure with the rendered sample.
        """
        fig, axs = plt.subplots(1, 2, figsize=(6, 3.4))
        for view, ax in enumerate(axs, start=1):
            image: Any = sample[f'image{view}']
            image = image.float() / 255 if not image.is_floating_point() else image
            ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
            ax.axis('off')
            if show_titles:
                ax.set_title(f'image {view}: {self.describe(sample, view)}', fontsize=9)
        title = suptitle
        if show_titles and 'synergy' in sample:
            words = f'synergy {int(sample["synergy"])}'
            title = f'{suptitle} ({words})' if suptitle else words
        if title is not None:
            fig.suptitle(title)
        return fig


# --------------------------------------------------------------------------- #
# Modalities
# --------------------------------------------------------------------------- #


def _scale_8bit() -> Scale:
    return Scale(255.0)


def _check_8bit(x: Tensor) -> str | None:
    if x.numel() and bool(x.max() <= 1.0) and bool(x.max() > 0):
        return (
            f'8-bit input expected (0 to 255), got values in '
            f'[{float(x.min()):.4g}, {float(x.max()):.4g}]: already divided by 255?'
        )
    return None


for _name in ('trifeature1', 'trifeature2'):
    register_modality(
        Modality(
            name=_name,
            bands=('R', 'G', 'B'),
            normalization=_scale_8bit,
            augmentation=trifeature_augmentation,
            description='8-bit RGB divided by 255',
            raw='8-bit RGB (0 to 255), channels R, G, B (Bimodal Trifeature)',
            rgb_bands=('R', 'G', 'B'),
            raw_check=_check_8bit,
        )
    )
del _name
