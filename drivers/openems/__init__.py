"""drivers/openems"""
