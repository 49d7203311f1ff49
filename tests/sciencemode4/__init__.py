"""Tests of the emulated P24; a package so that module names do not clash with sciencemode2."""
