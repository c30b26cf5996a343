"""``zero-shot``: CLIP's zero-shot classifier from class names, saved or evaluated on a folder."""

from ._common import (
    EXIT_OK,
    CommandError,
    add_model_options,
    add_save_options,
    check_model_output,
    class_display_names,
    default_display_name,
    encoder_params,
    note,
    read_classnames_file,
    read_labelled_folder,
    save_classifier,
)
from ._evaluate import evaluate_on


def add_parser(commands, common):
    zero_shot = commands.add_parser(
        "zero-shot", parents=[common], help="CLIP's zero-shot classifier from class names",
        description="Build CLIP's zero-shot classifier (no training): from --classes or "
        "--classnames-file alone, saved with -o MODEL, as the start of labelling a photo "
        "folder; or from the class folder names of DIR/<class>/<images>, evaluated there as "
        "evaluate does (and saved with -o).",
    )
    zero_shot.add_argument("directory", metavar="DIR", nargs="?", default=None,
                           help="labelled image folder to evaluate on (optional)")
    zero_shot.add_argument("--classes", nargs="+", metavar="NAME", default=None,
                           help="without DIR: the class labels; CLIP reads them with "
                           "underscores as spaces")
    add_save_options(zero_shot, required=False)
    add_model_options(zero_shot)
    zero_shot.add_argument("--json", action="store_true", help="print the report as JSON")
    zero_shot.set_defaults(handler=run)


def _classnames(args):
    """``{label: name}`` of the classes, and the labelled folder's paths (or None)."""
    if args.directory is not None:
        if args.classes is not None:
            raise CommandError(
                "expected either DIR (classes from its folders) or --classes; got both"
            )
        folders, _, _ = read_labelled_folder(args.directory)
        return class_display_names(folders, args.classnames_file)
    if args.output is None:
        raise CommandError(
            "expected -o MODEL to save the zero-shot classifier (or a DIR to evaluate it on); "
            "got neither"
        )
    if args.classes is not None and args.classnames_file is not None:
        raise CommandError("expected --classes or --classnames-file; got both")
    if args.classes is not None:
        duplicates = sorted({name for name in args.classes if args.classes.count(name) > 1})
        if duplicates:
            raise CommandError(f"expected distinct --classes; got {duplicates} more than once")
        return {label: default_display_name(label) for label in args.classes}
    if args.classnames_file is not None:
        return read_classnames_file(args.classnames_file, bare_names=True)
    raise CommandError(
        "expected the classes: --classes NAME [NAME ...], --classnames-file FILE or a "
        "labelled folder DIR; got none"
    )


def run(args):
    """``zero-shot``: the zero-shot classifier of the names; evaluated on DIR when given."""
    from .._zero_shot import zero_shot_classifier

    model_format = None if args.output is None else check_model_output(args.output, args.format)
    classnames = _classnames(args)
    classifier = zero_shot_classifier(classnames, **encoder_params(args), random_state=0)
    if args.output is not None:
        save_classifier(classifier, args.output, model_format)
        note(f"saved the zero-shot classifier of {len(classnames)} classes to {args.output} "
             f"({model_format})")
    if args.directory is None:
        return EXIT_OK
    return evaluate_on(classifier, args.directory, args.json)
