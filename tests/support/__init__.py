"""Helpers shared by test folders (importable as ``support.…``; pytest puts ``tests/`` on the
path through the ``pythonpath`` setting in pyproject.toml)."""
