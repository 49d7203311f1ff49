"""drivers/sciencemode2"""
