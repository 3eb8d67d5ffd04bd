"""gslb: a DNS-based global server load balancer."""

__version__ = "0.1.0"
