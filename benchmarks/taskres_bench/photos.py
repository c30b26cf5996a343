"""Ratio 8: a folder of 12-megapixel phone photos, the new defaults against the former pipeline.

The former pipeline decodes every JPEG at full size, ignores EXIF orientation
and encodes in fp32; the defaults decode at reduced DCT scale, apply the
orientation and encode at ``precision="auto"`` (bf16 weights where the chip
has bf16 units). Printed: decode milliseconds per image on one core, encoder
images/s on decoded pixels, ``predict`` images/s (cache cold), the limit of
the pipeline that these two stage rates allow (decoding on every decoding
thread, then encoding, with no core idle) and the fraction of it that
``predict`` reaches, the smallest feature cosine between the two pipelines on
the upright photos, and what the CPU offers.
"""

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sklearn_taskres import _clip as clip_adapter
from sklearn_taskres import clear_feature_cache, config_context
from sklearn_taskres._features import DECODE_WORKERS, decoding_for, image_features
from sklearn_taskres._heap import kept_heap
from sklearn_taskres._images import Decoding, _describe, forget_file_digests, image_sources

from .common import classifier, encode_in_batches, mark, paired_ratio, ratio_entry, side_by_side

N_PHOTOS = 48
PHOTO_SIZE = (4032, 3024)  # a 12-megapixel phone camera, landscape
# The orientation tag of every photo, in turn: half upright, the others stored
# as a phone held sideways or upside down stores them.
ORIENTATIONS = (1, 6, 1, 3, 1, 8)
_STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
           8: Image.Transpose.ROTATE_270}
FORMER = {"jpeg_draft": False, "exif_orientation": False}
#: predict with the defaults against the pipeline's limit, computed from the stage rates.
PIPELINE_TARGET = 0.9


def write_photos(directory, n_photos=N_PHOTOS, size=PHOTO_SIZE, seed=0):
    """Write ``n_photos`` distinct JPEG files of ``size`` (q90, about 3 MB each).

    Smooth colour fields plus sensor-like grain, each tagged with an EXIF
    orientation from :data:`ORIENTATIONS` and stored the way the camera
    stores it. Returns their paths and orientations.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    width, height = size
    paths, orientations = [], []
    for index in range(n_photos):
        coarse = rng.randint(0, 256, (6, 8, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
        grain = rng.randint(-12, 13, smooth.shape, dtype=np.int16)
        photo = Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))
        orientation = ORIENTATIONS[index % len(ORIENTATIONS)]
        if orientation in _STORED:
            photo = photo.transpose(_STORED[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = directory / f"IMG_{index:04d}.jpg"
        photo.save(path, quality=90, exif=exif)
        paths.append(str(path))
        orientations.append(orientation)
    return paths, orientations


def cpu_features():
    """The CPU's bf16 flags as /proc/cpuinfo lists them, and torch's probe."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {
        "amx_bf16": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "native_bf16": clip_adapter.native_bf16(torch.device("cpu")),
    }


def ratio(config, model, data, repeats, device):
    """Ratio 8: predict on the photos with the new defaults against the former pipeline."""
    with tempfile.TemporaryDirectory(prefix="taskres_photos_") as directory:
        paths, orientations = write_photos(Path(directory))
        return _measure(config, model, data, repeats, device, paths, orientations)


def _measure(config, model, data, repeats, device, paths, orientations):
    torch_device = torch.device(device)
    auto = clip_adapter.resolve_precision("auto", torch_device)
    encoders = {"fp32": clip_adapter.load_encoder(model, None, torch_device, "fp32"),
                "auto": clip_adapter.load_encoder(model, None, torch_device, auto)}
    new_decoding = decoding_for(encoders["auto"], {"jpeg_draft": True, "exif_orientation": True})
    sources = image_sources(paths)

    # The stages run as predict runs them: decoding and encoding with the C heap kept
    # from one image or batch to the next (sklearn_taskres._heap), hashing before.
    def preprocessed(source, decoding=new_decoding):
        return encoders["fp32"].preprocess(source.load(decoding))

    def decode(decoding):
        with kept_heap():
            return [preprocessed(source, decoding) for source in sources]

    def encode(encoder):
        with kept_heap():
            return encode_in_batches(encoder, pixels)

    def read_and_hash():  # what a cold cache costs before decoding: the content keys
        forget_file_digests()
        return [_describe(index, path) for index, path in enumerate(paths)]

    # The same two stages on every decoding thread at once, as predict runs them:
    # threads that share a machine's caches and memory run slower than one alone.
    def decode_on_every_thread():
        with kept_heap(), ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
            return list(pool.map(preprocessed, sources))

    def read_and_hash_on_every_thread():
        forget_file_digests()
        return image_sources(paths)

    fitted = {
        "new": classifier(config, model, data, device, max_iter=1).fit(
            data.fit_paths, data.fit_labels),
        "former": classifier(config, model, data, device, max_iter=1).set_params(
            precision="fp32").fit(data.fit_paths, data.fit_labels),
    }

    def predict_new():
        clear_feature_cache()
        return fitted["new"].predict(paths)

    def predict_former():
        clear_feature_cache()
        with config_context(**FORMER):
            return fitted["former"].predict(paths)

    # Warm-up, untimed: every batch shape of both encoders, and one predict of each
    # pipeline (thread pools, the allocator's first large blocks).
    pixels = decode(new_decoding)
    for encoder in encoders.values():
        encode(encoder)
    predict_new()
    predict_former()
    # Every stage and both predicts in every repetition, interleaved, so that the
    # limit of a repetition and the predict it is compared with are measured minutes
    # apart at most: a shared machine's speed drifts more than that between phases.
    stages = {
        "decode full": lambda: decode(Decoding()),
        "decode draft": lambda: decode(new_decoding),
        "read and hash": read_and_hash,
        "decode draft, every thread": decode_on_every_thread,
        "read and hash, every thread": read_and_hash_on_every_thread,
        **{f"encode {name}": (lambda e=encoder: encode(e))
           for name, encoder in encoders.items()},
        "predict new": predict_new,
        "predict former": predict_former,
    }
    seconds, _ = side_by_side(stages, repeats, device)
    decode_seconds = {"full": seconds["decode full"], "draft": seconds["decode draft"],
                      "read and hash": seconds["read and hash"]}
    encode_seconds = {name: seconds[f"encode {name}"] for name in encoders}
    predict_seconds = {"new": seconds["predict new"], "former": seconds["predict former"]}
    upright = [path for path, turn in zip(paths, orientations, strict=True) if turn == 1]
    clear_feature_cache()
    new = image_features(encoders["auto"], upright,
                         decoding={"jpeg_draft": True, "exif_orientation": True})
    former = image_features(encoders["fp32"], upright, decoding=FORMER)
    cosines = (new * former).sum(1) / np.linalg.norm(new, axis=1) / np.linalg.norm(former, axis=1)
    cpu = cpu_features()
    native = auto == "bf16"
    target = (">=", 3.0) if native else (">=", 1.8)
    n = len(paths)
    # The pipeline's limit: every decoding thread busy decoding and torch's
    # threads busy encoding, never idle and never competing for a core, from the
    # stage times of each repetition; the fraction is the median over repetitions.
    # The first limit counts the two stages of the pipeline; the second adds reading
    # and hashing every file, which a cold cache costs too (on the same threads).
    def limit_of(repeat, with_keys=False):
        decode = decode_seconds["draft"][repeat]
        if with_keys:
            decode += decode_seconds["read and hash"][repeat]
        return n / (decode / DECODE_WORKERS + encode_seconds["auto"][repeat])

    def concurrent_limit_of(repeat):
        return n / (seconds["read and hash, every thread"][repeat]
                    + seconds["decode draft, every thread"][repeat]
                    + encode_seconds["auto"][repeat])

    repetitions = range(len(predict_seconds["new"]))
    limits = [limit_of(r) for r in repetitions]
    limits_with_keys = [limit_of(r, with_keys=True) for r in repetitions]
    predict_rates = [n / predict_seconds["new"][r] for r in repetitions]
    concurrent_limits = [concurrent_limit_of(r) for r in repetitions]

    def fractions(limits):  # of each repetition's limit that its predict reaches
        return [rate / lim for rate, lim in zip(predict_rates, limits, strict=True)]
    limit = float(np.median(limits))
    limit_with_keys = float(np.median(limits_with_keys))
    hash_seconds_per_image = float(np.median(decode_seconds["read and hash"])) / n
    return ratio_entry(
        paired_ratio(predict_seconds["former"], predict_seconds["new"]),
        "speed-up: predict images/s with the defaults / with the former pipeline (fp32, "
        "full-size decoding, no EXIF orientation), cache cold",
        target,
        predict_seconds,
        model=model,
        n_photos=n,
        photo_size=list(PHOTO_SIZE),
        orientations=sorted(set(orientations)),
        auto_precision=auto,
        cpu=cpu,
        decode_ms_per_image={name: 1000 * float(np.median(values)) / n
                             for name, values in decode_seconds.items()
                             if name != "read and hash"},
        read_and_hash_ms_per_image=1000 * hash_seconds_per_image,
        decode_ratio=paired_ratio(decode_seconds["full"], decode_seconds["draft"]),
        encode_images_per_second={name: n / float(np.median(values))
                                  for name, values in encode_seconds.items()},
        encode_ratio=paired_ratio(encode_seconds["fp32"], encode_seconds["auto"]),
        encode_target=">= 3.5" if native else None,
        predict_images_per_second={name: n / float(np.median(values))
                                   for name, values in predict_seconds.items()},
        min_upright_cosine=float(cosines.min()),
        n_upright=len(upright),
        decode_workers=DECODE_WORKERS,
        torch_threads=torch.get_num_threads(),
        pipeline_limit_images_per_second=limit,
        pipeline_fraction=float(np.median(fractions(limits))),
        pipeline_fractions=fractions(limits),
        pipeline_limit_with_keys_images_per_second=limit_with_keys,
        pipeline_fraction_with_keys=float(np.median(fractions(limits_with_keys))),
        pipeline_target=PIPELINE_TARGET,
        concurrent_limit_images_per_second=float(np.median(concurrent_limits)),
        concurrent_fraction=float(np.median(fractions(concurrent_limits))),
        concurrent_ms_per_image={
            "decode draft": 1000 * float(np.median(seconds["decode draft, every thread"])) / n,
            "read and hash": 1000 * float(np.median(seconds["read and hash, every thread"])) / n,
        },
    )


def lines(entry, times):
    """The printed lines of ratio 8."""
    decode, encode = entry["decode_ms_per_image"], entry["encode_images_per_second"]
    predict, cpu = entry["predict_images_per_second"], entry["cpu"]
    encode_mark = "(no target: auto is fp32 on this CPU)"
    if entry["encode_target"]:
        met = entry["encode_ratio"] >= float(entry["encode_target"].split()[1])
        encode_mark = f"target {entry['encode_target']}: {'PASS' if met else 'MISS'}"
    width, height = entry["photo_size"]
    return [
        f" on {entry['n_photos']} photos of {width}x{height} ({entry['model']}, EXIF "
        f"orientations {entry['orientations']}): predict {predict['new']:.1f} img/s with the "
        f"defaults vs {predict['former']:.1f} img/s before: {entry['ratio']:.2f}x  "
        f"{mark(entry)}",
        f"    decode + preprocess on one core: {decode['full']:.0f} ms/image in full, "
        f"{decode['draft']:.0f} ms as a draft: {entry['decode_ratio']:.2f}x",
        f"    encoder on decoded pixels: fp32 {encode['fp32']:.1f} img/s, auto "
        f"({entry['auto_precision']}) {encode['auto']:.1f} img/s: {entry['encode_ratio']:.2f}x  "
        f"{encode_mark}",
        f"    pipeline limit {entry['pipeline_limit_images_per_second']:.1f} img/s (draft "
        f"decoding on {entry['decode_workers']} thread(s), then the {entry['auto_precision']} "
        f"encoder): predict reaches {entry['pipeline_fraction']:.2f} of it  target >= "
        f"{entry['pipeline_target']}: "
        f"{'PASS' if entry['pipeline_fraction'] >= entry['pipeline_target'] else 'MISS'}",
        f"    with reading and hashing every file ({entry['read_and_hash_ms_per_image']:.1f} "
        f"ms/image on one core, the content keys of a cold cache): limit "
        f"{entry['pipeline_limit_with_keys_images_per_second']:.1f} img/s, predict reaches "
        f"{entry['pipeline_fraction_with_keys']:.2f} of it",
        f"    measured at predict's concurrency ({entry['decode_workers']} threads reading and "
        f"hashing {entry['concurrent_ms_per_image']['read and hash']:.1f} ms/image, then "
        f"decoding {entry['concurrent_ms_per_image']['decode draft']:.0f} ms/image, then the "
        f"encoder): limit {entry['concurrent_limit_images_per_second']:.1f} img/s, predict "
        f"reaches {entry['concurrent_fraction']:.2f} of it",
        f"    features of the {entry['n_upright']} upright photos, defaults vs before: "
        f"cosine >= {entry['min_upright_cosine']:.5f}",
        f"    CPU: amx_bf16 {'yes' if cpu['amx_bf16'] else 'no'}, avx512_bf16 "
        f"{'yes' if cpu['avx512_bf16'] else 'no'}; torch sees native bf16: "
        f"{'yes' if cpu['native_bf16'] else 'no'}",
    ]
