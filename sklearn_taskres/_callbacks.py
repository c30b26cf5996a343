"""scikit-learn's callback API (``sklearn.callback``, scikit-learn 1.9 and later), where it exists.

The estimators inherit :class:`CallbackSupportMixin` and describe their fit
as tasks: the whole fit, its stages, and one task per training epoch. With
an older scikit-learn the mixin adds nothing (no ``set_callbacks``) and the
tasks are a context whose hooks do nothing, so the fit runs as before.
"""

try:
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # scikit-learn < 1.9

    class CallbackSupportMixin:
        """Nothing to add: this scikit-learn has no callback API."""


class _NoCallbacks:
    """The fit tasks where scikit-learn has no callback API: every hook does nothing."""

    def subcontext(self, **kwargs):
        return self

    def call_on_fit_task_begin(self, **kwargs):
        return self

    def call_on_fit_task_end(self, **kwargs):
        return False


#: The fit tasks of a fit that has no callback context (or no callback API).
NO_CALLBACKS = _NoCallbacks()


def callback_metadata(sample_weight):
    """The training metadata the hooks get, as scikit-learn's estimators pass it."""
    return None if sample_weight is None else {"sample_weight": sample_weight}


def fit_callback_context(estimator, max_subtasks):
    """The root task of ``estimator``'s fit, its callbacks set up; call once per fit."""
    if hasattr(estimator, "_init_callback_context"):
        return estimator._init_callback_context(max_subtasks=max_subtasks)
    return NO_CALLBACKS


class EpochTasks:
    """One task named ``"epoch"`` per training epoch, the subtasks of ``context``.

    The hooks of every epoch get the training data of ``estimator``'s fit
    and, when a callback asks for it, a fitted view of ``estimator`` as it
    stands at the beginning or end of the epoch: ``view(state)`` turns the
    fitted attributes of the head at that point into the attributes that make
    a copy of ``estimator`` fitted. A request to stop is ignored: TaskRes runs
    its whole learning rate schedule.
    """

    def __init__(self, context, estimator, *, X, y, metadata, view=None):
        self.context = context
        self.estimator = estimator
        self.data = {"X": X, "y": y, "metadata": metadata}
        self.view = view if view is not None else (lambda state: state)
        self._task = None

    def hooks(self, fitted_state):
        """``on_epoch_begin`` and ``on_epoch_end`` of :func:`~._training.train_residual`.

        ``fitted_state(residual, loss_curve)`` gives the head's fitted
        attributes for a residual and the losses of the epochs done.
        """

        def attributes(snapshot):
            return lambda: self.view(fitted_state(*snapshot()))

        def begin(epoch, snapshot):
            self._task = self.context.subcontext(task_name="epoch")
            self._task.call_on_fit_task_begin(
                estimator=self.estimator, reconstruction_attributes=attributes(snapshot),
                **self.data,
            )

        def end(epoch, snapshot):
            self._task.call_on_fit_task_end(
                estimator=self.estimator, reconstruction_attributes=attributes(snapshot),
                **self.data,
            )

        return {"on_epoch_begin": begin, "on_epoch_end": end}
