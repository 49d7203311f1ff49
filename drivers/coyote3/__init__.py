"""drivers/coyote3"""
