"""emsctl: run electrical muscle stimulation sessions safely from the command line and Python.

Importing this package must stay cheap: it never imports bleak, pyserial or matplotlib.
"""

from __future__ import annotations

from .errors import (
    DeviceError,
    DeviceTimeoutError,
    EmsError,
    InputError,
    LimitsFileError,
    LinkLostError,
    ProgramError,
    ProtocolError,
    SafetyViolation,
    SessionAborted,
    ValidationFailed,
)

__version__ = "0.1.0"

__all__ = [
    "DeviceError",
    "DeviceTimeoutError",
    "EmsError",
    "InputError",
    "LimitsFileError",
    "LinkLostError",
    "ProgramError",
    "ProtocolError",
    "SafetyViolation",
    "SessionAborted",
    "ValidationFailed",
    "__version__",
]
