"""The exception tree of emsctl: one root, a few branches, builtins mixed in where they fit.

Every error a user can see derives from :class:`EmsError` and carries one clear sentence.
Low-level errors (pyserial, bleak, OS) are translated at the link boundary with ``raise … from``.
The branches are defined here; the leaves live beside the code that raises them (module in
brackets). ``tests/test_errors.py`` fails when an error class is missing from this drawing.

::

    EmsError
    ├── InputError (ValueError)            bad user input: files, flags, URLs       → exit 2
    │   ├── ProgramError                   a program file that does not load
    │   ├── LimitsFileError                a limits file that is invalid or tries to loosen
    │   ├── ProfileError [profile]         a profile that is unreadable or lacks what is needed
    │   ├── GateRefused [screening]        the screening or a before-session check says no
    │   ├── LedgerError                    the dose ledger cannot be read, trusted or written
    │   ├── NotAJournalError [journal]     a journal path that is not a regular file
    │   ├── JournalCorruptError [journal]  a journal with a bad line or no header
    │   └── PlotExtraMissingError [plotting] matplotlib is not installed
    ├── ValidationFailed                   a program that loads but breaks a limit    → exit 1
    ├── SafetyViolation                    the guard caught a setpoint beyond a limit → exit 1
    ├── DoseLimitReached [dose_rules]      a dose limit (L20) would be exceeded       → exit 1
    ├── JournalWriteError [journal]        a journal could not be written             → exit 1
    ├── DeviceError                        a device answered with an error          → exit 1
    │   ├── ProtocolError (ValueError)     bytes that do not decode
    │   │   ├── MessageDecodeError [drivers.sciencemode2/4.protocol]   a frame whose body is bad
    │   │   │   └── UnknownCommandError [drivers.sciencemode2/4.protocol]  an unknown command
    │   ├── DeviceTimeoutError (TimeoutError) no answer in time
    │   ├── LinkLostError (ConnectionError) the link went away
    │   ├── DriverStoppedError [contract]  output asked of a stopped driver
    │   ├── NoRecorderError (AttributeError) [contract]  a real device records nothing
    │   └── BluetoothUnavailableError [drivers.links.ble]  no usable Bluetooth adapter
    └── SessionAborted                     a session ended by a fault               → exit 1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "DeviceError",
    "DeviceTimeoutError",
    "EmsError",
    "InputError",
    "LedgerError",
    "LimitsFileError",
    "LinkLostError",
    "ProgramError",
    "ProtocolError",
    "SafetyViolation",
    "SessionAborted",
    "SourceProblem",
    "ValidationFailed",
]


class EmsError(Exception):
    """Root of every emsctl error. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1


class InputError(EmsError, ValueError):
    """Bad input from the user: a file, a flag, a URL. Nothing was changed."""

    exit_code = 2


class SourceProblem(NamedTuple):
    """One problem of an input file: a short title, what is wrong, and where when known.

    ``line`` and ``col`` count from 1; None when the problem has no place in the file (a
    missing top-level key, an unreadable file).
    """

    title: str
    message: str
    line: int | None = None
    col: int | None = None


class ProgramError(InputError):
    """A program file that cannot be loaded (syntax, unknown keys, bad values).

    ``str()`` is the one sentence for people; ``problems`` has each problem on its own, with
    its line and column where known (for CI annotations).
    """

    def __init__(self, message: str, problems: Sequence[SourceProblem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[SourceProblem, ...] = tuple(problems)


class LimitsFileError(InputError):
    """A limits file that is invalid or tries to loosen a ceiling."""


class LedgerError(InputError):
    """The dose ledger cannot be read, trusted or written: no real-device session runs (exit 2)."""


class ValidationFailed(EmsError):
    """A program or plan that breaks at least one limit."""


class SafetyViolation(EmsError):
    """The runtime guard refused a setpoint; the device has been stopped."""


class DeviceError(EmsError):
    """A device or its link reported a failure."""


class ProtocolError(DeviceError, ValueError):
    """Bytes or frames that do not decode according to the protocol document."""


class DeviceTimeoutError(DeviceError, TimeoutError):
    """A device did not answer in time."""


class LinkLostError(DeviceError, ConnectionError):
    """The link to the device was lost."""


class SessionAborted(EmsError):
    """A session ended because of a fault (not by the user)."""
