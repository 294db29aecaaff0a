"""Cityscapes in its directory layout: leftImg8bit/{split}/{city}/X_leftImg8bit.png and
gtFine/{split}/{city}/X_gtFine_labelTrainIds.png (or X_gtFine_labelIds.png, converted on the fly)."""
from __future__ import annotations

import random
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from hypood_ros.errors import HypoodError
from hypood_ros.preprocess import IMAGENET_MEAN, IMAGENET_STD

IGNORE = 255
# Official Cityscapes labelId -> trainId (19 classes); every other id is ignored.
LABEL_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                  26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
_LUT = np.full(256, IGNORE, np.uint8)
for _src, _dst in LABEL_TO_TRAIN.items():
    _LUT[_src] = _dst


def read_label(path: Path) -> np.ndarray:
    import cv2

    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2:
        raise HypoodError(f"{path}: not a single-channel label image")
    if path.name.endswith("_labelIds.png"):
        return _LUT[label]
    bad = np.setdiff1d(np.unique(label), np.r_[np.arange(19), IGNORE])
    if bad.size:
        raise HypoodError(f"{path}: train ids {bad.tolist()} out of range (0-18 or 255)")
    return label


def find_pairs(root: Path, split: str) -> List[Tuple[Path, Path]]:
    images = root / "leftImg8bit" / split
    if not images.is_dir():
        raise HypoodError(f"Cityscapes images not found: {images}")
    pairs = []
    for image in sorted(images.glob("*/*_leftImg8bit.png")):
        stem = image.name[: -len("_leftImg8bit.png")]
        folder = root / "gtFine" / split / image.parent.name
        train_ids = folder / f"{stem}_gtFine_labelTrainIds.png"
        label = train_ids if train_ids.is_file() else folder / f"{stem}_gtFine_labelIds.png"
        if not label.is_file():
            raise HypoodError(f"no label for {image} (looked for {train_ids.name} and {label.name})")
        pairs.append((image, label))
    if not pairs:
        raise HypoodError(f"no *_leftImg8bit.png images under {images}")
    return pairs


def normalize(rgb: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
    return (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


def augment(rgb: np.ndarray, label: np.ndarray, crop: Sequence[int], scale: Sequence[float], flip: bool,
            rng: random.Random) -> Tuple[np.ndarray, np.ndarray]:
    """Random scale, random crop (padded with ignore where the image is smaller) and horizontal flip."""
    import cv2

    s = rng.uniform(*scale)
    h, w = max(1, int(round(rgb.shape[0] * s))), max(1, int(round(rgb.shape[1] * s)))
    rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    ch, cw = crop
    pad_h, pad_w = max(0, ch - h), max(0, cw - w)
    if pad_h or pad_w:
        rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)))
        label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=IGNORE)
    y = rng.randint(0, rgb.shape[0] - ch)
    x = rng.randint(0, rgb.shape[1] - cw)
    rgb, label = rgb[y: y + ch, x: x + cw], label[y: y + ch, x: x + cw]
    if flip and rng.random() < 0.5:
        rgb, label = rgb[:, ::-1], label[:, ::-1]
    return np.ascontiguousarray(rgb), np.ascontiguousarray(label)


class CityscapesTrain(torch.utils.data.Dataset):
    def __init__(self, root, crop, scale, flip, seed: int = 0, mixer=None) -> None:
        self.pairs = find_pairs(Path(root), "train")
        self.crop, self.scale, self.flip, self.seed, self.mixer = crop, scale, flip, seed, mixer
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        from hypood_ros.images import read_image

        rng = random.Random(hash((self.seed, self.epoch, index)))
        image, label_path = self.pairs[index]
        rgb, label = augment(read_image(image), read_label(label_path), self.crop, self.scale, self.flip, rng)
        if self.mixer is not None:
            rgb, label = self.mixer(rgb, label, rng)
        return normalize(rgb), torch.from_numpy(label.astype(np.int64))


def val_pairs(root, limit: Optional[int] = None) -> List[Tuple[Path, Path]]:
    pairs = find_pairs(Path(root), "val")
    return pairs[:limit] if limit else pairs
