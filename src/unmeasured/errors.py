"""The library's exception hierarchy.

Every error a user can cause derives from :class:`InputError` (a ``ValueError``): the CLI turns it
into one line on stderr and exit code 2. Messages name the file or field at fault and, where a
choice was wrong, the allowed values.
"""

from __future__ import annotations

from collections.abc import Iterable


class UnmeasuredError(Exception):
    """Root of all errors raised on purpose by ``unmeasured``."""


class InputError(UnmeasuredError, ValueError):
    """Bad input from the user: a file, a field, an argument. Exit code 2 in the CLI."""


class ConfigError(InputError):
    """The configuration file or one of its fields is invalid."""


class DataError(InputError):
    """A data file or array is missing, malformed or inconsistent."""


class TargetError(InputError):
    """The model under audit cannot be loaded or queried as configured."""


class UntrustedPickleError(TargetError):
    """Loading would unpickle a file, which can run arbitrary code; needs ``--trust-pickle``."""


class MissingDependencyError(InputError):
    """An optional package or system package is needed and not installed."""


class CapabilityError(UnmeasuredError, TypeError):
    """An audit needs something the target cannot give (e.g. gradients from a black box)."""


def one_of(values: Iterable[str]) -> str:
    """Format allowed values for an error message: ``'a', 'b' or 'c'``."""
    quoted = [f"'{v}'" for v in sorted(values)]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]
