"""``fit DIR -o MODEL``: learn TaskRes on a labelled image folder and save the classifier."""

from collections import Counter

from .. import _argtypes
from ._common import (
    EXIT_OK,
    NONE_FOLDER,
    CommandError,
    add_model_options,
    add_save_options,
    alpha_type,
    check_model_output,
    class_display_names,
    encoder_params,
    float_type,
    note,
    read_labelled_folder,
    save_classifier,
)
from ._fit_checks import (
    cross_validation_report,
    read_labels_file,
    say_cross_validation,
    warn_unlabelled_classes,
)

#: The paper's schedule: FEW_SHOT_EPOCHS up to FEW_SHOTS images per class, else EPOCHS.
FEW_SHOTS, FEW_SHOT_EPOCHS, EPOCHS = 4, 100, 200


def add_parser(commands, common):
    fit = commands.add_parser(
        "fit", parents=[common], help="learn TaskRes on a labelled image folder",
        description="Learn TaskRes on DIR/<class>/<images> and save the classifier. The labels "
        "are the class folder names (sorted); CLIP reads them with underscores as spaces. "
        "DIR/_none/ holds images of none of the classes: no class, they sharpen the model's "
        "none-of-these score (predict's unknown_score); DIR/_unknown/, where sort files the "
        "images a model took for none, is left out.",
    )
    fit.add_argument("directory", metavar="DIR", nargs="?", default=None,
                     help="labelled image folder (or --labels)")
    fit.add_argument("--labels", metavar="LABELS.csv", default=None,
                     help="fit on the labels file of 'label' instead of DIR: the last "
                     "decision of every image ('none of these' images sharpen the "
                     "none-of-these score and are no class)")
    add_save_options(fit, required=True)
    add_model_options(fit)
    fit.add_argument("--alpha", type=alpha_type, default="auto",
                     help="scale of the task residual: 'auto' chooses it from the labels by "
                     "cross-validation, zero-shot (0) among the candidates; a number fixes it "
                     "(the paper's value is 0.5; default: auto; the value used is printed)")
    fit.add_argument("--learning-rate", type=float_type(0, False), default=2e-3,
                     help="peak learning rate of Adam (default: 2e-3; the paper uses 2e-4 "
                     "on ImageNet)")
    fit.add_argument("--epochs", type=_argtypes.positive_int, default=None,
                     help="training epochs (default: the paper's schedule, "
                     f"{FEW_SHOT_EPOCHS} when no class has more than {FEW_SHOTS} training "
                     f"images (after --shots), else {EPOCHS}; the schedule chosen is printed)")
    fit.add_argument("--shots", type=_argtypes.positive_int, default=None, metavar="K",
                     help="train on K images per class, drawn at random with --seed (a class "
                     "with fewer uses all of them once; default: all images)")
    fit.add_argument("--augment-views", type=_argtypes.non_negative_int, default=0, metavar="V",
                     help="train on V augmented views of every image (random resized crop and "
                     "flip, encoded once; default: 0, the plain evaluation crop)")
    fit.add_argument("--class-weight", choices=("balanced",), default=None,
                     help="weigh every class inversely to its number of images, "
                     "n_images / (n_classes * n_images_of_the_class), as scikit-learn's "
                     "class_weight='balanced' (default: every image weighs 1)")
    fit.add_argument("--seed", type=_argtypes.seed, default=0,
                     help="seed of the --shots draw, the batch order and the views (default: 0)")
    fit.set_defaults(handler=run)


def paper_epochs(labels):
    """The epochs of the paper's schedule for these training labels, and why.

    The paper trains 100 epochs at 1, 2 and 4 shots and 200 at 8 and 16; a
    folder holds as many shots as its largest class has images.

    Examples
    --------
    >>> from sklearn_taskres.cli._fit import paper_epochs
    >>> paper_epochs(["cat", "cat", "dog"])[0], paper_epochs(["cat"] * 8 + ["dog"])[0]
    (100, 200)
    """
    most = max(Counter(labels).values())
    if most <= FEW_SHOTS:
        return FEW_SHOT_EPOCHS, (f"the paper's schedule up to {FEW_SHOTS} images per class "
                                 f"(the most in one class here: {most})")
    return EPOCHS, (f"the paper's schedule above {FEW_SHOTS} images per class (the most in "
                    f"one class here: {most})")


def run(args):
    """``fit``: learn TaskRes on a labelled folder and save the classifier."""
    from .._classifier import TaskResClassifier
    from ..fewshot import sample_few_shot

    model_format = check_model_output(args.output, args.format)
    if (args.directory is None) == (args.labels is None):
        raise CommandError("expected a labelled folder DIR or --labels LABELS.csv; got "
                           + ("both" if args.labels else "neither"))
    if args.labels is not None:
        classnames, paths, labels, none_paths = read_labels_file(args.labels,
                                                                 args.classnames_file)
        folders = list(classnames)
    else:
        folders, paths, labels = read_labelled_folder(args.directory)
        classnames = class_display_names(folders, args.classnames_file)
        none_paths = [path for path, label in zip(paths, labels, strict=True)
                      if label == NONE_FOLDER]
        n_kept = len(paths) - len(none_paths)
        paths, labels = paths[:n_kept], labels[:n_kept]
    if none_paths:
        note(f"{len(none_paths)} image(s) of none of the classes left out of the training: "
             "no class, they sharpen the none-of-these score (unknown_score)")
    warn_unlabelled_classes(folders, labels)
    if args.shots is not None:
        counts = {folder: labels.count(folder) for folder in folders}
        for folder, count in counts.items():
            if 0 < count < args.shots:
                note(f"note: class {folder!r} has {count} image(s), fewer than --shots "
                      f"{args.shots}; all of them are used")
        # repeat=False: a class short of images uses each once rather than duplicates.
        indices = sample_few_shot(labels, args.shots, repeat=False, random_state=args.seed)
        paths, labels = [paths[i] for i in indices], [labels[i] for i in indices]
    epochs = args.epochs
    if epochs is None:
        epochs, reason = paper_epochs(labels)
        note(f"training {epochs} epochs: {reason} (--epochs sets another number)")
    encoder = encoder_params(args)
    classifier = TaskResClassifier(
        classnames,
        **encoder,
        alpha=args.alpha,
        learning_rate=args.learning_rate,
        max_iter=epochs,
        augment_views=args.augment_views,
        class_weight=args.class_weight,
        random_state=args.seed,
    )
    classifier.fit([*paths, *none_paths], [*labels, *[NONE_FOLDER] * len(none_paths)])
    save_classifier(classifier, args.output, model_format)
    if not args.augment_views:  # its plain features are those of the fit: no new encoding
        say_cross_validation(cross_validation_report(classifier, paths, labels, args.seed))
    chosen = ("chosen from the labels" if args.alpha == "auto" else "fixed by --alpha")
    note(f"fitted TaskRes on {len(paths)} images of {len(folders)} classes ({encoder['model']}, "
          f"{epochs} epochs) with alpha {classifier.alpha_:g} ({chosen}); saved to "
          f"{args.output} ({model_format})")
    return EXIT_OK


