"""Fixtures for the plot tests: a PNG reader and the CLI entry point run in-process."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from emsctl.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PngSize = Callable[[Path], tuple[int, int]]
RunMain = Callable[..., tuple[int, str, str]]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


@pytest.fixture
def png_size() -> PngSize:
    """Width and height in pixels of a PNG file, after checking its signature and IHDR."""
    return _png_size


@pytest.fixture
def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunMain:
    """Run ``emsctl ARGS`` through the console entry point: (exit code, stdout, stderr)."""

    def run(*args: str, state: Path | None = None) -> tuple[int, str, str]:
        if state is not None:
            monkeypatch.setenv("EMSCTL_STATE_DIR", str(state))
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as stopped:
            assert isinstance(stopped.code, int | None)
            code = stopped.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return run
