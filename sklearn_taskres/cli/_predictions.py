"""Prediction files: the rows ``predict`` writes and ``review`` and ``sort`` read.

A prediction file holds one row per image, in one of three formats chosen by
the suffix of its name:

- ``.csv``: columns ``path``, ``label``, ``proba_<class>`` (with
  ``--proba``, one per class of the model), ``unknown_score``, ``error``,
  ``model``;
- ``.jsonl``: one JSON object per line with the same fields, the
  probabilities as one object ``proba`` ``{class: probability}``;
- ``.parquet``: a folder of Parquet files (one per batch, each complete when
  it appears) with the columns of the CSV; ``pandas.read_parquet`` and
  ``pyarrow.parquet.read_table`` read the folder as one table.

``label`` is empty (null) and ``error`` says why for an image that could not
be read. ``unknown_score`` is the model's "none of these" score
(``score_unknown``); where it is above the model's threshold, ``label`` is
``_unknown``. Files written before the score existed have no such column.
``model`` is the fingerprint of the model that made the row (see
:func:`model_fingerprint`): a rerun resumes only a file of the same model.
Rows are appended batch by batch: a file cut short by a kill holds every
batch written before, and a partial last line is dropped on resume.
"""

import csv
import hashlib
import io
import json
import os
import uuid
from pathlib import Path

import numpy as np

from ._common import CommandError, plain

#: Suffixes of prediction files, and the format each one means.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
PROBA_PREFIX = "proba_"
SCORE_COLUMN = "unknown_score"


def prediction_format(path):
    """The format of the prediction file ``path``, from its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise CommandError(
            f"expected a prediction file name ending in {', '.join(FORMATS)}; "
            f"got {str(path)!r}"
        )
    return FORMATS[suffix]


def model_fingerprint(classifier):
    """A short hex digest of what a fitted classifier predicts with.

    The encoder's name, the labels, the base, the residual, ``alpha_`` and the
    logit scale: two files with the same fingerprint come from the same
    classifier. Where the weights are read from (``pretrained``) and the
    device are left out, so that a model whose weights moved still resumes
    its file.
    """
    digest = hashlib.sha256()
    labels = [str(plain(label)) for label in classifier.classes_]
    digest.update(json.dumps([classifier.model, labels]).encode())
    for array in (classifier.base_weights_, classifier.residual_):
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    digest.update(np.asarray([classifier.alpha_, classifier.logit_scale_]).tobytes())
    threshold = unknown_threshold(classifier)
    if threshold is not None:  # labels depend on it
        digest.update(np.asarray([threshold]).tobytes())
    return digest.hexdigest()[:16]


def unknown_threshold(classifier):
    """The threshold of the classifier's none-of-these score; None without the score."""
    if not hasattr(classifier.head_, "unknown_threshold_") or classifier.unknown_label is None:
        return None
    return classifier._synced_head()._unknown_threshold()


def columns(classes, proba):
    """The columns of a prediction file (CSV and Parquet)."""
    probas = [f"{PROBA_PREFIX}{label}" for label in classes] if proba else []
    return ["path", "label", *probas, SCORE_COLUMN, "error", "model"]


# ---------------------------------------------------------------- reading


def read_predictions(path):
    """The rows of a prediction file, as dicts.

    Parameters
    ----------
    path : str or path
        A ``.csv``, ``.jsonl`` or ``.parquet`` file written by ``predict``.

    Returns
    -------
    classes : list of str or None
        The classes of the probability columns, or None without them.
    rows : list of dict
        ``path``, ``label`` (None for an unreadable image), ``proba`` (a list
        in the order of ``classes``, or None), ``error`` (None or the reason)
        and ``model`` of every row, in the file's order.
    """
    path = Path(path)
    kind = prediction_format(path)
    if not path.exists():
        raise CommandError(
            f"expected a prediction file written by 'predict --output'; got {str(path)!r}, "
            "which does not exist"
        )
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[kind]
    return reader(path)


def _blank(value):
    return None if value is None or value == "" else value


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as file:
        records = list(csv.reader(file))
    if not records:
        return None, []
    header = records[0]
    if header[:2] != ["path", "label"] or header[-2:] != ["error", "model"]:
        raise CommandError(
            f"expected the columns path, label, [proba_<class>...], error, model in "
            f"{str(path)!r} (a file of 'predict --output'); got {header}"
        )
    scored = header[-3] == SCORE_COLUMN
    probas = header[2:-3] if scored else header[2:-2]
    classes = [name[len(PROBA_PREFIX):] for name in probas] or None
    rows = []
    for number, record in enumerate(records[1:], 2):
        if len(record) != len(header):
            raise CommandError(
                f"expected {len(header)} fields on every line of {str(path)!r}; got "
                f"{len(record)} on line {number}"
            )
        rows.append({
            "path": record[0],
            "label": _blank(record[1]),
            "proba": [float(value) for value in record[2:2 + len(probas)]]
            if classes and record[1] else None,
            "unknown_score": float(record[-3]) if scored and record[-3] else None,
            "error": _blank(record[-2]),
            "model": record[-1],
        })
    return classes, rows


def _read_jsonl(path):
    classes, rows = None, []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise CommandError(
                    f"expected one JSON object per line of {str(path)!r}; got {exc} on line "
                    f"{number}"
                ) from exc
            proba = row.get("proba")
            if proba is not None:
                classes = classes or list(proba)
                proba = [proba[label] for label in classes]
            rows.append({"path": row["path"], "label": row.get("label"), "proba": proba,
                         "unknown_score": row.get(SCORE_COLUMN), "error": row.get("error"),
                         "model": row.get("model")})
    return classes, rows


def _parquet():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise CommandError(
            "expected pyarrow for .parquet prediction files (pip install pyarrow, or "
            "'sklearn-taskres[parquet]'); got " + str(exc)
        ) from exc
    return pyarrow, pyarrow.parquet


def _parquet_parts(folder):
    return sorted(entry for entry in Path(folder).glob("part-*.parquet"))


def _read_parquet(path):
    _, parquet = _parquet()
    if not path.is_dir():
        raise CommandError(
            f"expected {str(path)!r} to be a folder of Parquet files written by 'predict "
            "--output'; got a file"
        )
    classes, rows = None, []
    for part in _parquet_parts(path):
        table = parquet.read_table(part).to_pydict()
        probas = [name for name in table if name.startswith(PROBA_PREFIX)]
        classes = [name[len(PROBA_PREFIX):] for name in probas] or None
        for index, image in enumerate(table["path"]):
            label = table["label"][index]
            rows.append({
                "path": image,
                "label": label,
                "proba": [table[name][index] for name in probas] if probas and label is not None
                else None,
                "unknown_score": table[SCORE_COLUMN][index] if SCORE_COLUMN in table else None,
                "error": table["error"][index],
                "model": table["model"][index],
            })
    return classes, rows


# ---------------------------------------------------------------- writing


class PredictionWriter:
    """Appends rows to a prediction file, batch by batch, each batch flushed at once.

    Parameters
    ----------
    path : str or path
        The prediction file; its suffix gives the format.
    classes : list
        The model's labels, in the order of the probabilities.
    proba : bool
        Whether rows carry the probability of every class.
    fingerprint : str
        The ``model`` of every row.
    unknown : bool, default=False
        Whether labels may be ``_unknown`` (Parquet labels are then strings).
    """

    def __init__(self, path, classes, proba, fingerprint, unknown=False):
        self.unknown = unknown
        self.path = Path(path)
        self.format = prediction_format(path)
        self.classes = [plain(label) for label in classes]
        self.proba = proba
        self.fingerprint = fingerprint
        self.header = columns(self.classes, proba)
        if self.format == "parquet":
            self.path.mkdir(exist_ok=True)
        else:
            drop_partial_line(self.path)
            if self.format == "csv" and not self.path.stat().st_size:
                self._append(_csv_text([self.header]))

    def write(self, rows):
        """Append ``rows`` (dicts of ``path``, ``label``, ``proba``, ``error``) as one batch."""
        if not rows:
            return
        if self.format == "csv":
            self._append(_csv_text(self._records(rows)))
        elif self.format == "jsonl":
            self._append("".join(json.dumps(self._object(row)) + "\n" for row in rows))
        else:
            self._write_part(rows)

    def close(self):
        """Nothing to do: every batch is complete on disk once ``write`` returns."""

    def _records(self, rows):
        for row in rows:
            probas = row["proba"] if row["proba"] is not None else [""] * len(self.classes)
            score = row.get("unknown_score")
            yield [row["path"], "" if row["label"] is None else row["label"],
                   *(probas if self.proba else []), "" if score is None else score,
                   row["error"] or "", self.fingerprint]

    def _object(self, row):
        entry = {"path": row["path"], "label": row["label"]}
        if self.proba:
            entry["proba"] = None if row["proba"] is None else dict(
                zip(map(str, self.classes), row["proba"], strict=True))
        entry[SCORE_COLUMN] = row.get("unknown_score")
        entry.update(error=row["error"], model=self.fingerprint)
        return entry

    def _append(self, text):
        # One write per batch on an append-only file: a kill leaves whole batches.
        with open(self.path, "a", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()

    def _write_part(self, rows):
        pyarrow, parquet = _parquet()
        data = {"path": [row["path"] for row in rows],
                "label": [row["label"] for row in rows]}
        for index, label in enumerate(self.classes):
            if self.proba:
                data[f"{PROBA_PREFIX}{label}"] = [
                    None if row["proba"] is None else row["proba"][index] for row in rows]
        data[SCORE_COLUMN] = [row.get("unknown_score") for row in rows]
        data["error"] = [row["error"] for row in rows]
        data["model"] = [self.fingerprint] * len(rows)
        schema = pyarrow.schema(
            [("path", pyarrow.string()),
             ("label", pyarrow.int64() if not self.unknown
              and all(isinstance(label, int) for label in self.classes)
              else pyarrow.string())]
            + [(name, pyarrow.float64()) for name in data if name.startswith(PROBA_PREFIX)]
            + [(SCORE_COLUMN, pyarrow.float64())]
            + [("error", pyarrow.string()), ("model", pyarrow.string())]
        )
        if schema.field("label").type == pyarrow.string():
            data["label"] = [None if label is None else str(label) for label in data["label"]]
        table = pyarrow.table(data, schema=schema)
        number = len(_parquet_parts(self.path))
        final = self.path / f"part-{number:06d}.parquet"
        # Readers skip dot files: the part appears complete or not at all.
        temporary = self.path / f".{final.name}.{uuid.uuid4().hex}.tmp"
        parquet.write_table(table, temporary)
        os.replace(temporary, final)


def _csv_text(records):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(records)
    return buffer.getvalue()


def drop_partial_line(path):
    """Create ``path``, or cut a last line that a kill left without its newline."""
    with open(path, "ab+") as file:
        size = file.seek(0, os.SEEK_END)
        if not size:
            return
        file.seek(max(0, size - 1))
        if file.read(1) == b"\n":
            return
        keep, step = 0, 1 << 16
        position = size
        while position > 0:
            start = max(0, position - step)
            file.seek(start)
            block = file.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            position = start
        file.truncate(keep)


def remove_predictions(path):
    """Delete a prediction file (or Parquet folder) before a run with ``--overwrite``."""
    path = Path(path)
    if path.is_dir():
        for part in _parquet_parts(path):
            part.unlink()
        for stale in path.glob(".part-*.tmp"):
            stale.unlink()
        if any(path.iterdir()):
            raise CommandError(
                f"expected --output {str(path)!r} to hold only the Parquet files of 'predict'; "
                "got other files too (nothing was removed of them)"
            )
        path.rmdir()
    elif path.exists():
        path.unlink()
