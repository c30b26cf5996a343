"""The format version of a fitted estimator's state, written into every pickle and saved model.

Below the estimators, which inherit :class:`VersionedStateMixin`, and below
:mod:`sklearn_taskres._persistence`, which saves and loads them.
"""

import warnings

from ._version import __version__

#: Version of the fitted state's layout. Raise it when attributes change
#: meaning; loading refuses layouts newer than this.
FORMAT_VERSION = 1
_FORMAT_KEY = "_sklearn_taskres_format"


class VersionedStateMixin:
    """Adds the format version to the state (pickles, skops files) and checks it on load."""

    def __getstate__(self):
        # object.__getstate__ returns the instance's own __dict__: copy it, or
        # pickling would add the key to the estimator itself.
        state = dict(super().__getstate__())
        state[_FORMAT_KEY] = FORMAT_VERSION
        return state

    def __setstate__(self, state):
        state = dict(state)
        check_format(state.pop(_FORMAT_KEY, None), type(self).__name__)
        super().__setstate__(state)


def check_format(version, what):
    """Warn about a state without a format version; refuse one newer than this release's."""
    if version is None:
        warnings.warn(
            f"this {what} was saved without a sklearn-taskres format version, by a release "
            "older than 0.1 or another program; its fitted state may not load correctly. "
            "Refit it with this release.",
            UserWarning,
            stacklevel=3,
        )
    elif version > FORMAT_VERSION:
        raise ValueError(
            f"expected a {what} saved in format {FORMAT_VERSION} or older; got format {version}, "
            f"written by a newer sklearn-taskres than this one ({__version__}). Upgrade: "
            "pip install -U sklearn-taskres"
        )
