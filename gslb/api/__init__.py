"""The admin API of gslb serve, and the status page it serves."""
