"""Errors a user can cause and fix; the edges print them as one line, never a traceback."""


class MinbumpError(Exception):
    """A user-facing failure: bad ref, unparsable config, unreachable repo.

    The CLI prints ``minbump: <message>`` and exits 2; the web service logs it
    and records the job as failed without retrying.
    """

    exit_code = 2


class ConfigError(MinbumpError):
    """The configuration file is invalid; the message names file, line and key path."""


class Interrupted(MinbumpError):
    """Ctrl-C during a long command: exit 130, the shell's status for a process ended by SIGINT."""

    exit_code = 130
