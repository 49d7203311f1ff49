"""ScienceMode4 (Hasomed P24): the pure codec (framing, messages, setpoint mapping)."""
