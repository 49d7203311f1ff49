"""Simulated drivers: ``sim`` and every ``sim+<protocol>``, registered in the device table."""
