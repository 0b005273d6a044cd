"""User-facing errors: the CLI prints these as one line and exits non-zero."""


class NsplayerError(Exception):
    """A problem the user can fix; the message says what happened and what to do next."""

    exit_code = 1
