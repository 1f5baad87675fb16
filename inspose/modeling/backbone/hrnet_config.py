"""The ``MODEL.HRNET`` keys live in ``inspose.config.hrnet`` (the config imports no model code);
re-exported here for the backbone package."""
from ...config.hrnet import add_hrnet_config

__all__ = ["add_hrnet_config"]
