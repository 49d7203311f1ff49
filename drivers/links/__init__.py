"""drivers/links"""
