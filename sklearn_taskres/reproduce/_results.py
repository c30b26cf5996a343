"""The files a run writes: ``results.csv`` and ``results.json``."""

import csv
import json
import os
import tempfile
from pathlib import Path

CSV_FIELDS = (
    "dataset", "method", "shots", "seed", "accuracy", "n_train", "n_test", "trained_on",
    "C", "epochs", "alpha", "learning_rate", "augment_views", "seconds",
    "base_accuracy", "new_accuracy",
)


def write_results(directory, records, settings, draws=()):
    """Write ``results.csv`` and ``results.json`` (each atomically) to ``directory``.

    ``results.json`` holds the settings, every run, and the image paths of
    every few-shot draw (see :func:`draw_record`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def replace_atomically(name, write):
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=name, suffix=".tmp")
        try:
            with os.fdopen(handle, "w", newline="", encoding="utf-8") as file:
                write(file)
            os.replace(temporary, directory / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def write_csv(file):
        writer = csv.DictWriter(file, fieldnames=CSV_FIELDS, restval="")
        writer.writeheader()
        for record in records:
            writer.writerow({k: "" if v is None else v for k, v in record.items()})

    def write_json(file):
        json.dump({"settings": settings, "runs": records, "draws": list(draws)}, file,
                  indent=1)
        file.write("\n")

    replace_atomically("results.csv", write_csv)
    replace_atomically("results.json", write_json)
