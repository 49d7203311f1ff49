"""Pure codec for openEMSstim / "Let Your Body Move" over USB serial and BLE (RN4020).

The one import path for drivers and the emulator; it re-exports the pieces, one idea per module,
implementing ``docs/protocols/openemsstim.md``:

* :mod:`.intensity` — intensity ↔ potentiometer wiper and the calibration window
  (docs/protocols/openemsstim.md §4.2, §4.3);
* :mod:`.commands` — host commands encoded for serial (``WV,0018,<HEX>.\\n``) and BLE (plain),
  the stop sequence (docs/protocols/openemsstim.md §8), and the firmware's command parser
  (docs/protocols/openemsstim.md §4);
* :mod:`.lines` — the firmware's line processing: trimming, the WV hex quirk,
  ``Connection End``, the single-character test handler, legacy plain text
  (docs/protocols/openemsstim.md §3, §4.4);
* :mod:`.diagnostics` — the debug lines the firmware prints; never replies
  (docs/protocols/openemsstim.md §2, §10).

The protocol has no replies, no acknowledgements and no checksum. Nothing here may do I/O,
read a clock, start threads or import pyserial/bleak; time belongs to the caller. Device-side
parsers never raise on received bytes; :class:`~emsctl.errors.ProtocolError` is raised only
for host values out of range and for misuse of the API.
"""

from __future__ import annotations

from emsctl.drivers.openems.commands import (
    CHANNELS,
    HOST_WV_HANDLE,
    INITIAL_ON_TIME_MS,
    MAX_ON_TIME_MS,
    NO_DIGITS,
    SHUTDOWN,
    SHUTDOWN_CHANNEL,
    ActionCommand,
    CalibrationOption,
    Command,
    HostCommand,
    InertOption,
    ParsedAction,
    ShutdownCommand,
    UnknownCommand,
    WindowBound,
    encode_ble,
    encode_option_plain,
    encode_serial,
    parse_command,
    stop_sequence,
)
from emsctl.drivers.openems.diagnostics import (
    DEBUG_LINE_END,
    DebugKind,
    DebugLine,
    DebugLineParser,
    encode_debug_line,
    parse_debug_line,
)
from emsctl.drivers.openems.intensity import (
    DEFAULT_WINDOW,
    MAX_INTENSITY_PCT,
    WIPER_MAX_STEPS,
    CalibrationWindow,
    firmware_option_steps,
    firmware_wiper_steps,
    intensity_pct_to_wiper_steps,
    option_pct_to_window_steps,
    to_int16,
    wiper_steps_to_intensity_pct,
)
from emsctl.drivers.openems.lines import (
    BLE_CHARACTERISTIC_UUID,
    BLE_MAX_VALUE_LEN,
    BLE_SERVICE_UUID,
    CONNECTION_END,
    CONNECTION_END_LINE,
    RN4020_WV_HANDLE,
    SERIAL_BAUDRATE,
    BlankLine,
    ConnectionEnd,
    DeviceInput,
    Firmware,
    LineParser,
    SingleCharAction,
    SingleCharCommand,
    classify_line,
    decode_wv_hex,
    decode_wv_line,
    rn4020_line,
)

__all__ = [
    "BLE_CHARACTERISTIC_UUID",
    "BLE_MAX_VALUE_LEN",
    "BLE_SERVICE_UUID",
    "CHANNELS",
    "CONNECTION_END",
    "CONNECTION_END_LINE",
    "DEBUG_LINE_END",
    "DEFAULT_WINDOW",
    "HOST_WV_HANDLE",
    "INITIAL_ON_TIME_MS",
    "MAX_INTENSITY_PCT",
    "MAX_ON_TIME_MS",
    "NO_DIGITS",
    "RN4020_WV_HANDLE",
    "SERIAL_BAUDRATE",
    "SHUTDOWN",
    "SHUTDOWN_CHANNEL",
    "WIPER_MAX_STEPS",
    "ActionCommand",
    "BlankLine",
    "CalibrationOption",
    "CalibrationWindow",
    "Command",
    "ConnectionEnd",
    "DebugKind",
    "DebugLine",
    "DebugLineParser",
    "DeviceInput",
    "Firmware",
    "HostCommand",
    "InertOption",
    "LineParser",
    "ParsedAction",
    "ShutdownCommand",
    "SingleCharAction",
    "SingleCharCommand",
    "UnknownCommand",
    "WindowBound",
    "classify_line",
    "decode_wv_hex",
    "decode_wv_line",
    "encode_ble",
    "encode_debug_line",
    "encode_option_plain",
    "encode_serial",
    "firmware_option_steps",
    "firmware_wiper_steps",
    "intensity_pct_to_wiper_steps",
    "option_pct_to_window_steps",
    "parse_command",
    "parse_debug_line",
    "rn4020_line",
    "stop_sequence",
    "to_int16",
    "wiper_steps_to_intensity_pct",
]
