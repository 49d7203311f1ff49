"""Command-line interface (placeholder until the commands land)."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """Run EMS/TENS sessions safely."""
