"""Image inputs: validation, content digests and decoding to RGB.

An image is a PIL image (any mode), a path to an image file (str or
``os.PathLike``), the bytes of an encoded image file (``bytes``,
``bytearray`` or ``memoryview``: what object storage, archives, databases and
``ray.data.read_binary_files`` give), or a uint8 array of shape (H, W),
(H, W, 1), (H, W, 3) or (H, W, 4). Every error names the index of the culprit.

A sequence of images may be a pandas DataFrame: its one column of
images, or the column named by ``image_column`` (:func:`image_column_of`); a
column's name is never an image. A string that names no file and is base64
(how JSON carries binary data, MLflow's model server included) of an image
file is that file's bytes (:func:`base64_image`).

Decoding follows :class:`Decoding`: the EXIF orientation of files and PIL
images applied, and JPEG files decoded at reduced DCT scale when they are
large enough (the ``exif_orientation`` and ``jpeg_draft`` settings).
HEIC/HEIF files decode when pillow-heif is installed. Encoded bytes are a
file without a name: they decode as that file does and share its digest,
hence its cached features.
"""

import base64
import binascii
import errno
import functools
import hashlib
import io
import os
import re
import stat
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

_ARRAY_CHANNELS = (1, 3, 4)
_ORIENTATION_TAG = 0x0112  # EXIF "Orientation": 1 is upright, 2-8 flips and rotations
HEIF_SUFFIXES = (".heic", ".heif")
# JPEG, and MPO (a JPEG with a preview, as many phone cameras write): libjpeg
# decodes them at reduced scale.
DRAFT_FORMATS = ("JPEG", "MPO")
HEIF_EXTRA = 'pip install "sklearn-taskres[heif]"'
#: Threads that read, hash and decode images (file I/O, hashlib, PIL and torch release the GIL).
DECODE_WORKERS = min(8, os.cpu_count() or 1)
# The brands of an ISO base media file ("....ftyp<brand>") that HEIC/HEIF files start with.
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
# What Pillow raises on a file it cannot read: a damaged file is any of these.
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                  Image.DecompressionBombError)


@functools.cache
def register_heif():
    """Register pillow-heif's HEIC/HEIF opener with Pillow, once per process; whether it could."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


_COMMON_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def image_suffixes():
    """The file suffixes a folder scan takes as images (lower case), as a frozenset.

    The common formats; AVIF where the installed Pillow reads it; HEIC/HEIF
    where pillow-heif is installed (the ``heif`` extra).
    """
    suffixes = set(_COMMON_SUFFIXES)
    if ".avif" in Image.registered_extensions():
        suffixes.add(".avif")
    if register_heif():
        suffixes.update(HEIF_SUFFIXES)
    return frozenset(suffixes)


@dataclass(frozen=True)
class Decoding:
    """How files and PIL images are decoded.

    Parameters
    ----------
    exif_orientation : bool
        Apply the EXIF orientation of files and PIL images.
    draft_size : int or None
        Decode JPEG files at the smallest DCT scale (1/2, 1/4, 1/8) that keeps
        both sides at least this large; None decodes at full size.
    """

    exif_orientation: bool = False
    draft_size: int = None

    def tags(self, image_format, size, orientation):
        """What decoding changes in an image of this format, size and EXIF orientation.

        The part of its feature-cache key: nothing when it decodes as a plain
        decode would, so those features are shared whatever the settings.
        """
        tags = []
        if self.exif_orientation and orientation != 1:
            tags.append(f"exif{orientation}")
        if self.draft_size and image_format in DRAFT_FORMATS and min(
                side // self.draft_size for side in size) >= 2:
            tags.append(f"draft{self.draft_size}")  # libjpeg can scale it down by 2 or more
        return tuple(tags)


class ImageSource:
    """One input image: its kind, a digest of its content, and a way to decode it.

    ``kind`` is "pil", "path", "bytes" (an encoded file's content, held as
    ``item``) or "array". A path and the bytes of its file have the same
    digest and header, hence the same key.
    """

    __slots__ = ("index", "kind", "item", "digest", "header")

    def __init__(self, index, kind, item, digest, header=None):
        self.index = index
        self.kind = kind
        self.item = item
        self.digest = digest
        self.header = header  # a file's (format, size, EXIF orientation), None if unreadable

    def key(self, decoding):
        """The part of a feature-cache key that says what this image decodes to."""
        if self.kind == "array":
            return (self.digest,)
        if self.kind == "pil":  # decoded already: only the orientation can apply
            return (self.digest, *decoding.tags(None, self.item.size, _orientation(self.item)))
        if self.header is None:  # it will not decode: the error comes at load
            return (self.digest,)
        return (self.digest, *decoding.tags(*self.header))

    def load(self, decoding=Decoding()):
        """The image as an RGB PIL image, decoded as ``decoding`` says."""
        if self.kind in ("path", "bytes"):
            try:
                return self._load_file(decoding)
            except _DECODE_ERRORS as exc:
                raise ValueError(f"X[{self.index}]: {self._cannot_decode(exc)}") from exc
        if self.kind == "array":
            array = self.item
            if array.ndim == 3 and array.shape[2] == 1:
                array = array[:, :, 0]
            return _to_rgb(Image.fromarray(np.ascontiguousarray(array)))
        self._check_still(self.item)
        image = self.item
        if decoding.exif_orientation and _orientation(image) != 1:
            image = ImageOps.exif_transpose(image)
        return _to_rgb(image)

    def _load_file(self, decoding):
        register_heif()
        file = self.item if self.kind == "path" else io.BytesIO(self.item)
        with Image.open(file) as image:
            self._check_still(image)
            if decoding.draft_size and image.format in DRAFT_FORMATS:
                image.draft(None, (decoding.draft_size, decoding.draft_size))
            image.load()
            if 0 in image.size:
                raise ValueError(f"the image has size {image.size}")
            if decoding.exif_orientation and _orientation(image) != 1:
                return _to_rgb(ImageOps.exif_transpose(image))
            return _to_rgb(image)

    def _cannot_decode(self, exc):
        """Why a file or a byte string did not decode: what it is, Pillow's reason, a hint."""
        if self.kind == "path":
            what = f"the image file {str(self.item)!r}"
            heif = Path(self.item).suffix.lower() in HEIF_SUFFIXES
        else:
            what = f"the image bytes ({len(self.item)} bytes, starting {self.item[:12]!r})"
            heif = self.item[4:8] == b"ftyp" and self.item[8:12] in _HEIF_BRANDS
        hint = ""
        if heif and not register_heif():
            hint = f" (HEIC/HEIF files need pillow-heif: {HEIF_EXTRA})"
        return f"cannot decode {what}: {exc}{hint}"

    def _check_still(self, image):
        n_frames = getattr(image, "n_frames", 1)
        # An MPO file (many phone cameras' JPEG) holds the photo and a preview or
        # depth map: its first frame is the photo.
        if n_frames > 1 and image.format != "MPO":
            warnings.warn(
                f"X[{self.index}]: an animated image with {n_frames} frames; "
                "using its current (first) frame",
                UserWarning,
                stacklevel=4,
            )


def _orientation(image):
    """The EXIF orientation of a PIL image (1, upright, when it has none or a bad one)."""
    try:
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 (a malformed EXIF block: take the pixels as they are)
        return 1
    return orientation if orientation in range(2, 9) else 1


def _to_rgb(image):
    image = _to_8_bit(image)
    if image.mode == "RGB":
        return image.copy() if image.readonly else image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Composite on white rather than dropping alpha, whose hidden pixels
        # are often black or garbage.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_8_bit(image):
    """Map high bit-depth grayscale ("I;16", "I", "F") to 8 bits by its value range.

    PIL's own conversion clips these modes at 255, which turns most 16-bit
    images white.
    """
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        scale = 65535.0
    elif image.mode == "F" and values.size and values.min() >= 0 and values.max() <= 1:
        scale = 1.0
    elif values.size and values.min() >= 0 and values.max() <= 255:
        scale = 255.0
    elif values.size and values.min() >= 0 and values.max() <= 65535:
        scale = 65535.0
    else:  # an arbitrary range: stretch it
        values = values - values.min()
        scale = max(values.max(), 1e-12)
    pixels = np.clip(np.rint(values * (255.0 / scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "L")


def _is_dataframe(X):
    """Whether X is a DataFrame (pandas; told by its shape and named columns, not its type)."""
    return (hasattr(X, "columns") and not isinstance(X, np.ndarray)
            and len(getattr(X, "shape", ())) == 2)


def image_column_of(X, image_column=None):
    """The images of X: X itself, or the image column of a DataFrame.

    A pandas DataFrame gives its only column, or the column
    named ``image_column``; its column names are never images. Anything else
    is returned as it is, whatever ``image_column`` says.

    Parameters
    ----------
    X : sequence of images or DataFrame
        The images, or a DataFrame with a column of images.
    image_column : str or None, default=None
        The column of images of a DataFrame; None takes its only column.

    Returns
    -------
    images : sequence of images
        The column (a pandas Series), or X.
    """
    if not _is_dataframe(X):
        return X
    columns = list(X.columns)
    if image_column is None:
        if len(columns) != 1:
            raise ValueError(
                f"expected a DataFrame with one column of images, or image_column naming "
                f"the column of images; got {len(columns)} columns {columns}"
            )
        image_column = columns[0]
    elif image_column not in columns:
        raise ValueError(
            f"expected a DataFrame with the column of images {image_column!r} "
            f"(image_column); got the columns {columns}"
        )
    return X[image_column]


# The standard base64 alphabet (RFC 4648, section 4), padded; line breaks are
# dropped first, as MIME base64 (base64.encodebytes) breaks lines every 76 characters.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_DATA_URL = re.compile(r"data:image/[-+.\w]+;base64,", re.IGNORECASE)
# From this length, a base64 string that holds no image is reported as such
# rather than as a missing file (a short path may happen to be in the alphabet).
_BASE64_REPORTED = 64


def _base64_text(text):
    """``text`` without its line breaks and data URL prefix, if it is base64; else None."""
    compact = "".join(text.split())
    url = _DATA_URL.match(compact)
    if url is not None:
        compact = compact[url.end():]
    return compact if compact and _BASE64.fullmatch(compact) else None


def base64_image(text):
    """The bytes of the image file that a string holds in base64, or None.

    A string is base64 when, without its line breaks (MIME base64) and an
    optional ``data:image/...;base64,`` prefix (a data URL), it is in the
    standard padded alphabet of RFC 4648; it holds an image file when Pillow
    identifies the format of the bytes it decodes to.
    """
    compact = _base64_text(text)
    if compact is None:
        return None
    try:
        content = base64.b64decode(compact, validate=True)
    except binascii.Error:
        return None
    return content if _header(content) is not None else None


def short_repr(text, limit=80):
    """``repr(text)``, or for a longer string its start and its length."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit - 20]!r}... ({len(text)} characters)"


def image_sources(X):
    """Validate a sequence of images and describe each one; raise on the first bad one."""
    X = image_column_of(X)
    if isinstance(X, (str, bytes, bytearray, memoryview, os.PathLike, Image.Image)):
        raise TypeError(
            "expected X to be a sequence of images (a list of PIL images, paths, encoded "
            f"image bytes or uint8 arrays); got a single {type(X).__name__}. Wrap it in a "
            "list: [image]"
        )
    if isinstance(X, np.ndarray) and X.dtype.kind == "S":
        # NumPy keeps fixed-width bytes without their trailing zero bytes, which are
        # part of many encoded images (the padding of BMP rows, of WebP and TIFF).
        raise TypeError(
            f"expected encoded images as a list or an object array of bytes; got a NumPy "
            f"array of dtype {X.dtype}, which drops the trailing zero bytes of every item. "
            "Pass list_of_bytes or np.array(list_of_bytes, dtype=object)"
        )
    if isinstance(X, np.ndarray) and X.ndim in (3, 4) and X.dtype == np.uint8:
        items = list(X)  # a stacked batch of (H, W) or (H, W, C) images
    else:
        try:
            items = list(X)
        except TypeError:
            raise TypeError(
                f"expected X to be a sequence of images; got {type(X).__name__}"
            ) from None
    if not items:
        raise ValueError("expected at least one image in X; got an empty sequence")
    if len(items) == 1:
        return [_describe(0, items[0])]
    # Files are read and hashed on every core. PIL images are described here:
    # one object may stand at several indexes, and loading it is not thread-safe.
    pool = ThreadPoolExecutor(max_workers=DECODE_WORKERS)
    try:
        described = [None if isinstance(item, Image.Image) else pool.submit(_describe, index, item)
                     for index, item in enumerate(items)]
        return [_describe(index, item) if future is None else future.result()
                for index, (item, future) in enumerate(zip(items, described, strict=True))]
    finally:
        pool.shutdown(cancel_futures=True)  # after the first bad image, hash no more


def _describe(index, item):
    if isinstance(item, Image.Image):
        if 0 in item.size:
            raise ValueError(f"X[{index}]: expected a non-empty image; got size {item.size}")
        digest = _digest(
            b"pil", item.mode.encode(), repr(item.size).encode(), item.tobytes(),
            bytes(item.getpalette() or ()),
        )
        return ImageSource(index, "pil", item, digest)
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        try:
            status = path.stat()
        except (OSError, ValueError) as exc:
            # A base64 string names no file, and is often longer than a name may be.
            if isinstance(exc, OSError) and exc.errno not in (errno.ENOENT, errno.ENAMETOOLONG):
                raise
            return _describe_missing(index, item)
        if not stat.S_ISREG(status.st_mode):
            kind = "directory" if stat.S_ISDIR(status.st_mode) else "special file"
            raise ValueError(f"X[{index}]: expected an image file; got the {kind} {str(item)!r}")
        return ImageSource(index, "path", path, *_file_digest(path, status))
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _describe_bytes(index, item)
    if isinstance(item, np.ndarray):
        shape_ok = item.ndim == 2 or (item.ndim == 3 and item.shape[2] in _ARRAY_CHANNELS)
        if item.dtype != np.uint8 or not shape_ok:
            hint = ""
            if item.ndim == 1 and item.dtype == np.uint8:
                hint = " (for the bytes of an encoded image file, pass array.tobytes())"
            raise ValueError(
                f"X[{index}]: expected a uint8 array of shape (H, W) or (H, W, C) with C in "
                f"{_ARRAY_CHANNELS}; got dtype {item.dtype} and shape {item.shape}{hint}"
            )
        if 0 in item.shape:
            raise ValueError(f"X[{index}]: expected a non-empty image; got shape {item.shape}")
        digest = _digest(b"array", repr(item.shape).encode(), np.ascontiguousarray(item).data)
        return ImageSource(index, "array", item, digest)
    hint = ""
    if type(item).__module__.startswith("torch"):
        hint = (
            " (for a CHW tensor in [0, 1]: "
            "(tensor.permute(1, 2, 0) * 255).round().byte().numpy())"
        )
    raise TypeError(
        f"X[{index}]: expected a PIL image, a path, encoded image bytes or a uint8 array; "
        f"got {type(item).__name__}{hint}"
    )


def _describe_bytes(index, item):
    # A copy of mutable buffers: the bytes decoded are the bytes digested.
    content = item.tobytes() if isinstance(item, memoryview) else bytes(item)
    if not content:
        raise ValueError(f"X[{index}]: expected the bytes of an encoded image; got 0 bytes")
    # The digest and header of the same file: one cache entry serves both.
    return ImageSource(index, "bytes", content, _digest(b"file", content), _header(content))


def _describe_missing(index, item):
    """A path that names no file: the image file it holds in base64, or why it is none."""
    if isinstance(item, str):
        content = base64_image(item)
        if content is not None:
            return _describe_bytes(index, content)
        compact = _base64_text(item)
        if compact is not None and len(compact) >= _BASE64_REPORTED:
            decoded = base64.b64decode(compact)
            raise ValueError(
                f"X[{index}]: expected a path to an image file or an image file in base64; "
                f"got {short_repr(item)}, which names no file and decodes as base64 to "
                f"{len(decoded)} bytes of no image format (starting {decoded[:12]!r})"
            )
    raise FileNotFoundError(f"X[{index}]: no such image file: {short_repr(str(item))}")


# File digests by file identity and stamp: a grid search hashes every file once.
_FILE_DIGESTS = {}
_FILE_DIGESTS_LOCK = threading.Lock()
_HASHING = {}  # stamp -> Future of the digest being computed by another thread
_FILE_DIGESTS_MAX = 2**16
_SETTLED_SECONDS = 2.0


def forget_file_digests():
    """Drop the remembered file digests: every file is read and hashed again."""
    with _FILE_DIGESTS_LOCK:
        _FILE_DIGESTS.clear()


def _file_digest(path, status):
    """The content digest of a file and its header, remembered while its stamp stays the same.

    The header is what decoding settings act on: (format, size, EXIF
    orientation), or None when Pillow cannot identify the file. As in git's
    index, a file modified in the last ``_SETTLED_SECONDS`` is not
    remembered: it may still change within the resolution of its file
    system's timestamps.
    """
    stamp = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
             status.st_ctime_ns)
    with _FILE_DIGESTS_LOCK:
        known = _FILE_DIGESTS.get(stamp)
        hashing = _HASHING.get(stamp) if known is None else None
        mine = known is None and hashing is None
        if mine:  # threads that meet the same file wait for this one's digest
            hashing = _HASHING[stamp] = Future()
    if known is not None:
        return known
    if not mine:
        return hashing.result()
    try:
        content = path.read_bytes()
        known = _digest(b"file", content), _header(content)
        hashing.set_result(known)
    except BaseException as exc:
        hashing.set_exception(exc)
        raise
    finally:
        with _FILE_DIGESTS_LOCK:
            del _HASHING[stamp]
            if hashing.exception() is None and (
                    time.time() - max(status.st_mtime, status.st_ctime) > _SETTLED_SECONDS):
                if len(_FILE_DIGESTS) >= _FILE_DIGESTS_MAX:
                    del _FILE_DIGESTS[next(iter(_FILE_DIGESTS))]  # the oldest entry
                _FILE_DIGESTS[stamp] = known
    return known


def _header(content):
    """(format, size, EXIF orientation) of an image file's bytes, without decoding its pixels."""
    register_heif()
    try:
        with Image.open(io.BytesIO(content)) as image:
            return image.format, image.size, _orientation(image)
    except Exception:  # noqa: BLE001 (not an image Pillow reads: load says why)
        return None


def _digest(*parts):
    hasher = hashlib.blake2b(digest_size=20)
    for part in parts:
        view = memoryview(part).cast("B")
        hasher.update(view.nbytes.to_bytes(8, "little"))
        hasher.update(view)
    return hasher.hexdigest()
