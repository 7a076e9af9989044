#!/usr/bin/env python3
"""Write a tiny SUN RGB-D copy in the CMX layout.

The layout of CMX (github.com/huaaaliu/RGBX_Semantic_Segmentation) and
DFormer for SUN RGB-D::

    RGB/img-<id>.jpg    colour image
    HHA/img-<id>.png    HHA image (R disparity, G height, B angle)
    Label/img-<id>.png  8-bit classes: 0 unlabeled, 1..37
    train.txt           one sample a line, as 'RGB/<name>.jpg Label/<name>.png'
    test.txt

with SUN RGB-D's numbering (test images 1 to 5050, training images from
5051). Four training and two test images; as SUN RGB-D's sensors, they differ
in size: 40 x 48 px and 42 x 54 px. Each is a rendered room (floor, back
wall, a box on the floor, labelled wall 1, floor 2, box 7 table, a few
pixels unlabeled) seen by a camera with a random tilt; the HHA images are
made from the depth with torchgeo_decur.transforms.depth_to_hha. There is no
Depth folder. Run with the project's virtualenv from anywhere; it rewrites the
folders next to this script.
"""

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from torchgeo_decur.transforms import depth_to_hha

SEED = 1
#: Name and (height, width) of each image.
TRAIN = {
    'img-005051': (40, 48),
    'img-005052': (42, 54),
    'img-005053': (40, 48),
    'img-005054': (40, 48),
}
TEST = {'img-000001': (40, 48), 'img-000002': (42, 54)}
WALL, FLOOR, BOX = 1, 2, 7


def rotation(pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation (world y up; camera x right, y down)."""
    p, r = np.deg2rad(pitch), np.deg2rad(roll)
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rx @ np.diag([1.0, -1.0, 1.0]) @ rz


def render(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """Depth (metres), labels and intrinsics of a room seen from 1.2 m."""
    intrinsics = (0.85 * width, 0.85 * width, (width - 1) / 2, (height - 1) / 2)
    fx, fy, cx, cy = intrinsics
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones(u.shape)], -1)
    rays = rays @ rotation(rng.uniform(15, 30), rng.uniform(-5, 5)).T
    origin = np.array([0.0, 1.2, 0.0])
    depth = np.full(u.shape, np.inf)
    labels = np.zeros(u.shape, np.uint8)
    with np.errstate(divide='ignore', invalid='ignore'):
        for axis, value, label in ((1, 0.0, FLOOR), (2, 3.5, WALL)):
            t = (value - origin[axis]) / rays[..., axis]
            hit = (t > 0) & (t < depth)
            depth[hit], labels[hit] = t[hit], label
        lo = np.array([rng.uniform(-0.8, 0.0), 0.0, 1.8])
        hi = lo + np.array([0.9, 0.7, 0.7])
        t1, t2 = (lo - origin) / rays, (hi - origin) / rays
    near = np.minimum(t1, t2).max(-1)
    far = np.maximum(t1, t2).min(-1)
    hit = (near <= far) & (near > 0) & (near < depth)
    depth[hit], labels[hit] = near[hit], BOX
    depth[~np.isfinite(depth)] = 0
    return depth, labels, intrinsics


def main() -> None:
    root = Path(__file__).resolve().parent
    rng = np.random.default_rng(SEED)
    palette = rng.integers(30, 230, (38, 3))
    for folder in ('RGB', 'HHA', 'Label'):
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir()
    for name, (height, width) in {**TRAIN, **TEST}.items():
        depth, labels, intrinsics = render(rng, height, width)
        labels[rng.random(labels.shape) < 0.03] = 0  # unlabeled pixels
        rgb = palette[labels] + rng.integers(-15, 15, (height, width, 3))
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(root / 'RGB' / f'{name}.jpg', quality=90)
        hha = depth_to_hha(depth, intrinsics).transpose(1, 2, 0)
        Image.fromarray(np.ascontiguousarray(hha)).save(root / 'HHA' / f'{name}.png')
        Image.fromarray(labels).save(root / 'Label' / f'{name}.png')
    for split, names in (('train', TRAIN), ('test', TEST)):
        lines = ''.join(f'RGB/{n}.jpg Label/{n}.png\n' for n in names)
        (root / f'{split}.txt').write_text(lines)


if __name__ == '__main__':
    main()
