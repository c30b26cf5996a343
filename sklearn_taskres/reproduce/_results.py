"""The files a run writes, ``results.csv`` and ``results.json``, and reading them back."""

import csv
import json
import os
import tempfile
from pathlib import Path

CSV_FIELDS = (
    "dataset", "method", "shots", "seed", "accuracy", "n_train", "n_test", "trained_on",
    "C", "epochs", "alpha", "learning_rate", "augment_views", "seconds",
    "base_accuracy", "new_accuracy", "harmonic_mean", "blend",
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


def read_results(path):
    """The settings, runs and draws a run wrote to ``results.json``.

    Parameters
    ----------
    path : str or path
        ``results.json``, or the output folder that holds it.

    Returns
    -------
    results : dict
        ``"settings"``, ``"runs"`` (one dict per run, as
        :func:`write_results` wrote them) and ``"draws"``. A base-to-new run
        holds ``base_accuracy``, ``new_accuracy`` and ``harmonic_mean``;
        files of earlier versions held its harmonic mean as ``accuracy``,
        which is read as ``harmonic_mean``.

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    ValueError
        When the file is not the JSON ``results.json`` of a run.

    Examples
    --------
    >>> from sklearn_taskres.reproduce import read_results, write_results
    >>> former = {"dataset": "dtd", "method": "taskres", "shots": 16, "seed": 1,
    ...           "accuracy": 68.5714, "base_accuracy": 80.0, "new_accuracy": 60.0}
    >>> write_results(getfixture("tmp_path"), [former], {"protocol": "base2new"})
    >>> run = read_results(getfixture("tmp_path"))["runs"][0]
    >>> run["harmonic_mean"], "accuracy" in run
    (68.5714, False)
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"expected {path} to be the results.json of a run; got {exc}") from exc
    if not isinstance(content, dict) or not isinstance(content.get("runs"), list):
        raise ValueError(
            f"expected {path} to be the results.json of a run, with a list of runs; got "
            f"{sorted(content) if isinstance(content, dict) else type(content).__name__}"
        )
    runs = []
    for run in content["runs"]:
        if "base_accuracy" in run and "harmonic_mean" not in run:  # an earlier version's
            run = {("harmonic_mean" if name == "accuracy" else name): value
                   for name, value in run.items()}
        runs.append(run)
    return {"settings": content.get("settings", {}), "runs": runs,
            "draws": content.get("draws", [])}
