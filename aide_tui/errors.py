"""Errors that end a command or a run with a clear message instead of a traceback."""


class UserError(Exception):
    """Bad input from the user (file, flag, setting): exit code 2, one line."""


class FatalRunError(Exception):
    """The run cannot continue (e.g. authentication failed): exit code 1."""

    def __init__(self, message: str, kind: str = "fatal"):
        super().__init__(message)
        self.kind = kind
