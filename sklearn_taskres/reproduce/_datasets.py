"""Reading the few-shot benchmark datasets laid out as CoOp's DATASETS.md describes.

A dataset root holds one folder per dataset. Nine of the eleven datasets come
with a fixed split file ``split_zhou_<Name>.json`` whose ``"train"``, ``"val"``
and ``"test"`` lists hold ``[image path relative to the image folder, label,
class name]``. ImageNet is read from its class folders (``images/train`` and
``images/val``, the latter used as the test set) with ``classnames.txt``;
FGVC-Aircraft from the list files of its original release. The four ImageNet
variants are test sets only, labelled by ImageNet's class folders (wnids).
"""

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: key -> (folder under the root, image folder inside it, split file inside it).
SPLIT_FILE_DATASETS = {
    "caltech101": ("caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json"),
    "oxford_pets": ("oxford_pets", "images", "split_zhou_OxfordPets.json"),
    "stanford_cars": ("stanford_cars", "", "split_zhou_StanfordCars.json"),
    "oxford_flowers": ("oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json"),
    "food101": ("food-101", "images", "split_zhou_Food101.json"),
    "sun397": ("sun397", "SUN397", "split_zhou_SUN397.json"),
    "dtd": ("dtd", "images", "split_zhou_DescribableTextures.json"),
    "eurosat": ("eurosat", "2750", "split_zhou_EuroSAT.json"),
    "ucf101": ("ucf101", "UCF-101-midframes", "split_zhou_UCF101.json"),
}

#: key -> (folder under the root, folder of the class folders inside it).
IMAGENET_VARIANTS = {
    "imagenet_v2": ("imagenetv2", "imagenetv2-matched-frequency-format-val"),
    "imagenet_sketch": ("imagenet-sketch", "images"),
    "imagenet_a": ("imagenet-adversarial", "imagenet-a"),
    "imagenet_r": ("imagenet-rendition", "imagenet-r"),
}

#: The eleven datasets of the few-shot benchmark, in the order of the papers' tables.
FEW_SHOT_DATASETS = (
    "imagenet",
    "caltech101",
    "oxford_pets",
    "stanford_cars",
    "oxford_flowers",
    "food101",
    "fgvc_aircraft",
    "sun397",
    "dtd",
    "eurosat",
    "ucf101",
)
DISTRIBUTION_SHIFT_DATASETS = tuple(IMAGENET_VARIANTS)
ALL_DATASETS = FEW_SHOT_DATASETS + DISTRIBUTION_SHIFT_DATASETS

_DATASETS_MD = "https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md"


class DatasetLayoutError(ValueError):
    """A dataset's files exist but are not what its layout expects (or cannot be decoded)."""


@dataclass
class Split:
    """Images of one split: paths relative to the dataset folder, and their labels."""

    paths: list
    labels: np.ndarray

    def __len__(self):
        return len(self.paths)


@dataclass
class CoopDataset:
    """One dataset of the benchmark, read from disk.

    ``classes`` are the labels in the order of the classifier's rows (ints for
    the split-file datasets and FGVC-Aircraft, wnids for the ImageNet family)
    and ``classnames[k]`` is the text name of ``classes[k]``. ``splits`` maps
    ``"train"``, ``"val"`` and ``"test"`` to a :class:`Split`; ImageNet has no
    ``"val"`` and the ImageNet variants only have ``"test"``.
    """

    key: str
    directory: Path
    classes: np.ndarray
    classnames: list
    splits: dict = field(default_factory=dict)


def load_dataset(root, key):
    """Read the dataset ``key`` (one of ``ALL_DATASETS``) from the root ``root``."""
    root = Path(root).expanduser()
    if key in SPLIT_FILE_DATASETS:
        return _read_split_file_dataset(root, key, *SPLIT_FILE_DATASETS[key])
    if key == "imagenet":
        return _read_imagenet(root)
    if key == "fgvc_aircraft":
        return _read_fgvc_aircraft(root)
    if key in IMAGENET_VARIANTS:
        return _read_imagenet_variant(root, key, *IMAGENET_VARIANTS[key])
    raise ValueError(
        f"expected a dataset key among {', '.join(ALL_DATASETS)}; got {key!r}"
    )


def base_and_new_classes(labels):
    """Split the classes into base and new halves, as CoOp's ``subsample_classes``.

    The distinct labels are sorted; the first ``ceil(n / 2)`` are the base
    classes, the others the new ones (CoOp then relabels each half from 0,
    which changes nothing to what is predicted). CoOp takes the labels of the
    few-shot training set, which holds every class of the train split.

    Returns ``(base, new)``, two sorted arrays of labels.
    """
    classes = np.unique(np.asarray(labels))
    split = math.ceil(len(classes) / 2)
    return classes[:split], classes[split:]


def _require(path, what):
    if not path.exists():
        raise FileNotFoundError(
            f"expected {what} at {path}; it does not exist. Lay the dataset out as "
            f"CoOp's DATASETS.md describes ({_DATASETS_MD})"
        )
    return path


def _read_split_file_dataset(root, key, folder, image_folder, split_name):
    directory = _require(root / folder, f"the {key} folder")
    split_path = _require(directory / split_name, f"the {key} split file")
    try:
        content = json.loads(split_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetLayoutError(
            f"expected {split_path} to be a JSON split file; got unreadable content: {exc}"
        ) from exc
    if not isinstance(content, dict) or not {"train", "val", "test"} <= content.keys():
        got = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise DatasetLayoutError(
            f"expected {split_path} to hold a mapping with 'train', 'val' and 'test' "
            f"lists; got {got}"
        )
    names_of_label = {}
    splits = {}
    for split in ("train", "val", "test"):
        paths, labels = [], []
        for position, entry in enumerate(content[split]):
            if not (isinstance(entry, (list, tuple)) and len(entry) == 3):
                raise DatasetLayoutError(
                    f"{split_path} {split}[{position}]: expected [image path, label, class "
                    f"name]; got {entry!r}"
                )
            image, label, classname = entry
            label = int(label)
            known = names_of_label.setdefault(label, classname)
            if known != classname:
                raise DatasetLayoutError(
                    f"{split_path} {split}[{position}]: expected label {label} to be named "
                    f"{known!r} as elsewhere in the file; got {classname!r}"
                )
            paths.append(f"{image_folder}/{image}" if image_folder else image)
            labels.append(label)
        splits[split] = Split(paths, np.asarray(labels, dtype=np.int64))
    classes = np.asarray(sorted(names_of_label), dtype=np.int64)
    classnames = [names_of_label[label] for label in classes.tolist()]
    return CoopDataset(key, directory, classes, classnames, splits)


def _read_lines(path):
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_classnames(path):
    """``classnames.txt`` of the ImageNet family: ``{wnid: class name}`` in file order."""
    names = {}
    for line in _read_lines(_require(path, "the ImageNet class names file classnames.txt")):
        wnid, _, name = line.partition(" ")
        if not name.strip():
            raise DatasetLayoutError(
                f"{path}: expected lines of the form '<wnid> <class name>'; got {line!r}"
            )
        names[wnid] = name.strip()
    return names


def _entries(directory, want_dirs):
    # os.scandir knows file types without a stat per entry: ImageNet's
    # training set has 1.28 million files.
    with os.scandir(directory) as entries:
        return sorted(
            entry.name for entry in entries
            if not entry.name.startswith(".")
            and (entry.is_dir() if want_dirs else entry.is_file())
        )


def _class_folders(directory):
    return _entries(directory, want_dirs=True)


def _images_in_folders(directory, folders, labels, prefix):
    paths, image_labels = [], []
    for folder, label in zip(folders, labels, strict=True):
        names = _entries(directory / folder, want_dirs=False)
        paths.extend(f"{prefix}/{folder}/{name}" for name in names)
        image_labels.extend([label] * len(names))
    return Split(paths, np.asarray(image_labels))


def _names_for(wnids, names, where):
    missing = [wnid for wnid in wnids if wnid not in names]
    if missing:
        raise DatasetLayoutError(
            f"expected every class folder of {where} to be listed in classnames.txt; got "
            f"unlisted folder(s) {', '.join(missing[:5])}"
        )
    return [names[wnid] for wnid in wnids]


def _read_imagenet(root):
    directory = _require(root / "imagenet", "the imagenet folder")
    names = read_classnames(directory / "classnames.txt")
    train_dir = _require(directory / "images" / "train", "the ImageNet training images")
    # As in CoOp, ImageNet's validation set is the test set.
    test_dir = _require(directory / "images" / "val", "the ImageNet validation images")
    classes = _class_folders(train_dir)
    classnames = _names_for(classes, names, train_dir)
    test_classes = _class_folders(test_dir)
    unknown = sorted(set(test_classes) - set(classes))
    if unknown:
        raise DatasetLayoutError(
            f"expected the class folders of {test_dir} to be among those of {train_dir}; "
            f"got extra folder(s) {', '.join(unknown[:5])}"
        )
    splits = {
        "train": _images_in_folders(train_dir, classes, classes, "images/train"),
        "test": _images_in_folders(test_dir, test_classes, test_classes, "images/val"),
    }
    return CoopDataset("imagenet", directory, np.asarray(classes), classnames, splits)


def _read_imagenet_variant(root, key, folder, image_folder):
    directory = _require(root / folder, f"the {key} folder")
    names = read_classnames(directory / "classnames.txt")
    images = _require(directory / image_folder, f"the {key} images")
    folders = _class_folders(images)
    if key == "imagenet_v2":
        # ImageNetV2 names its class folders 0..999, the position of the class
        # in ImageNet's (and classnames.txt's) order.
        all_wnids = list(names)
        try:
            wnids = [all_wnids[int(name)] for name in folders]
        except (ValueError, IndexError):
            raise DatasetLayoutError(
                f"expected the class folders of {images} to be named 0..{len(all_wnids) - 1}; "
                f"got {', '.join(folders[:5])}"
            ) from None
    else:
        wnids = folders
    classnames = _names_for(wnids, names, images)
    order = np.argsort(wnids)
    test = _images_in_folders(images, folders, wnids, image_folder)
    classes = np.asarray(wnids)[order]
    return CoopDataset(key, directory, classes, [classnames[i] for i in order], {"test": test})


def _read_fgvc_aircraft(root):
    directory = _require(root / "fgvc_aircraft", "the fgvc_aircraft folder")
    # DATASETS.md renames the archive's data/ folder to fgvc_aircraft/; accept
    # the unrenamed data/ inside it too.
    unrenamed = directory / "data"
    if not (directory / "variants.txt").exists() and (unrenamed / "variants.txt").exists():
        directory = unrenamed
    classnames = _read_lines(_require(directory / "variants.txt", "the FGVC-Aircraft variants"))
    label_of = {name: label for label, name in enumerate(classnames)}
    splits = {}
    for split in ("train", "val", "test"):
        list_path = _require(
            directory / f"images_variant_{split}.txt", f"the FGVC-Aircraft {split} list"
        )
        paths, labels = [], []
        for line in _read_lines(list_path):
            image_id, _, variant = line.partition(" ")
            if variant not in label_of:
                raise DatasetLayoutError(
                    f"{list_path}: expected '<image id> <variant>' with a variant listed in "
                    f"variants.txt; got {line!r}"
                )
            paths.append(f"images/{image_id}.jpg")
            labels.append(label_of[variant])
        splits[split] = Split(paths, np.asarray(labels, dtype=np.int64))
    classes = np.arange(len(classnames))
    return CoopDataset("fgvc_aircraft", directory, classes, classnames, splits)
