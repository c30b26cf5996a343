"""The labels file of the labelling page: a CSV log, one row per decision, never rewritten.

Columns, in order:

``path``
    The image file (absolute), empty for a ``class`` row.
``label``
    The class chosen (``label`` rows) or declared (``class`` rows); empty otherwise.
``event``
    ``label``: the image is of class ``label``; ``none``: it belongs to no
    class ("none of these", kept out of training); ``undo``: the image's
    earlier decisions are withdrawn, it is unlabelled again; ``class``: a class
    of the session, in order (written when the file is started, and when a
    class is added during a session).
``time``
    When the row was written, ISO 8601 in UTC.
``predicted``
    The prediction, before this decision, of the model trained on the labels
    so far (the starting model's before any refit).
``start_predicted``
    The prediction of the starting model (zero-shot) on the same image.
``audit``
    ``1`` when the image was drawn uniformly at random from the unlabelled
    images (its predictions are an unbiased sample of the models' accuracy).
``name``
    For ``class`` rows, the name CLIP reads in the prompts.

The last ``label``, ``none`` or ``undo`` row of a path decides it. Every row
is written with one ``write`` call, flushed and ``fsync``-ed before the
decision counts, so a crash or a ``kill -9`` loses no decision that the page
saw accepted; a row that a kill cut short is dropped when the file is opened
again.
"""

import csv
import datetime
import io
import os
from pathlib import Path

COLUMNS = ("path", "label", "event", "time", "predicted", "start_predicted", "audit", "name")
EVENTS = ("label", "none", "undo", "class")


class LabelsFileError(ValueError):
    """A file that is not a labels file, or a row that is not one of its rows."""


def _header_line():
    return ",".join(COLUMNS) + "\n"


def _format_row(row):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([row.get(column, "") for column in COLUMNS])
    return buffer.getvalue()


def _parse(text, path):
    """Rows of the text of a labels file; a last row without its newline is dropped."""
    if not text:
        return [], 0
    if not text.startswith(_header_line()):
        raise LabelsFileError(
            f"expected a labels file written by 'sklearn-taskres label' (header "
            f"{','.join(COLUMNS)}); got {str(path)!r}, which starts {text[:60]!r}"
        )
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    rows = []
    records = csv.reader(io.StringIO(complete[len(_header_line()):], newline=""))
    for number, record in enumerate(records, 2):
        if len(record) != len(COLUMNS) or record[2] not in EVENTS:
            raise LabelsFileError(
                f"expected rows of {len(COLUMNS)} fields ({','.join(COLUMNS)}) with an event "
                f"in {EVENTS} in {str(path)!r}; got {record!r} in record {number}"
            )
        rows.append(dict(zip(COLUMNS, record, strict=True)))
    return rows, len(complete.encode("utf-8"))


def read_labels_log(path):
    """The rows of a labels file, in order, as dicts of strings.

    Parameters
    ----------
    path : str or path
        A file written by ``sklearn-taskres label``.

    Returns
    -------
    rows : list of dict
        One per complete row; a last row cut short by a kill is left out.
    """
    path = Path(path)
    return _parse(path.read_text(encoding="utf-8"), path)[0]


def is_labels_log(path):
    """Whether ``path`` is a file that starts with the header of a labels file."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read(len(_header_line())) == _header_line()
    except (OSError, UnicodeDecodeError):
        return False


def session_classes(rows):
    """``{label: name}`` of the ``class`` rows, in order."""
    return {row["label"]: row["name"] for row in rows if row["event"] == "class"}


def final_decisions(rows):
    """``{path: label}``, the last decision of every decided path, in order of first decision.

    The label is a class label, or None for "none of these". Paths whose last
    decision is an ``undo`` are left out.
    """
    decisions = {}
    for row in rows:
        if row["event"] == "label":
            decisions[row["path"]] = row["label"]
        elif row["event"] == "none":
            decisions[row["path"]] = None
        elif row["event"] == "undo":
            decisions.pop(row["path"], None)
    return decisions


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class LabelsLog:
    """Append-only writer of a labels file: every row reaches the disk before ``append`` returns.

    Opening an existing file checks its header and cuts off a last row that a
    kill left incomplete; its rows are in :attr:`rows`.

    Parameters
    ----------
    path : str or path
        The labels file; created with its header when missing or empty.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.rows = []
        mode = "r+b" if self.path.exists() else "w+b"
        self._file = open(self.path, mode)  # noqa: SIM115 -- closed by close()
        try:
            text = self._file.read().decode("utf-8")
            self.rows, size = _parse(text, self.path)
            if not text:
                self._file.write(_header_line().encode("utf-8"))
                size = len(_header_line())
            self._file.truncate(size)
            self._file.seek(size)
            self._sync()
        except BaseException:
            self._file.close()
            raise

    def append(self, event, *, path="", label="", predicted="", start_predicted="",
               audit=False, name=""):
        """Write one row and make it durable; return the row."""
        if event not in EVENTS:
            raise ValueError(f"expected an event in {EVENTS}; got {event!r}")
        row = {"path": path, "label": label, "event": event, "time": utc_now(),
               "predicted": predicted, "start_predicted": start_predicted,
               "audit": "1" if audit else "0", "name": name}
        self._file.write(_format_row(row).encode("utf-8"))
        self._sync()
        self.rows.append(row)
        return row

    def _sync(self):
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        self._file.close()
