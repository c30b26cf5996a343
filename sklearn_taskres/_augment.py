"""The official training augmentation, drawn from a seed instead of global state.

TaskRes trains with Dassl's random resized crop (scale 0.08-1, aspect ratio
3/4-4/3, bicubic) and horizontal flip. torchvision's transforms draw from
torch's global generator, which threads would share; here every view draws
from its own generator, so a (seed, image) pair gives the same view on any
thread and leaves the caller's random state alone.
"""

import math

import numpy as np
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF


class TrainAugmentation:
    """Random resized crop + horizontal flip + normalisation, as a function of a seed."""

    def __init__(self, size, mean, std, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = tuple(size) if np.ndim(size) else (int(size), int(size))
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)

    def __repr__(self):
        return (
            f"TrainAugmentation(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
            f"interpolation=bicubic, hflip=0.5, mean={self.mean}, std={self.std})"
        )

    def __call__(self, image, seed):
        """The view of ``image`` (RGB PIL) drawn from ``seed``: a (3, H, W) tensor."""
        rng = np.random.default_rng(seed)
        top, left, height, width = self._crop_box(image.size, rng)
        view = TF.resized_crop(
            image, top, left, height, width, list(self.size),
            interpolation=InterpolationMode.BICUBIC, antialias=True,
        )
        if rng.random() < 0.5:
            view = TF.hflip(view)
        return TF.normalize(TF.to_tensor(view), self.mean, self.std)

    def _crop_box(self, image_size, rng):
        """A box of random area fraction and aspect ratio; ten tries, then a central box."""
        width, height = image_size
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            box_width = round(math.sqrt(target_area * aspect))
            box_height = round(math.sqrt(target_area / aspect))
            if 0 < box_width <= width and 0 < box_height <= height:
                top = int(rng.integers(0, height - box_height + 1))
                left = int(rng.integers(0, width - box_width + 1))
                return top, left, box_height, box_width
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            box_width, box_height = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            box_width, box_height = round(height * self.ratio[1]), height
        else:
            box_width, box_height = width, height
        return (height - box_height) // 2, (width - box_width) // 2, box_height, box_width
