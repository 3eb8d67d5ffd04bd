"""Fixtures for the proxy tests (the helpers live in proxyhelpers.py)."""

from proxyhelpers import env

__all__ = ["env"]
