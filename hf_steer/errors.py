"""One exception type for every user-facing mistake.

The CLI prints ``str(error)`` on one line and exits with status 2; Python callers catch it like any
``ValueError``. The message always names the input and says how to fix it.
"""


class HfSteerError(ValueError):
    """A bad input or missing piece, explained in one line."""
