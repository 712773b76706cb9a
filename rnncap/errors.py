"""The one exception type for mistakes a user can fix.

The CLI turns an :class:`RnncapError` into a one-line message on stderr and
exit status 2; anything else is a bug and keeps its traceback.
"""


class RnncapError(ValueError):
    """Bad input or an unusable environment, with a message that says the fix."""
