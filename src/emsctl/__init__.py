"""emsctl: run electrical muscle stimulation sessions safely from the command line and Python.

The public API is listed in ``__all__``. Names other than the errors are imported lazily on
first use (PEP 562), so ``import emsctl`` and ``emsctl --help`` stay cheap; importing this
package never imports bleak, pyserial or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .amplitude import Thresholds
    from .clock import RealClock, VirtualClock
    from .devices import open_device
    from .limits import CEILINGS, DEFAULTS, Limits, load_limits_file
    from .loader import builtin_names, load_program
    from .plan import Plan, compile_plan
    from .program import Program
    from .runner import execute, prepare_run
    from .session import Session
    from .verify import Violation, verify

__version__ = "0.1.0"

#: public name → module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "CEILINGS": "limits",
    "DEFAULTS": "limits",
    "Limits": "limits",
    "Plan": "plan",
    "Program": "program",
    "RealClock": "clock",
    "Session": "session",
    "Thresholds": "amplitude",
    "VirtualClock": "clock",
    "Violation": "verify",
    "builtin_names": "loader",
    "compile_plan": "plan",
    "execute": "runner",
    "load_limits_file": "limits",
    "load_program": "loader",
    "open_device": "devices",
    "prepare_run": "runner",
    "verify": "verify",
}

__all__ = [
    "CEILINGS",
    "DEFAULTS",
    "DeviceError",
    "DeviceTimeoutError",
    "EmsError",
    "InputError",
    "Limits",
    "LimitsFileError",
    "LinkLostError",
    "Plan",
    "Program",
    "ProgramError",
    "ProtocolError",
    "RealClock",
    "SafetyViolation",
    "Session",
    "SessionAborted",
    "Thresholds",
    "ValidationFailed",
    "Violation",
    "VirtualClock",
    "__version__",
    "builtin_names",
    "compile_plan",
    "execute",
    "load_limits_file",
    "load_program",
    "open_device",
    "prepare_run",
    "verify",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'emsctl' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
