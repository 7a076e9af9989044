#!/usr/bin/env python3
"""Write a tiny NYU-Depth v2 copy in the CMX layout.

As CMX (github.com/huaaaliu/RGBX_Semantic_Segmentation) reads NYU-Depth v2::

    RGB/<name>.jpg    colour image
    HHA/<name>.jpg    HHA image (R disparity, G height, B angle)
    Depth/<name>.png  16-bit depth in millimetres, 0 missing
    Label/<name>.png  8-bit classes: 0 unlabeled, 1..40
    train.txt         one name a line, no folder, no extension
    test.txt

Four training and two test images of 40 x 48 px (640 x 480 in NYU-Depth v2),
each a rendered room (floor, back wall, a box on the floor) seen by a camera
with a random tilt: the depth is exact, with a patch of missing depth; the
labels are the surfaces (wall 1, floor 2, box 5 chair), with a few unlabeled
pixels; the colours follow the labels; the HHA images are made from the depth
with torchgeo_decur.transforms.depth_to_hha and INTRINSICS. Run with the
project's virtualenv from anywhere; it rewrites the folders next to this
script.
"""

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from torchgeo_decur.transforms import depth_to_hha

SEED = 0
HEIGHT, WIDTH = 40, 48
#: (fx, fy, cx, cy) of the fixture's camera, in pixels.
INTRINSICS = (40.0, 40.0, 23.5, 19.5)
TRAIN = ('0003', '0004', '0005', '0008')
TEST = ('0001', '0002')
WALL, FLOOR, BOX = 1, 2, 5


def rotation(pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation (world y up; camera x right, y down)."""
    p, r = np.deg2rad(pitch), np.deg2rad(roll)
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rx @ np.diag([1.0, -1.0, 1.0]) @ rz


def render(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Depth (metres) and labels of a room seen from 1.4 m above the floor."""
    fx, fy, cx, cy = INTRINSICS
    u, v = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones(u.shape)], -1)
    rays = rays @ rotation(rng.uniform(15, 30), rng.uniform(-5, 5)).T
    origin = np.array([0.0, 1.4, 0.0])
    depth = np.full(u.shape, np.inf)
    labels = np.zeros(u.shape, np.uint8)
    with np.errstate(divide='ignore', invalid='ignore'):
        for axis, value, label in ((1, 0.0, FLOOR), (2, 4.0, WALL)):
            t = (value - origin[axis]) / rays[..., axis]
            hit = (t > 0) & (t < depth)
            depth[hit], labels[hit] = t[hit], label
        lo = np.array([rng.uniform(-0.8, 0.0), 0.0, 2.0])
        hi = lo + np.array([0.8, 0.45, 0.8])
        t1, t2 = (lo - origin) / rays, (hi - origin) / rays
    near = np.minimum(t1, t2).max(-1)
    far = np.maximum(t1, t2).min(-1)
    hit = (near <= far) & (near > 0) & (near < depth)
    depth[hit], labels[hit] = near[hit], BOX
    depth[~np.isfinite(depth)] = 0
    return depth, labels


def main() -> None:
    root = Path(__file__).resolve().parent
    rng = np.random.default_rng(SEED)
    palette = rng.integers(30, 230, (41, 3))
    for folder in ('RGB', 'HHA', 'Depth', 'Label'):
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir()
    for name in TRAIN + TEST:
        depth, labels = render(rng)
        y, x = rng.integers(0, HEIGHT - 6), rng.integers(0, WIDTH - 6)
        depth[y : y + 5, x : x + 5] = 0  # missing depth
        labels[rng.random(labels.shape) < 0.03] = 0  # unlabeled pixels
        rgb = palette[labels] + rng.integers(-15, 15, (HEIGHT, WIDTH, 3))
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(root / 'RGB' / f'{name}.jpg', quality=90)
        hha = depth_to_hha(depth, INTRINSICS).transpose(1, 2, 0)
        Image.fromarray(np.ascontiguousarray(hha)).save(
            root / 'HHA' / f'{name}.jpg', quality=90
        )
        millimetres = np.rint(depth * 1000).astype(np.uint16)
        Image.fromarray(millimetres).save(root / 'Depth' / f'{name}.png')
        Image.fromarray(labels).save(root / 'Label' / f'{name}.png')
    (root / 'train.txt').write_text(''.join(f'{n}\n' for n in TRAIN))
    (root / 'test.txt').write_text(''.join(f'{n}\n' for n in TEST))


if __name__ == '__main__':
    main()
