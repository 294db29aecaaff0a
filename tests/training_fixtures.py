"""Small datasets in the real directory layouts (Cityscapes, COCO json) for the training tests."""
import json

import cv2
import numpy as np

from hypood_ros.training.cityscapes import LABEL_TO_TRAIN

TRAIN_TO_LABEL = {v: k for k, v in LABEL_TO_TRAIN.items()}


def scene(seed, h=84, w=168):
    """Road below, sky above, a building block: colours tied to classes so a head can learn them."""
    rng = np.random.default_rng(seed)
    train_ids = np.full((h, w), 10, np.uint8)  # sky
    train_ids[h // 2:] = 0  # road
    x = int(rng.integers(0, w // 2))
    train_ids[h // 4: h // 2, x: x + w // 3] = 2  # building
    train_ids[:3] = 255  # void border, as the ego-vehicle and rectification border are
    colors = {10: (70, 130, 180), 0: (128, 64, 128), 2: (70, 70, 70), 255: (0, 0, 0)}
    rgb = np.zeros((h, w, 3), np.uint8)
    for cls, color in colors.items():
        rgb[train_ids == cls] = color
    rgb = np.clip(rgb.astype(int) + rng.integers(-20, 20, rgb.shape), 0, 255).astype(np.uint8)
    return rgb, train_ids


def make_cityscapes(root, n_train=4, n_val=2, label_ids_for=("val",)):
    """leftImg8bit/{split}/{city}/X_leftImg8bit.png + gtFine/... (labelIds for splits in label_ids_for)."""
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            city = "aachen" if split == "train" else "frankfurt"
            stem = f"{city}_{i:06d}_000019"
            img_dir, gt_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            rgb, train_ids = scene(i + (100 if split == "val" else 0))
            cv2.imwrite(str(img_dir / f"{stem}_leftImg8bit.png"), rgb[:, :, ::-1])
            if split in label_ids_for:
                label_ids = np.zeros_like(train_ids)  # 0 = unlabeled -> ignored
                for train_id, label_id in TRAIN_TO_LABEL.items():
                    label_ids[train_ids == train_id] = label_id
                cv2.imwrite(str(gt_dir / f"{stem}_gtFine_labelIds.png"), label_ids)
            else:
                cv2.imwrite(str(gt_dir / f"{stem}_gtFine_labelTrainIds.png"), train_ids)
    return root


def rle_string(mask):
    """COCO's compact RLE string of a binary mask (column-major runs), written out independently."""
    flat = mask.T.reshape(-1)
    counts, value, run = [], 0, 0
    for v in flat:
        if v != value:
            counts.append(run)
            value, run = v, 0
        run += 1
    counts.append(run)
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def make_coco(root):
    """Two images with a bright disc each: one annotated by polygon, one by compressed RLE."""
    images = root / "val2017"
    images.mkdir(parents=True)
    anns, imgs = [], []
    for i in range(2):
        rgb = np.full((60, 80, 3), 30, np.uint8)
        cv2.circle(rgb, (40, 30), 20, (255, 255, 0), -1)
        cv2.imwrite(str(images / f"{i:012d}.jpg"), rgb[:, :, ::-1])
        mask = np.zeros((60, 80), np.uint8)
        cv2.circle(mask, (40, 30), 20, 1, -1)
        if i == 0:
            angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            seg = [list(np.ravel(np.c_[40 + 20 * np.cos(angles), 30 + 20 * np.sin(angles)]).round(1))]
        else:
            seg = {"size": [60, 80], "counts": rle_string(mask)}
        imgs.append({"id": i + 1, "file_name": f"{i:012d}.jpg", "height": 60, "width": 80})
        anns.append({"id": 10 + i, "image_id": i + 1, "category_id": 88, "segmentation": seg, "area": 1256.0,
                     "bbox": [20.0, 10.0, 41.0, 41.0], "iscrowd": 0})
    ann_file = root / "instances_val2017.json"
    ann_file.write_text(json.dumps({"images": imgs, "annotations": anns,
                                    "categories": [{"id": 88, "name": "teddy bear"}]}))
    return images, ann_file
