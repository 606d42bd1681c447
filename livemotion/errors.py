"""The one error type users see: a single line that says what went wrong and what to do."""


class LivemotionError(Exception):
    """A problem with the user's input or environment, phrased as advice.

    The CLI prints ``str(error)`` on one line and exits with status 2; no traceback.
    """
