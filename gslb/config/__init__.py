"""Config directory → validated `gslb.model.Config`, every problem as file:line: message."""

from gslb.config.load import load_config, load_region_proxy

__all__ = ["load_config", "load_region_proxy"]
