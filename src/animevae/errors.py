"""One exception type for everything a user can fix: the CLI prints its message on one line, exit 2."""


class UserError(Exception):
    """Bad input, a missing file, an unreachable Hub: say what, where, and what to do."""


class Interrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; the message says how to resume."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code
