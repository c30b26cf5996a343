"""``review PREDICTIONS -o PAGE.html``: the predictions as one self-contained page of thumbnails.

The page needs no server, no network and no JavaScript: thumbnails are small
JPEG data URIs and the layout is plain HTML and CSS. Everything that came
from a file (paths, labels, error messages) is HTML-escaped: a file may be
called ``<script>.jpg``.
"""

import base64
import html
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import _argtypes
from ._common import EXIT_OK, UNKNOWN_LABEL, CommandError, note
from ._predictions import read_predictions

#: Images in "label these next": a round of labelling.
N_NEXT = 12

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
p.meta, p.note { color: #555; margin-top: .2rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { padding: .15rem .7rem; text-align: left; border-bottom: 1px solid #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: flex; flex-wrap: wrap; gap: .6rem; }
figure { margin: 0; width: %(width)dpx; font-size: .75rem; line-height: 1.25; }
figure img, figure .missing { width: %(size)dpx; height: %(size)dpx; object-fit: contain;
  background: #f2f2f2; display: block; }
figure .missing { display: flex; align-items: center; justify-content: center; color: #a00; }
figcaption { overflow-wrap: anywhere; margin-top: .2rem; }
figcaption .label { font-weight: 600; }
.low { color: #b3261e; }
code { overflow-wrap: anywhere; }
"""


def add_parser(commands, common):
    review = commands.add_parser(
        "review", parents=[common], help="an HTML page of thumbnails to check predictions",
        description="Write one self-contained HTML page (thumbnails embedded, no server or "
        "JavaScript needed) from a file of 'predict --proba --output': the number of images "
        "per predicted class; per class, the images least confident first, each with its "
        "label, probability and margin to the runner-up; the images to label next (smallest "
        "margin first: where the model hesitates most); and the unreadable files.",
    )
    review.add_argument("predictions", metavar="PREDICTIONS",
                        help="a .csv, .jsonl or .parquet file of 'predict --proba --output'")
    review.add_argument("-o", "--output", required=True, metavar="PAGE.html",
                        help="the HTML file to write")
    review.add_argument("--next", type=_argtypes.non_negative_int, default=N_NEXT, metavar="N",
                        help="images in the 'label these next' section, smallest margin first "
                        f"(default: {N_NEXT}, a round of labelling)")
    review.add_argument("--per-class", type=_argtypes.non_negative_int, default=50, metavar="K",
                        help="images shown per class, least confident first; the page of "
                        "100,000 images stays as small as that of K per class (default: 50)")
    review.add_argument("--thumbnail-size", type=_argtypes.positive_int, default=128,
                        metavar="PX", help="longest side of the thumbnails (default: 128)")
    review.set_defaults(handler=run)


def run(args):
    """``review``: write the page and say what it shows."""
    output = Path(args.output)
    if not output.parent.is_dir():
        raise CommandError(
            f"expected -o in an existing folder; got {str(output)!r}, whose folder "
            f"{str(output.parent)!r} does not exist"
        )
    classes, rows = read_predictions(args.predictions)
    if classes is None:
        raise CommandError(
            f"expected predictions with probabilities in {args.predictions!r} (written by "
            "'predict --proba --output'); got rows without them"
        )
    page = review_page(classes, rows, n_next=args.next, per_class=args.per_class,
                       thumbnail_size=args.thumbnail_size, title=str(args.predictions))
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, output)
    n_failed = sum(row["error"] is not None for row in rows)
    note(f"wrote {output}: {len(rows) - n_failed} image(s) in {len(classes)} classes, "
         f"{n_failed} unreadable ({output.stat().st_size / 2**20:.1f} MiB)")
    return EXIT_OK


def confidence(proba):
    """The top probability, the index of the runner-up and the margin between them."""
    order = sorted(range(len(proba)), key=proba.__getitem__, reverse=True)
    top, runner_up = order[0], order[1]
    return proba[top], runner_up, proba[top] - proba[runner_up]


def review_page(classes, rows, *, n_next=N_NEXT, per_class=50, thumbnail_size=128, title=""):
    """The HTML of the review page.

    Parameters
    ----------
    classes : list of str
        The classes of the probabilities.
    rows : list of dict
        Rows of :func:`~sklearn_taskres.cli.read_predictions`.
    n_next : int, default=12
        Images in "label these next": the smallest margins between the two
        most probable classes (uncertainty sampling).
    per_class : int, default=50
        Images shown per predicted class, least confident first.
    thumbnail_size : int, default=128
        Longest side of the thumbnails, in pixels.
    title : str, default=""
        What the page is of (the predictions file).

    Returns
    -------
    page : str
    """
    scored, failed = [], []
    for row in rows:
        if row["error"] is not None or row["proba"] is None:
            failed.append(row)
            continue
        top, runner_up, margin = confidence(row["proba"])
        scored.append({"path": row["path"], "label": str(row["label"]), "proba": top,
                       "runner_up": classes[runner_up], "margin": margin,
                       "unknown_score": row.get("unknown_score")})
    by_class = {label: [] for label in classes}
    for entry in scored:
        by_class.setdefault(entry["label"], []).append(entry)
    for label, entries in by_class.items():
        if label == UNKNOWN_LABEL:
            # the most doubtful first: the lowest none-of-these scores, nearest the threshold
            entries.sort(key=lambda entry: (entry["unknown_score"] or 0.0, entry["path"]))
        else:
            entries.sort(key=lambda entry: (entry["proba"], entry["path"]))
    next_ones = sorted(scored, key=lambda entry: (entry["margin"], entry["path"]))[:n_next]
    shown = {entry["path"] for entry in next_ones}
    for entries in by_class.values():
        shown.update(entry["path"] for entry in entries[:per_class])
    thumbnails = _thumbnails(sorted(shown), thumbnail_size)

    escape = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Review: {escape(title)}</title>",
        "<style>" + _STYLE % {"size": thumbnail_size, "width": max(thumbnail_size, 110)}
        + "</style></head><body>",
        f"<h1>Review of {len(rows)} predictions</h1>",
        f'<p class="meta">From <code>{escape(title)}</code>: {len(scored)} image(s) predicted '
        f"in {len(classes)} classes, {len(failed)} unreadable.</p>",
        "<h2>Counts per class</h2>",
        "<table><tr><th>class</th><th>images</th><th>shown</th>"
        "<th>lowest probability</th></tr>",
    ]
    for index, (label, entries) in enumerate(by_class.items()):
        lowest = f"{entries[0]['proba']:.3f}" if entries else ""
        parts.append(
            f'<tr><td><a href="#class-{index}">{escape(label)}</a></td>'
            f'<td class="n">{len(entries)}</td><td class="n">{min(len(entries), per_class)}</td>'
            f'<td class="n">{lowest}</td></tr>'
        )
    if failed:
        parts.append(f'<tr><td><a href="#unreadable">unreadable</a></td>'
                     f'<td class="n">{len(failed)}</td><td></td><td></td></tr>')
    parts.append("</table>")

    parts.append('<h2 id="next">Label these next</h2>')
    parts.append(f'<p class="note">The {len(next_ones)} image(s) with the smallest margin '
                 "between the two most probable classes: labelling them teaches the model most. "
                 "Put each in the folder of its true class and fit again.</p>")
    parts.append(_grid(next_ones, thumbnails, show_runner_up=True))
    for index, (label, entries) in enumerate(by_class.items()):
        parts.append(f'<h2 id="class-{index}">{escape(label)}</h2>')
        kept = entries[:per_class]
        doubt = "lowest unknown_score" if label == UNKNOWN_LABEL else "least confident"
        what = ("taken for none of the classes (label " + escape(label) + ")"
                if label == UNKNOWN_LABEL else "predicted " + escape(label))
        parts.append(f'<p class="note">{len(entries)} image(s) {what}'
                     + (f"; the {len(kept)} {doubt} shown" if len(kept) < len(entries)
                        else f"; {doubt} first") + ".</p>")
        parts.append(_grid(kept, thumbnails, show_runner_up=True))
    parts.append('<h2 id="unreadable">Unreadable files</h2>')
    if failed:
        parts.append("<table><tr><th>file</th><th>reason</th></tr>")
        parts.extend(f"<tr><td><code>{escape(row['path'])}</code></td>"
                     f"<td>{escape(row['error'] or 'no probabilities')}</td></tr>"
                     for row in failed)
        parts.append("</table>")
    else:
        parts.append('<p class="note">None: every image was read.</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _grid(entries, thumbnails, show_runner_up):
    escape = html.escape
    figures = ['<div class="grid">']
    for entry in entries:
        name = os.path.basename(entry["path"])
        uri = thumbnails.get(entry["path"])
        picture = (f'<img src="{uri}" alt="{escape(name)}">' if uri
                   else '<div class="missing">cannot open</div>')
        low = ' class="low"' if entry["margin"] < 0.1 else ""
        caption = (f'<span class="label">{escape(entry["label"])}</span> '
                   f'p={entry["proba"]:.3f}<br><span{low}>margin {entry["margin"]:.3f}</span>')
        if show_runner_up:
            caption += f' vs {escape(entry["runner_up"])}'
        figures.append(f'<figure title="{escape(entry["path"])}">{picture}'
                       f"<figcaption>{caption}<br>{escape(name)}</figcaption></figure>")
    figures.append("</div>")
    return "\n".join(figures)


def thumbnail(path, size):
    """A JPEG data URI of the image at ``path``, its longest side ``size``; None if unreadable."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((size, size))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=70, optimize=True)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _thumbnails(paths, size):
    # Decoding releases the GIL: threads keep every core busy.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(paths, pool.map(lambda path: thumbnail(path, size), paths),
                        strict=True))
