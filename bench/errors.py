"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(ValueError):
    """Bad input from the user: an unknown name, a malformed file, missing data.

    Its message is one line that says what is wrong and what would be right.
    """
