"""The benchmark configurations: the sizes of each run and the ratios it measures."""

from dataclasses import dataclass, field

from .common import MID_CLIP_NAME, FeatureTask
from .registry import DEFAULT_RATIOS


@dataclass(frozen=True)
class Config:
    """The sizes of one benchmark configuration."""

    name: str
    models: tuple  # open_clip model names; the first one also gives ratios 2-4
    image_size: tuple  # (width, height) of the synthetic JPEG files
    n_classes: int  # classes of the training images
    shots: int  # training images per class
    templates: object  # prompt templates, or the name of a built-in set
    text_classes: int  # classes whose prompts the text-encoding column encodes
    n_predict: int  # images of the predict column and of ratio 4
    epochs: int  # epochs of every fit (the official recipe: 200 for 16 shots)
    official_epochs: int  # epochs of the measured official loop (ratio 2)
    training: FeatureTask = None  # ratio 1
    comparison: FeatureTask = None  # ratio 5
    learning_rate: float = 2e-3  # of every fit on images
    needs_cuda: bool = False  # real-size models: too slow for a CPU
    notes: tuple = field(default_factory=tuple)
    ratios: tuple = DEFAULT_RATIOS  # which ratios to measure (registry keys)
    breakdown: bool = True  # whether to time the stages of every model
    in_all: bool = True  # part of --config all


CONFIGS = {
    "tiny": Config(
        name="tiny",
        models=("TinyTaskResCLIP",),
        image_size=(64, 48),
        n_classes=4,
        shots=10,
        templates=("a photo of a {}.", "a picture of a {}."),
        text_classes=4,
        n_predict=64,
        epochs=20,
        official_epochs=2,
        training=FeatureTask(n_classes=8, per_class=64, n_features=32, noise=0.5, epochs=20),
        comparison=FeatureTask(n_classes=10, per_class=16, n_features=32, noise=0.5,
                               epochs=20, n_test_per_class=50),
        notes=("a smoke run: the tiny model has 32x32 inputs and 32-d embeddings",),
    ),
    "mid": Config(
        name="mid",
        models=(MID_CLIP_NAME,),
        image_size=(400, 300),
        n_classes=10,
        shots=16,
        templates="imagenet",
        text_classes=10,
        n_predict=160,
        epochs=200,
        official_epochs=2,
        training=FeatureTask(n_classes=100, per_class=40, n_features=512, noise=0.25,
                             epochs=100),
        comparison=FeatureTask(n_classes=100, per_class=16, n_features=512, noise=0.25,
                               n_test_per_class=50),
        notes=(f"{MID_CLIP_NAME}: a random CLIP with 224-pixel inputs, 512-d embeddings "
               "and 4-layer towers of width 256 (real architectures are too slow here)",),
    ),
    "ray": Config(
        name="ray",
        models=(MID_CLIP_NAME,),
        image_size=(400, 300),
        n_classes=10,
        shots=2,
        templates="imagenet",
        text_classes=10,
        n_predict=4000,
        epochs=1,
        official_epochs=0,
        ratios=("predict_dataset_vs_predict", "ray_photos_bytes_vs_read_images"),
        breakdown=False,
        in_all=False,
        notes=("ratio 7: predict_dataset on a local Ray instance (one worker per core) "
               "against predict in this process, on 4,000 JPEG files with the mid model",
               "ratio 9: 96 12-megapixel photo files read with read_binary_files (bytes, "
               "decoded by the workers as predict decodes) against read_images, and local "
               "predict",),
    ),
    "photos": Config(
        name="photos",
        models=("ViT-B-32",),
        image_size=(224, 168),  # the two training images; the photos are 4032x3024
        n_classes=2,
        shots=1,
        templates=("a photo of a {}.",),
        text_classes=2,
        n_predict=0,
        epochs=1,
        official_epochs=0,
        ratios=("photos",),
        breakdown=False,
        in_all=False,
        notes=("ratio 8: 48 synthetic 12-megapixel JPEG photos (q90, EXIF orientations 1, 3, "
               "6 and 8), ViT-B-32 with random weights, cache cold; the former pipeline is "
               "precision='fp32', jpeg_draft=False, exif_orientation=False",),
    ),
    "labelling": Config(
        name="labelling",
        models=("ViT-B-32",),
        image_size=(64, 48),  # unused: the measurement writes its own images
        n_classes=2,
        shots=1,
        templates=("a photo of a {}.",),
        text_classes=2,
        n_predict=0,
        epochs=1,
        official_epochs=0,
        ratios=("labelling",),
        breakdown=False,
        in_all=False,
        notes=("ratio 10: a simulated person labels 400 of the held-out digits of the tiny "
               "digits CLIP (plain, bold, noisy; 3 seeds) through the real page in Chromium "
               "at 0.8 s per label and at machine speed, beside the in-process simulation and "
               "random order; accuracy of the page's model file on the 397 others; latency "
               "in Chromium over 2,000 images of ViT-B-32 with random weights",),
    ),
    "open-set": Config(
        name="open-set",
        models=("TinyDigitsCLIP",),
        image_size=(64, 48),  # unused: the measurement reads the held-out digits
        n_classes=2,
        shots=1,
        templates=("a photo of a {}.",),
        text_classes=2,
        n_predict=0,
        epochs=1,
        official_epochs=0,
        ratios=("open_set",),
        breakdown=False,
        in_all=False,
        notes=("ratio 11: digits 0-4 are the classes, 5-9 the images of none of them; 4 "
               "labels per class and 10 images marked none in one style, the 797 held-out "
               "digits in another as the test set (plain -> bold, bold -> noisy), 10 draws; "
               "MCM, none as one more class, nearest images and score_unknown side by side",),
    ),
    "few-labels": Config(
        name="few-labels",
        models=("TinyTaskResCLIP",),
        image_size=(64, 48),  # unused: the measurement uses the held-out digits
        n_classes=2,
        shots=1,
        templates=("a photo of a {}.",),
        text_classes=2,
        n_predict=0,
        epochs=1,
        official_epochs=0,
        ratios=("few_labels",),
        breakdown=False,
        in_all=False,
        notes=("ratio 12: 1, 2 and 4 labels per class (5 draws) from a pool of 400 held-out "
               "digits of the tiny digits CLIP (plain, bold, noisy), accuracy on 397 others: "
               "zero-shot, every fixed alpha, alpha='auto' and GDA; auto fit time over fixed "
               "fit time (alpha 0.5), features cached, timed side by side",),
    ),
    "grid-cpu": Config(
        name="grid-cpu",
        models=("ViT-B-32",),
        image_size=(400, 300),
        n_classes=10,
        shots=16,
        templates="imagenet",
        text_classes=10,
        n_predict=0,
        epochs=200,
        official_epochs=0,
        ratios=("grid_search_vs_fit",),
        breakdown=False,
        in_all=False,
        notes=("ratio 3 with a real architecture on the CPU: the mid images and recipe, "
               "encoded by a random ViT-B-32 (slow: about a minute per repetition here)",),
    ),
    "real": Config(
        name="real",
        models=("ViT-B-32", "RN50", "ViT-L-14"),
        image_size=(500, 375),
        n_classes=64,
        shots=8,
        templates="imagenet",
        text_classes=1000,
        n_predict=512,
        epochs=200,
        official_epochs=2,
        training=FeatureTask(n_classes=1000, per_class=16, n_features=1024, noise=0.18,
                             epochs=200, learning_rate=2e-4),
        comparison=FeatureTask(n_classes=100, per_class=16, n_features=1024, noise=0.18,
                               n_test_per_class=50),
        needs_cuda=True,
        notes=("ratio 1 at ImageNet-16-shot size with the ImageNet recipe (lr 2e-4)",),
    ),
}
