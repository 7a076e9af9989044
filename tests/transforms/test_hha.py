from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from torchgeo_decur.transforms import (
    NYU_DEPTH_V2_INTRINSICS,
    convert_depth_folder,
    decode_depth_png,
    depth_to_hha,
    estimate_gravity,
    surface_normals,
)
from torchgeo_decur.transforms.hha import (
    ANGLE_OFFSET,
    DISPARITY_SCALE,
    FILL_VALUE,
    HEIGHT_SCALE,
)

FLOOR, CEILING, BACK, LEFT, RIGHT, BOX_TOP, BOX_SIDE = range(1, 8)
HORIZONTAL_UP = (FLOOR, BOX_TOP)  # normals (towards the camera) point up
VERTICAL = (BACK, LEFT, RIGHT, BOX_SIDE)
#: Intrinsics of the fixture's camera (tests/data/nyuv2/data.py).
NYU_FIXTURE_INTRINSICS = (40.0, 40.0, 23.5, 19.5)


def rotation(axis: str, degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    if axis == 'x':
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == 'y':
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def render(
    pitch: float = 10.0,
    roll: float = 5.0,
    yaw: float = 10.0,
    camera_height: float = 1.5,
    size: tuple[int, int] = (96, 128),
    focal: float = 70.0,
) -> tuple[np.ndarray, tuple[float, ...], np.ndarray, np.ndarray, np.ndarray]:
    """Ray-cast a room: floor (y = 0), ceiling (2.6 m), walls, a 0.5 m box.

    Returns the depth (metres), the intrinsics, the surface of each pixel,
    its height above the floor and the upward direction in the camera frame.
    """
    h, w = size
    k = (focal, focal, (w - 1) / 2, (h - 1) / 2)
    # camera frame (x right, y down, z forward) to world (y up), tilted
    r = (
        rotation('y', yaw)
        @ rotation('x', pitch)
        @ np.diag([1.0, -1.0, 1.0])
        @ rotation('z', roll)
    )
    origin = np.array([0.0, camera_height, 0.0])
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    rays = np.stack([(u - k[2]) / k[0], (v - k[3]) / k[1], np.ones((h, w))], -1)
    rays = rays @ r.T  # depth is the ray parameter: the rays have z = 1
    depth = np.full((h, w), np.inf)
    surface = np.zeros((h, w), int)
    planes = (
        (1, 0.0, FLOOR),
        (1, 2.6, CEILING),
        (2, 5.0, BACK),
        (0, -2.0, LEFT),
        (0, 2.5, RIGHT),
    )
    with np.errstate(divide='ignore', invalid='ignore'):
        for axis, value, name in planes:
            t = (value - origin[axis]) / rays[..., axis]
            hit = (t > 0) & (t < depth)
            depth[hit], surface[hit] = t[hit], name
        lo, hi = np.array([-0.4, 0.0, 2.2]), np.array([0.6, 0.5, 3.2])
        t1, t2 = (lo - origin) / rays, (hi - origin) / rays
    near = np.nanmax(np.minimum(t1, t2), -1)
    far = np.nanmin(np.maximum(t1, t2), -1)
    top = np.nanargmax(np.minimum(t1, t2), -1) == 1
    hit = (near <= far) & (near > 0) & (near < depth)
    depth[hit] = near[hit]
    surface[hit] = np.where(top[hit], BOX_TOP, BOX_SIDE)
    assert np.isfinite(depth).all()
    height = origin[1] + depth * rays[..., 1]
    up = r.T @ np.array([0.0, 1.0, 0.0])
    return depth, k, surface, height, up


def interior(surface: np.ndarray, radius: int = 3) -> np.ndarray:
    """Pixels whose window holds a single surface (no edge effects)."""
    padded = np.pad(surface, radius, mode='edge')
    windows = sliding_window_view(padded, (2 * radius + 1,) * 2)
    return windows.min(axis=(-1, -2)) == windows.max(axis=(-1, -2))


def expected_disparity(depth: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(DISPARITY_SCALE / depth), 0, 255)


POSES = [
    {'pitch': 10.0, 'roll': 5.0, 'yaw': 10.0},
    {'pitch': 20.0, 'roll': -8.0, 'yaw': -15.0},
]


@pytest.mark.parametrize('pose', POSES)
def test_plane_scene(pose: dict[str, float]) -> None:
    depth, k, surface, height, up = render(**pose)
    hha = depth_to_hha(depth, k)
    assert hha.shape == (3, *depth.shape) and hha.dtype == np.uint8
    disparity, heights, angles = hha.astype(float)

    # disparity: 310 / depth, rounded and clipped
    np.testing.assert_array_equal(disparity, expected_disparity(depth))

    inner = interior(surface)
    for name in (FLOOR, BOX_TOP, BACK, LEFT, BOX_SIDE, CEILING):
        assert (inner & (surface == name)).sum() > 20, name
    # angle with gravity: 0 deg on floor and box top, 90 on walls, 180 ceiling
    on = {name: inner & (surface == name) for name in range(1, 8)}
    for name in HORIZONTAL_UP:
        assert np.abs(angles[on[name]] - (0 + ANGLE_OFFSET)).max() <= 1
    for name in VERTICAL:
        assert np.abs(angles[on[name]] - (90 + ANGLE_OFFSET)).max() <= 1
    assert np.abs(angles[on[CEILING]] - (180 + ANGLE_OFFSET)).max() <= 1

    # height above the floor, in cm: floor 0, box top 50, walls their height
    expected = np.clip(np.rint(height * HEIGHT_SCALE), 0, 255)
    assert np.abs(heights[on[FLOOR]]).max() <= 2
    assert np.abs(heights[on[BOX_TOP]] - 50).max() <= 2
    for name in VERTICAL:
        assert np.abs(heights[on[name]] - expected[on[name]]).max() <= 3

    # the estimated gravity is the true one to a fraction of a degree
    fx, fy, cx, cy = k
    u, v = np.meshgrid(np.arange(depth.shape[1]), np.arange(depth.shape[0]))
    points = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones(u.shape)], -1)
    points = points * depth[..., None]
    normals = surface_normals(points, np.ones(depth.shape, bool), radius=10)
    estimate = estimate_gravity(normals)
    assert np.degrees(np.arccos(np.clip(estimate @ up, -1, 1))) < 1


def test_known_gravity_gives_exact_heights() -> None:
    depth, k, surface, height, up = render(**POSES[1])
    hha = depth_to_hha(depth, k, gravity=up)
    inner = interior(surface) & (height < 2.5)
    expected = np.rint(height * HEIGHT_SCALE)
    np.testing.assert_allclose(hha[1][inner], expected[inner], atol=1)


def test_gravity_estimation_matters() -> None:
    """With the camera's own up axis as gravity, a tilted camera gets it wrong."""
    depth, k, surface, _, _ = render(pitch=20.0, roll=8.0)
    floor = interior(surface) & (surface == FLOOR)
    naive = depth_to_hha(depth, k, gravity=(0.0, -1.0, 0.0))
    assert np.abs(naive[2][floor].astype(float) - ANGLE_OFFSET).min() > 15
    estimated = depth_to_hha(depth, k)
    assert np.abs(estimated[2][floor].astype(float) - ANGLE_OFFSET).max() <= 1


def test_noisy_depth() -> None:
    depth, k, surface, _, _ = render(**POSES[0])
    rng = np.random.default_rng(0)
    noisy = depth + rng.normal(0, 0.002, depth.shape) * depth  # 0.2 % noise
    hha = depth_to_hha(noisy, k).astype(float)
    inner = interior(surface)
    floor = inner & (surface == FLOOR)
    wall = inner & (surface == BACK)
    assert np.abs(np.median(hha[2][floor]) - ANGLE_OFFSET) <= 2
    assert np.abs(np.median(hha[2][wall]) - (90 + ANGLE_OFFSET)) <= 2
    assert np.abs(np.median(hha[1][floor])) <= 2


def test_missing_depth_is_filled_not_nan() -> None:
    depth, k, _, _, _ = render(**POSES[0])
    complete = depth_to_hha(depth, k)
    holes = depth.copy()
    holes[10:20, 10:30] = 0
    holes[40:45, 60:70] = np.nan
    holes[70:75, 20:40] = np.inf
    holes[30:34, 90:100] = -1.0
    holes[0, :] = 0  # a missing border
    missing = ~(np.isfinite(holes) & (holes > 0))
    hha = depth_to_hha(holes, k)
    assert hha.dtype == np.uint8
    # documented fill: every channel FILL_VALUE (0) where depth is missing
    assert FILL_VALUE == 0
    assert (hha[:, missing] == FILL_VALUE).all()
    # elsewhere unchanged, away from the holes' windows
    far = ~(sliding_window_view(np.pad(missing, 3), (7, 7)).any(axis=(-1, -2)))
    np.testing.assert_array_equal(hha[0][~missing], complete[0][~missing])
    assert np.abs(hha[1:, far].astype(int) - complete[1:, far]).max() <= 1
    # valid pixels never hit the fill in the angle channel (>= ANGLE_OFFSET)
    assert (hha[2][far] >= ANGLE_OFFSET).all()
    # and a custom fill
    assert (depth_to_hha(holes, k, fill=7)[:, missing] == 7).all()


def test_floor_out_of_view() -> None:
    """Looking at a wall only: the floor is assumed 1.3 m below the camera."""
    depth, k, _, height, up = render(
        pitch=0.0, roll=0.0, yaw=0.0, size=(20, 30), focal=200.0
    )
    assert height.min() > 0.9  # the lowest point is < 0.6 m below the camera
    hha = depth_to_hha(depth, k, gravity=up)
    centre = hha[1][10, 15]
    camera = 1.3 * HEIGHT_SCALE
    assert abs(int(centre) - camera) <= 3
    lowest = depth_to_hha(depth, k, gravity=up, assumed_camera_height=None)
    assert lowest[1].min() == 0


def test_torch_input_and_camera_matrix() -> None:
    depth, k, _, _, _ = render(size=(24, 32), focal=20.0)
    expected = depth_to_hha(depth, k)
    matrix = torch.tensor([[k[0], 0, k[2]], [0, k[1], k[3]], [0, 0, 1]])
    out = depth_to_hha(torch.from_numpy(depth).float()[None], matrix)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8
    assert out.shape == (3, 24, 32)
    assert (out.numpy().astype(int) - expected).__abs__().max() <= 1


def test_surface_normals_face_the_camera() -> None:
    depth = np.full((9, 9), 2.0)  # a wall facing the camera
    k = (10.0, 10.0, 4.0, 4.0)
    u, v = np.meshgrid(np.arange(9), np.arange(9))
    points = np.stack([(u - 4) * 0.2, (v - 4) * 0.2, depth], -1)
    valid = np.ones((9, 9), bool)
    valid[0, 0] = False
    normals = surface_normals(points, valid, radius=1)
    assert np.isnan(normals[0, 0]).all()
    np.testing.assert_allclose(normals[4, 4], (0, 0, -1), atol=1e-9)
    coarse = surface_normals(points, valid, radius=1, step=2)
    assert coarse.shape == (5, 5, 3)
    np.testing.assert_array_equal(coarse, normals[::2, ::2])
    assert depth_to_hha(depth, k, gravity=(0, -1, 0))[2, 4, 4] == 90 + ANGLE_OFFSET


@pytest.mark.parametrize(
    ('depth', 'intrinsics', 'kwargs', 'match'),
    [
        (np.ones((2, 4, 4)), (1, 1, 0, 0), {}, r'2-D map \[H, W\]'),
        (np.zeros((4, 4)), (1, 1, 0, 0), {}, 'no valid pixel'),
        (np.full((4, 4), np.nan), (1, 1, 0, 0), {}, 'no valid pixel'),
        (np.ones((4, 4)), (1, 1, 0), {}, r'got shape \(3,\)'),
        (np.ones((4, 4)), (0, 1, 0, 0), {}, 'positive focal lengths'),
        (np.ones((4, 4)), (1, 1, 0, 0), {'fill': 300}, 'fill must be in 0..255'),
        (np.ones((4, 4)), (1, 1, 0, 0), {'gravity': (0, 0, 0)}, 'non-zero 3-vector'),
        (np.ones((4, 4)), (1, 1, 0, 0), {'normal_radius': 0}, 'normal_radius'),
        (np.ones((4, 4)), (1, 1, 0, 0), {'floor_percentile': 100}, 'percentile'),
        (np.array([['a']]), (1, 1, 0, 0), {}, 'numeric'),
    ],
)
def test_bad_inputs(
    depth: np.ndarray, intrinsics: tuple, kwargs: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        depth_to_hha(depth, intrinsics, **kwargs)


def test_nyu_intrinsics() -> None:
    fx, fy, cx, cy = NYU_DEPTH_V2_INTRINSICS
    assert 518 < fx < 520 and 519 < fy < 520 and 325 < cx < 326 and 253 < cy < 254


def test_decode_sunrgbd_depth() -> None:
    mm = np.array([[0, 1, 1234, 8000]], dtype=np.uint16)
    stored = ((mm.astype(np.uint32) << 3) | (mm.astype(np.uint32) >> 13)) & 0xFFFF
    np.testing.assert_allclose(decode_depth_png(stored, 'sunrgbd'), mm / 1000)
    np.testing.assert_allclose(decode_depth_png(mm), mm / 1000)
    with pytest.raises(ValueError, match="'mm' or 'sunrgbd'"):
        decode_depth_png(mm, 'cm')  # type: ignore[arg-type]


def test_convert_depth_folder(nyuv2_root: Path, tmp_path: Path) -> None:
    depth_dir, hha_dir = nyuv2_root / 'Depth', tmp_path / 'HHA'
    written = convert_depth_folder(depth_dir, hha_dir, NYU_FIXTURE_INTRINSICS)
    assert [p.name for p in written] == sorted(p.name for p in depth_dir.iterdir())
    stored = np.asarray(Image.open(depth_dir / '0001.png'))
    hha = np.asarray(Image.open(hha_dir / '0001.png'))
    expected = depth_to_hha(stored / 1000.0, NYU_FIXTURE_INTRINSICS)
    np.testing.assert_array_equal(hha.transpose(2, 0, 1), expected)
    assert (hha[stored == 0] == FILL_VALUE).all()  # missing depth

    # never overwrites: refuses before writing anything, naming the file
    before = (hha_dir / '0002.png').read_bytes()
    with pytest.raises(FileExistsError, match=r'0001\.png exists already \(and 5 more'):
        convert_depth_folder(depth_dir, hha_dir, NYU_FIXTURE_INTRINSICS)
    assert (hha_dir / '0002.png').read_bytes() == before

    # a per-image intrinsics function, JPEG output
    seen: list[Path] = []

    def intrinsics(path: Path) -> tuple[float, ...]:
        seen.append(path)
        return NYU_FIXTURE_INTRINSICS

    out = convert_depth_folder(
        depth_dir, tmp_path / 'jpg', intrinsics, extension='.jpg'
    )
    assert len(seen) == 6 and all(p.suffix == '.jpg' for p in out)


def test_convert_depth_folder_bad_file(nyuv2_root: Path, tmp_path: Path) -> None:
    depth_dir = nyuv2_root / 'Depth'
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(depth_dir / '0002.png')
    with pytest.raises(ValueError, match=r'0002\.png: .*8-bit depth images are'):
        convert_depth_folder(depth_dir, tmp_path / 'a', NYU_FIXTURE_INTRINSICS)
    (depth_dir / '0002.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match=r'cannot convert depth image .*0002\.png'):
        convert_depth_folder(depth_dir, tmp_path / 'b', NYU_FIXTURE_INTRINSICS)
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(depth_dir / '0002.png')
    with pytest.raises(ValueError, match=r'0002\.png: .*no valid pixel'):
        convert_depth_folder(depth_dir, tmp_path / 'c', NYU_FIXTURE_INTRINSICS)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        convert_depth_folder(tmp_path / 'none', tmp_path / 'd', (1, 1, 0, 0))
    with pytest.raises(FileNotFoundError, match=r"no depth image matching '\*\.tif'"):
        convert_depth_folder(depth_dir, tmp_path / 'e', (1, 1, 0, 0), pattern='*.tif')
