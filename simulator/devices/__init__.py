"""simulator/devices"""
