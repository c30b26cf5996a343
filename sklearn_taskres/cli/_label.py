"""``label PATH... -o MODEL --labels LABELS.csv``: the labelling page, served on 127.0.0.1.

The page shows one image at a time (keys for the classes), a grid for bulk
work, and the state of the model; TaskRes is refitted after every decision in
the background and written to MODEL. Needs the ``app`` extra.
"""

from pathlib import Path

from .._argtypes import int_in
from .._labels_log import LabelsFileError, is_labels_log, read_labels_log, session_classes
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    PROG,
    CommandError,
    add_model_options,
    add_save_options,
    alpha_type,
    check_model_output,
    collect_images,
    default_display_name,
    encoder_params,
    load_classifier,
    note,
    read_classnames_file,
    save_classifier,
    with_overrides,
)


def add_parser(commands, common):
    label = commands.add_parser(
        "label", parents=[common], help="label images in the browser while TaskRes retrains",
        description="Serve a labelling page on 127.0.0.1 and print its address (with a "
        "random access token). It shows one image at a time, large, with the classes as "
        "buttons (keys 1-9, 0) and the model's probabilities, and a grid to confirm many "
        "images of one class at once. After every decision TaskRes is refitted on the "
        "labelled images in the background, and the model is written to -o MODEL. Every "
        "decision is appended to --labels LABELS.csv at once; rerunning the same command "
        "resumes it. Labelling starts while the images are still being encoded. About one "
        "image in four is drawn at random: the model's guesses on those estimate its "
        "accuracy, against the starting model's. Each refit chooses its alpha from the labels "
        "(zero-shot a candidate) and is served and saved; with --alpha N, the better of it "
        "and the starting model by those estimates. Ctrl+C stops the server. Needs the app extra: "
        'pip install "sklearn-taskres[app]".',
    )
    label.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    label.add_argument("--classes", nargs="+", metavar="NAME", default=None,
                       help="the class labels, in the order of the keys 1-9, 0; CLIP reads "
                       "them with underscores as spaces")
    label.add_argument("--from", dest="from_model", metavar="MODEL", default=None,
                       help="start from this model of fit or zero-shot (its classes and "
                       "encoder) instead of --classes or --classnames-file")
    label.add_argument("--labels", required=True, metavar="LABELS.csv",
                       help="the labels file: one row per decision, appended; an existing "
                       "file is resumed")
    add_save_options(label, required=True)
    add_model_options(label)
    label.add_argument("--alpha", type=alpha_type, default="auto",
                       help="the residual's strength of every refit: auto (default) chooses it "
                       "from the labels, zero-shot among the candidates; 0.5 is the paper's")
    label.add_argument("--port", type=int_in(0, 2**16, what="a port"), default=0,
                       help="the port on 127.0.0.1 (default: a free one)")
    label.add_argument("--no-browser", action="store_true",
                       help="do not open the page in the web browser")
    label.set_defaults(handler=run)


def _starting_model(args):
    """The fitted classifier the session starts from: zero-shot of the names, or --from."""
    given = [option for option, value in (("--classes", args.classes),
                                          ("--classnames-file", args.classnames_file),
                                          ("--from", args.from_model)) if value is not None]
    if len(given) > 1 and given != ["--classnames-file", "--from"]:
        raise CommandError(f"expected one of --classes, --classnames-file or --from; "
                           f"got {' and '.join(given)}")
    if args.from_model is not None:
        return with_overrides(load_classifier(args.from_model), args)
    if args.classes is not None:
        duplicates = sorted({name for name in args.classes if args.classes.count(name) > 1})
        if duplicates:
            raise CommandError(f"expected distinct --classes; got {duplicates} more than once")
        classnames = {label: default_display_name(label) for label in args.classes}
    elif args.classnames_file is not None:
        classnames = read_classnames_file(args.classnames_file, bare_names=True)
    elif args.labels is not None and Path(args.labels).is_file() and is_labels_log(args.labels):
        classnames = session_classes(read_labels_log(args.labels))  # resuming: its classes
    else:
        raise CommandError(
            "expected the classes: --classes NAME [NAME ...], --classnames-file FILE or "
            "--from MODEL; got none"
        )
    if len(classnames) < 2:
        raise CommandError(f"expected at least 2 classes; got {list(classnames)}")
    from .._zero_shot import zero_shot_classifier

    return zero_shot_classifier(classnames, **encoder_params(args), random_state=0)


def run(args):
    """``label``: serve the page until Ctrl+C, then say what was done."""
    try:
        from ..label import LabellingServer, SessionError
    except ImportError as exc:
        raise CommandError(str(exc), EXIT_FAILURE) from exc

    model_format = check_model_output(args.output, args.format)
    labels = Path(args.labels)
    if labels.is_dir() or not labels.parent.is_dir():
        raise CommandError(f"expected --labels to be a file in an existing folder; got "
                           f"{str(labels)!r}")
    if labels.is_file() and labels.stat().st_size and not is_labels_log(labels):
        raise CommandError(f"expected --labels to be a labels file written by '{PROG} label' "
                           f"(or a new file); got {str(labels)!r}, which is not one. Nothing "
                           "was changed")
    paths = [str(path) for path in collect_images(args.paths)]
    classifier = _starting_model(args)
    try:
        server = LabellingServer(
            classifier, paths, labels, args.output, port=args.port, alpha=args.alpha,
            save=lambda model, path: save_classifier(model, path, model_format))
    except (SessionError, LabelsFileError) as exc:
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        raise CommandError(f"cannot listen on 127.0.0.1:{args.port}: {exc}",
                           EXIT_FAILURE) from exc
    session = server.session
    decided = len(session.decisions)
    print(f"Labelling page: {server.url}", flush=True)
    note(f"{len(session.paths)} image(s), {len(session.classes)} classes; labels go to "
         f"{labels}" + (f" (resumed: {decided} decision(s) kept)" if decided else "")
         + f", the model to {args.output}. Ctrl+C stops")
    if session.n_elsewhere:
        note(f"{session.n_elsewhere} row(s) of {labels} are about images not given here; "
             "they are kept in the file")
    if not args.no_browser:
        import webbrowser

        webbrowser.open(server.url)
    server.serve_forever()
    n_labelled = sum(label is not None for label in session.decisions.values())
    note(f"stopped: {n_labelled} image(s) labelled, "
         f"{len(session.decisions) - n_labelled} none of these, in {labels}; the "
         f"{'retrained' if session.serving_model() is session.trained_model else 'starting'} "
         f"model is in {args.output}")
    return EXIT_OK
