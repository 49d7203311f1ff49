"""emsctl: run electrical muscle stimulation sessions safely from the command line and Python.

The public API is listed in ``__all__``. Names other than the errors are imported lazily on
first use (PEP 562), so ``import emsctl`` and ``emsctl --help`` stay cheap; importing this
package never imports bleak, pyserial or matplotlib.

Run a program on the simulator and read what it delivered (docs/python-api.md)::

    import emsctl
    r = emsctl.run("circulation")                 # simulator, virtual time, no journal
    print(r.end_reason, r.stimulation_s, [c.peak_ma for c in r.channels])
"""

from __future__ import annotations

import importlib
import sys
import types
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
    from .api import open_device, run
    from .clock import RealClock, VirtualClock
    from .contract import (
        Capabilities,
        ChannelSetpoint,
        Driver,
        DriverStoppedError,
        NoRecorderError,
        OutputRecord,
        Telemetry,
    )
    from .devices import OpenOptions
    from .limits import CEILINGS, DEFAULTS, Limits
    from .limits_file import load_limits_file
    from .loader import LoadedProgram, builtin_names, load_program
    from .plan import Plan, compile_plan
    from .program import Program
    from .results import PULSE_DTYPE, ChannelResult, CommandRecord, RunResult
    from .runner import execute, prepare_run
    from .session import Session
    from .verify import Violation, verify

__version__ = "0.1.0"

#: public name → module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "CEILINGS": "limits",
    "Capabilities": "contract",
    "ChannelResult": "results",
    "ChannelSetpoint": "contract",
    "CommandRecord": "results",
    "DEFAULTS": "limits",
    "Driver": "contract",
    "DriverStoppedError": "contract",
    "Limits": "limits",
    "LoadedProgram": "loader",
    "NoRecorderError": "contract",
    "OpenOptions": "devices",
    "OutputRecord": "contract",
    "PULSE_DTYPE": "results",
    "Plan": "plan",
    "Program": "program",
    "RealClock": "clock",
    "RunResult": "results",
    "Session": "session",
    "Telemetry": "contract",
    "Thresholds": "amplitude",
    "Violation": "verify",
    "VirtualClock": "clock",
    "builtin_names": "loader",
    "compile_plan": "plan",
    "execute": "runner",
    "load_limits_file": "limits_file",
    "load_program": "loader",
    "open_device": "api",
    "prepare_run": "runner",
    "run": "api",
    "verify": "verify",
}

__all__ = [
    "CEILINGS",
    "DEFAULTS",
    "PULSE_DTYPE",
    "Capabilities",
    "ChannelResult",
    "ChannelSetpoint",
    "CommandRecord",
    "DeviceError",
    "DeviceTimeoutError",
    "Driver",
    "DriverStoppedError",
    "EmsError",
    "InputError",
    "Limits",
    "LimitsFileError",
    "LinkLostError",
    "LoadedProgram",
    "NoRecorderError",
    "OpenOptions",
    "OutputRecord",
    "Plan",
    "Program",
    "ProgramError",
    "ProtocolError",
    "RealClock",
    "RunResult",
    "SafetyViolation",
    "Session",
    "SessionAborted",
    "Telemetry",
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
    "run",
    "verify",
]


class _Package(types.ModuleType):
    """The ``emsctl`` module: a public name that is also a submodule's name stays the name.

    Importing the submodule ``emsctl.verify`` sets the package's ``verify`` to the module,
    which would hide the function ``emsctl.verify``; here the function is kept instead (the
    module is still ``sys.modules["emsctl.verify"]`` and ``from emsctl.verify import …``).
    """

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'emsctl' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
