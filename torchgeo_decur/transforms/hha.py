"""HHA encoding of depth maps (Gupta et al. 2014), for RGB-D inputs.

HHA turns a metric depth map into three 8-bit channels that an image encoder
can take like colour: horizontal disparity, height above the ground and the
angle of the surface with gravity (S. Gupta, R. Girshick, P. Arbeláez, J.
Malik, "Learning Rich Features from RGB-D Images for
Object Detection and Segmentation", ECCV 2014; gravity as in S. Gupta, P.
Arbeláez, J. Malik, "Perceptual Organization and Recognition of Indoor Scenes
from RGB-D Images", CVPR 2013). SUN RGB-D and NYU-Depth v2 are commonly
distributed with HHA images next to the RGB ones (the ``HHA/`` folder of the
layout :class:`~torchgeo_decur.datasets.SUNRGBD` reads); this module makes
them from raw depth for users who have only that (:func:`convert_depth_folder`
for a ``Depth/`` folder).

Steps of :func:`depth_to_hha`:

1. back-project every pixel ``(u, v)`` with depth ``z`` (metres) to the camera
   frame (x right, y down, z forward; pixel centres at integer coordinates,
   as OpenCV): ``x = (u - cx) z / fx``, ``y = (v - cy) z / fy``;
2. estimate a surface normal at each pixel by a least-squares plane fit
   (principal component analysis) of the valid 3-D points of the
   ``(2 r + 1) x (2 r + 1)`` pixel window around it (vectorised with integral
   images), oriented towards the camera;
3. estimate the upward direction (:func:`estimate_gravity`): from the
   camera's up axis, repeatedly keep the normals within a small angle of
   parallel or of perpendicular to the current estimate and take the direction
   most parallel to the first and most perpendicular to the second (45° then
   15°, five iterations each, as Gupta et al.'s code);
4. height of each point above the floor: its coordinate along the upward
   direction minus that of the lowest points (a low percentile);
5. angle between each normal and the upward direction, in degrees: 0° on
   floors and table tops, 90° on walls, 180° on ceilings.

Encoding of the channels (the defaults are Gupta et al.'s, so that the output
matches the HHA images of SUN RGB-D and NYU-Depth v2 made with their code, and
:data:`DISPARITY_SCALE`, :data:`HEIGHT_SCALE`, :data:`ANGLE_OFFSET` name them),
each rounded and clipped to 0..255:

* disparity = 310 / depth in metres (their ``31000 / depth in cm``), so
  everything nearer than 1.22 m saturates at 255 and 10 m gives 31;
* height = 100 x height in metres (1 level per centimetre, 2.55 m at most);
* angle = angle in degrees + 38 (floors 38, walls 128, ceilings 218).

Missing depth (0, negative, NaN or infinite) is left out of the normals, the
gravity and the floor estimate, and those pixels are filled with
:data:`FILL_VALUE` (0) in all three channels: disparity 0 is "no
measurement" (infinitely far), and a valid pixel's angle channel is never
below 38. (Gupta et al.'s code computes disparity and height there from the
inpainted depth, and writes 180°, i.e. 218, where it has no normal; the
output here never holds values made up from missing depth.) A pixel with depth whose
window holds too few valid points for a plane gets the fill value in the
angle channel only.

.. versionadded:: 0.1
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = (
    'ANGLE_OFFSET',
    'DISPARITY_SCALE',
    'FILL_VALUE',
    'HEIGHT_SCALE',
    'NYU_DEPTH_V2_INTRINSICS',
    'convert_depth_folder',
    'decode_depth_png',
    'depth_to_hha',
    'estimate_gravity',
    'surface_normals',
)

#: Disparity channel = ``DISPARITY_SCALE / depth in metres`` (Gupta et al.'s
#: ``31000 / depth in cm``), clipped to 255.
DISPARITY_SCALE = 310.0

#: Height channel = ``HEIGHT_SCALE * height above the floor in metres``
#: (1 level per centimetre), clipped to 0..255.
HEIGHT_SCALE = 100.0

#: Angle channel = ``angle in degrees + ANGLE_OFFSET`` (Gupta et al.'s
#: ``angle + 128 - 90``: walls at 128).
ANGLE_OFFSET = 38.0

#: Value of all three channels on pixels with missing depth.
FILL_VALUE = 0

#: Colour camera intrinsics ``(fx, fy, cx, cy)`` of NYU-Depth v2 (in pixels,
#: 640 x 480 images), from the dataset's toolbox (``camera_params.m``).
NYU_DEPTH_V2_INTRINSICS = (
    518.857901174502,
    519.469611121275,
    325.582449411190,
    253.736166334005,
)

#: If the lowest points lie less than this far below the camera (metres), the
#: floor is taken to be out of view (see *assumed_camera_height*).
MIN_FLOOR_DROP = 0.9

#: Angle thresholds (degrees) and iterations of the gravity estimation.
GRAVITY_SCHEDULE = ((45.0, 5), (15.0, 5))

#: The type of camera intrinsics: ``(fx, fy, cx, cy)`` or a 3 x 3 matrix.
Intrinsics = Sequence[float] | Sequence[Sequence[float]] | np.ndarray | Tensor


def _intrinsics(intrinsics: Intrinsics) -> tuple[float, float, float, float]:
    """Parse camera intrinsics into ``(fx, fy, cx, cy)``.

    Args:
        intrinsics: ``(fx, fy, cx, cy)`` or a 3 x 3 camera matrix.

    Returns:
        ``(fx, fy, cx, cy)``.

    Raises:
        ValueError: If *intrinsics* has another shape, is not finite, or a focal
            length is not positive.
    """
    if isinstance(intrinsics, Tensor):
        intrinsics = intrinsics.detach().cpu().numpy()
    try:
        k = np.asarray(intrinsics, dtype=np.float64)
    except (TypeError, ValueError) as err:
        msg = f'intrinsics must be (fx, fy, cx, cy) or a 3 x 3 matrix: {err}'
        raise ValueError(msg) from None
    if k.shape == (3, 3):
        fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    elif k.shape == (4,):
        fx, fy, cx, cy = k
    else:
        msg = (
            'intrinsics must be (fx, fy, cx, cy) or a 3 x 3 matrix, got shape '
            f'{k.shape}'
        )
        raise ValueError(msg)
    if not np.isfinite(k).all() or fx <= 0 or fy <= 0:
        msg = f'intrinsics need finite values and positive focal lengths, got {k}'
        raise ValueError(msg)
    return float(fx), float(fy), float(cx), float(cy)


def _depth_array(depth: np.ndarray | Tensor) -> np.ndarray:
    """Depth as a float64 numpy array [H, W], checked.

    Args:
        depth: Depth map in metres.

    Returns:
        A float64 copy.

    Raises:
        ValueError: If *depth* is not 2-D or not numeric.
    """
    array = (
        depth.detach().cpu().numpy() if isinstance(depth, Tensor) else np.asarray(depth)
    )
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        msg = f'depth must be a 2-D map [H, W] in metres, got shape {array.shape}'
        raise ValueError(msg)
    if not (np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_):
        msg = f'depth must be numeric (metres), got dtype {array.dtype}'
        raise ValueError(msg)
    return array.astype(np.float64)


def _backproject(
    depth: np.ndarray, intrinsics: tuple[float, float, float, float]
) -> np.ndarray:
    """3-D points of a depth map in the camera frame (x right, y down)."""
    fx, fy, cx, cy = intrinsics
    h, w = depth.shape
    u = np.arange(w, dtype=np.float64)[None, :]
    v = np.arange(h, dtype=np.float64)[:, None]
    return np.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], axis=-1)


def _box_sum(a: np.ndarray, radius: int, step: int = 1) -> np.ndarray:
    """Sum of *a* ``[H, W, ...]`` over the ``2 r + 1`` window of each pixel.

    Windows are clipped at the image border (zero padding). Integral images,
    so the cost does not depend on the radius. With *step*, only every
    *step*-th row and column is returned.
    """
    size = 2 * radius + 1
    pad = ((radius + 1, radius), (radius + 1, radius)) + ((0, 0),) * (a.ndim - 2)
    c = np.pad(a, pad).cumsum(0).cumsum(1)
    h, w = a.shape[:2]
    rows, cols = slice(0, h, step), slice(0, w, step)
    late_rows = slice(size, size + h, step)
    late_cols = slice(size, size + w, step)
    return (
        c[late_rows, late_cols]
        - c[rows, late_cols]
        - c[late_rows, cols]
        + c[rows, cols]
    )


def surface_normals(
    points: np.ndarray, valid: np.ndarray, radius: int = 3, step: int = 1
) -> np.ndarray:
    """Unit surface normals by a local plane fit, oriented towards the camera.

    The normal of each valid pixel is the direction of least variance of the
    valid 3-D points in its ``(2 radius + 1)`` pixel square window (total
    least squares plane), flipped to face the camera (``n . p < 0``).

    Args:
        points: 3-D points ``[H, W, 3]`` in the camera frame.
        valid: Boolean mask ``[H, W]`` of the pixels with depth.
        radius: Half-size of the window in pixels.
        step: Compute the normals of every *step*-th row and column only
            (e.g. for the gravity estimate, which needs no more).

    Returns:
        Normals ``[ceil(H / step), ceil(W / step), 3]``; NaN where the pixel
        has no depth or its window has too few valid points to define a plane
        (fewer than 3, or all on a line).

    Raises:
        ValueError: If *radius* is negative, *step* not positive, or the shapes
            do not match.

    .. versionadded:: 0.1
    """
    if radius < 0 or step < 1:
        msg = f'radius must be >= 0 and step >= 1 pixels, got {radius} and {step}'
        raise ValueError(msg)
    if points.shape[:2] != valid.shape or points.shape[-1:] != (3,):
        msg = (
            f'points [H, W, 3] and valid [H, W] do not match: {points.shape} '
            f'and {valid.shape}'
        )
        raise ValueError(msg)
    valid = valid.astype(bool)
    centres, centre_valid = points[::step, ::step], valid[::step, ::step]
    normals = np.full(centres.shape, np.nan)
    if not valid.any():
        return normals
    # centre the coordinates for precision of the second moments
    p = np.where(valid[..., None], points - points[valid].mean(0), 0.0)
    iu, ju = np.triu_indices(3)
    moments = np.concatenate(
        [valid[..., None].astype(np.float64), p, p[..., iu] * p[..., ju]], axis=-1
    )
    sums = _box_sum(moments, radius, step)
    ok = centre_valid & (sums[..., 0] >= 3)
    sums = sums[ok]
    n = sums[:, :1]
    mean = sums[:, 1:4] / n
    second = sums[:, 4:] / n
    cov = np.empty((len(n), 3, 3))
    cov[:, iu, ju] = second - mean[:, iu] * mean[:, ju]
    cov[:, ju, iu] = cov[:, iu, ju]
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    normal = eigenvectors[:, :, 0]
    # a line (or a point) does not define a plane
    planar = eigenvalues[:, 1] > 1e-6 * np.maximum(eigenvalues[:, 2], 1e-300)
    facing = np.sign(np.einsum('ij,ij->i', normal, centres[ok]))
    normal = normal * np.where(facing > 0, -1.0, 1.0)[:, None]
    normal[~planar] = np.nan
    normals[ok] = normal
    return normals


def estimate_gravity(
    normals: np.ndarray,
    initial: Sequence[float] = (0.0, -1.0, 0.0),
    schedule: Sequence[tuple[float, int]] = GRAVITY_SCHEDULE,
) -> np.ndarray:
    """Estimate the upward direction (opposite to gravity) from surface normals.

    Gupta et al.'s iteration (CVPR 2013): with the current estimate ``g``,
    take the normals within *angle* of parallel to it (floors, table tops,
    ceilings) and those within *angle* of perpendicular to it (walls, sides),
    and replace ``g`` with the unit vector that minimises
    ``sum((n_wall . g)^2) - sum((n_floor . g)^2)`` (an eigenvector of a 3 x 3
    matrix), keeping its sign towards the previous estimate.

    Args:
        normals: Unit normals ``[..., 3]`` in the camera frame (x right, y down,
            z forward); NaN rows are ignored.
        initial: First estimate: the camera's up axis (-y) by default.
        schedule: ``(angle in degrees, iterations)`` pairs, run in order.

    Returns:
        The upward direction, a unit vector ``[3]`` in the camera frame.

    Raises:
        ValueError: If *initial* is not a non-zero 3-vector.

    .. versionadded:: 0.1
    """
    up = np.asarray(initial, dtype=np.float64)
    if up.shape != (3,) or not np.isfinite(up).all() or not np.linalg.norm(up):
        msg = f'initial must be a non-zero 3-vector, got {initial!r}'
        raise ValueError(msg)
    up = up / np.linalg.norm(up)
    n = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    n = n[np.isfinite(n).all(axis=1)]
    for angle, iterations in schedule:
        threshold = np.deg2rad(angle)
        for _ in range(iterations):
            similarity = np.abs(n @ up)
            parallel = n[similarity > np.cos(threshold)]
            perpendicular = n[similarity < np.sin(threshold)]
            if len(parallel) + len(perpendicular) < 3:
                break  # nothing to go on: keep the estimate
            a = perpendicular.T @ perpendicular - parallel.T @ parallel
            new = np.linalg.eigh(a)[1][:, 0]
            up = new * (1.0 if new @ up >= 0 else -1.0)
    return up


@overload
def depth_to_hha(
    depth: np.ndarray,
    intrinsics: Intrinsics,
    *,
    gravity: Sequence[float] | None = ...,
    normal_radius: int = ...,
    gravity_radius: int = ...,
    floor_percentile: float = ...,
    assumed_camera_height: float | None = ...,
    disparity_scale: float = ...,
    height_scale: float = ...,
    angle_offset: float = ...,
    fill: int = ...,
) -> np.ndarray: ...


@overload
def depth_to_hha(
    depth: Tensor,
    intrinsics: Intrinsics,
    *,
    gravity: Sequence[float] | None = ...,
    normal_radius: int = ...,
    gravity_radius: int = ...,
    floor_percentile: float = ...,
    assumed_camera_height: float | None = ...,
    disparity_scale: float = ...,
    height_scale: float = ...,
    angle_offset: float = ...,
    fill: int = ...,
) -> Tensor: ...


def depth_to_hha(
    depth: np.ndarray | Tensor,
    intrinsics: Intrinsics,
    *,
    gravity: Sequence[float] | None = None,
    normal_radius: int = 3,
    gravity_radius: int = 10,
    floor_percentile: float = 1.0,
    assumed_camera_height: float | None = 1.3,
    disparity_scale: float = DISPARITY_SCALE,
    height_scale: float = HEIGHT_SCALE,
    angle_offset: float = ANGLE_OFFSET,
    fill: int = FILL_VALUE,
) -> np.ndarray | Tensor:
    """Encode a depth map as an HHA image (disparity, height, angle).

    See :mod:`torchgeo_decur.transforms.hha` for the steps, the encoding of
    each channel and the treatment of missing depth. Intrinsics are those of
    the depth map as given: scale them with the image if it was resized.

    Args:
        depth: Depth map ``[H, W]`` (or ``[1, H, W]``) in metres, numpy or
            torch; 0, negative, NaN and infinite values are missing depth.
        intrinsics: Camera intrinsics in pixels, ``(fx, fy, cx, cy)`` or a
            3 x 3 camera matrix, pixel centres at integer coordinates (e.g.
            :data:`NYU_DEPTH_V2_INTRINSICS`).
        gravity: Upward direction in the camera frame (x right, y down, z
            forward) if known, e.g. from the camera's extrinsics; None
            estimates it (:func:`estimate_gravity`).
        normal_radius: Half-size in pixels of the window of the normals that
            give the angle channel (Gupta et al.: 3).
        gravity_radius: Half-size in pixels of the window of the (smoother)
            normals that give the gravity direction (Gupta et al.: 10).
        floor_percentile: Percentile of the heights of the valid points taken
            as the floor (robust to a few stray points below it).
        assumed_camera_height: If the floor estimate lies less than
            ``MIN_FLOOR_DROP`` (0.9 m) below the camera, the floor is
            probably out of view, and is put this many metres below the camera
            instead, as Gupta et al.'s code does (1.3 m); None always uses the
            percentile.
        disparity_scale: Disparity channel = ``disparity_scale / depth``.
        height_scale: Height channel = ``height_scale * height`` (metres).
        angle_offset: Angle channel = ``angle in degrees + angle_offset``.
        fill: Value of all three channels on pixels without depth (0..255).

    Returns:
        uint8 ``[3, H, W]``: disparity, height, angle; a numpy array for numpy
        input, a tensor (on the input's device) for torch input.

    Raises:
        ValueError: If *depth* is not a 2-D numeric map or has no valid pixel,
            the intrinsics are malformed, or a parameter is out of range.

    .. versionadded:: 0.1
    """
    device = depth.device if isinstance(depth, Tensor) else None
    z = _depth_array(depth)
    k = _intrinsics(intrinsics)
    if not 0 <= fill <= 255:
        msg = f'fill must be in 0..255, got {fill}'
        raise ValueError(msg)
    if not 0 <= floor_percentile < 100:
        msg = f'floor_percentile must be in [0, 100), got {floor_percentile}'
        raise ValueError(msg)
    radii = {'normal_radius': normal_radius, 'gravity_radius': gravity_radius}
    for name, value in radii.items():
        if value < 1:
            msg = f'{name} must be >= 1 pixel, got {value}'
            raise ValueError(msg)
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(z) & (z > 0)
    if not valid.any():
        msg = (
            f'depth map {z.shape[0]} x {z.shape[1]} has no valid pixel (all zero, '
            'negative, NaN or infinite)'
        )
        raise ValueError(msg)
    z = np.where(valid, z, 0.0)
    points = _backproject(z, k)

    normals = surface_normals(points, valid, normal_radius)
    if gravity is None:
        step = max(1, min(z.shape) // 160)  # enough normals, less time
        coarse = surface_normals(points, valid, gravity_radius, step)
        up = estimate_gravity(coarse)
    else:
        up = np.asarray(gravity, dtype=np.float64)
        if up.shape != (3,) or not np.isfinite(up).all() or not np.linalg.norm(up):
            msg = f'gravity must be a non-zero 3-vector, got {gravity!r}'
            raise ValueError(msg)
        up = up / np.linalg.norm(up)

    height = points @ up
    floor = float(np.percentile(height[valid], floor_percentile))
    if assumed_camera_height is not None and floor > -MIN_FLOOR_DROP:
        floor = -float(assumed_camera_height)
    height = height - floor

    with np.errstate(invalid='ignore'):
        angle = np.degrees(np.arccos(np.clip(normals @ up, -1.0, 1.0)))
    with np.errstate(divide='ignore'):
        disparity = disparity_scale / np.where(valid, z, np.inf)

    channels = np.stack(
        [disparity, height * height_scale, angle + angle_offset], axis=0
    )
    channels = np.clip(np.rint(channels), 0, 255)
    channels[2][~np.isfinite(channels[2])] = fill  # no plane: no angle
    channels[:, ~valid] = fill
    hha = channels.astype(np.uint8)
    if device is not None:
        return torch.from_numpy(hha).to(device)
    return hha


def decode_depth_png(
    array: np.ndarray, encoding: Literal['mm', 'sunrgbd'] = 'mm'
) -> np.ndarray:
    """Metric depth from the integers of a 16-bit depth PNG.

    Args:
        array: The stored values, ``[H, W]``.
        encoding: ``'mm'``: millimetres (NYU-Depth v2 exports and most
            others); ``'sunrgbd'``: SUN RGB-D's ``depth/`` PNGs, whose 16-bit
            values rotated right by 3 bits are millimetres (as the dataset's
            toolbox reads them). 0 is missing depth in both.

    Returns:
        Depth in metres, float64.

    Raises:
        ValueError: If *encoding* is unknown.

    .. versionadded:: 0.1
    """
    values = np.asarray(array).astype(np.uint32)
    mm: np.ndarray
    if encoding == 'mm':
        mm = values
    elif encoding == 'sunrgbd':
        values &= 0xFFFF
        mm = ((values >> 3) | (values << 13)) & 0xFFFF
    else:
        msg = f"encoding must be 'mm' or 'sunrgbd', got {encoding!r}"
        raise ValueError(msg)
    return mm.astype(np.float64) / 1000.0


def _read_depth(
    path: Path,
    encoding: Literal['mm', 'sunrgbd'] | Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Read one depth image as metres (see :func:`convert_depth_folder`)."""
    with Image.open(path) as image:
        array = np.asarray(image)
    if callable(encoding):
        return np.asarray(encoding(array), dtype=np.float64)
    if array.ndim != 2 or array.dtype == np.uint8:
        msg = (
            f'a single-channel 16-bit depth image is needed, got '
            f'{array.dtype} of shape {array.shape} (8-bit depth images are '
            'visualisations, not metric depth; pass a decoding function as '
            'encoding if yours holds a known scale)'
        )
        raise ValueError(msg)
    return decode_depth_png(array, encoding)


def convert_depth_folder(
    depth_dir: str | Path,
    hha_dir: str | Path,
    intrinsics: Intrinsics | Callable[[Path], Intrinsics],
    encoding: Literal['mm', 'sunrgbd'] | Callable[[np.ndarray], np.ndarray] = 'mm',
    pattern: str = '*.png',
    extension: str = '.png',
    **kwargs: Any,
) -> list[Path]:
    """Convert a folder of depth images (``Depth/``) into HHA images (``HHA/``).

    Each ``depth_dir/<name>.png`` becomes ``hha_dir/<name><extension>``, an
    8-bit RGB image whose red, green and blue channels hold the disparity,
    height and angle (as HHA images are stored, and as
    :class:`~torchgeo_decur.datasets.SUNRGBD` reads them). Nothing is
    overwritten: if any output exists already, nothing is written.

    Example, for NYU-Depth v2 depth PNGs in millimetres::

        from torchgeo_decur.transforms import (
            NYU_DEPTH_V2_INTRINSICS,
            convert_depth_folder,
        )

        convert_depth_folder(
            'NYUDepthv2/Depth', 'NYUDepthv2/HHA', NYU_DEPTH_V2_INTRINSICS
        )

    Args:
        depth_dir: Folder of the depth images.
        hha_dir: Folder of the HHA images (created if needed).
        intrinsics: Camera intrinsics (see :func:`depth_to_hha`), or a function
            of the depth image's path that returns them (SUN RGB-D's sensors
            differ).
        encoding: How the stored integers become metres
            (:func:`decode_depth_png`), or a function of the image array that
            returns metres.
        pattern: Glob pattern of the depth images in *depth_dir*.
        extension: File extension of the HHA images: ``'.png'`` (lossless,
            the default) or ``'.jpg'`` (as the HHA of CMX's NYU-Depth v2 copy,
            quality 95).
        **kwargs: Keyword arguments of :func:`depth_to_hha`.

    Returns:
        The paths written, in sorted order of the inputs.

    Raises:
        FileNotFoundError: If *depth_dir* does not exist or holds no image
            matching *pattern*.
        FileExistsError: If an HHA image to be written exists already (named).
        ValueError: If a depth image cannot be read or converted (named), or
            *extension* is not ``.png``/``.jpg``.

    .. versionadded:: 0.1
    """
    depth_dir, hha_dir = Path(depth_dir), Path(hha_dir)
    if extension.lower() not in ('.png', '.jpg', '.jpeg'):
        msg = f"extension must be '.png' or '.jpg', got {extension!r}"
        raise ValueError(msg)
    if not depth_dir.is_dir():
        msg = f'depth folder {depth_dir} does not exist'
        raise FileNotFoundError(msg)
    sources = sorted(p for p in depth_dir.glob(pattern) if p.is_file())
    if not sources:
        msg = f'no depth image matching {pattern!r} in {depth_dir}'
        raise FileNotFoundError(msg)
    targets = [
        hha_dir / (p.relative_to(depth_dir).with_suffix(extension)) for p in sources
    ]
    existing = [t for t in targets if t.exists()]
    if existing:
        more = f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''
        msg = (
            f'{existing[0]} exists already{more}: convert_depth_folder never '
            'overwrites; remove it or choose another hha_dir'
        )
        raise FileExistsError(msg)
    written = []
    for source, target in zip(sources, targets, strict=True):
        try:
            depth = _read_depth(source, encoding)
            k = intrinsics(source) if callable(intrinsics) else intrinsics
            hha = depth_to_hha(depth, k, **kwargs)
        except (OSError, ValueError) as err:
            msg = f'cannot convert depth image {source}: {err}'
            raise ValueError(msg) from err
        target.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(np.ascontiguousarray(hha.transpose(1, 2, 0)))
        if target.suffix.lower() == '.png':
            image.save(target)
        else:
            image.save(target, quality=95)
        written.append(target)
    return written
