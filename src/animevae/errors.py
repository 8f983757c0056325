"""One exception type for everything a user can fix: the CLI prints its message on one line, exit 2."""


class UserError(Exception):
    """Bad input, a missing file, an unreachable Hub: say what, where, and what to do."""
