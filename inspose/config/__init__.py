"""InsPose's configuration: its keys, loading a config with clear errors, and validating values.

``defaults`` adds the keys (``add_inspose_config``, ``get_inspose_cfg``), ``hrnet`` the ``MODEL.HRNET``
keys of the HRNet trunk, ``loading`` builds a config from a YAML file and overrides
(``load_config``), ``validation`` checks the values when the model is built
(``validate_inspose_config``). Nothing here imports the model, so ``inspose.modeling`` can import
this package.
"""
from .defaults import add_inspose_config, get_inspose_cfg
from .errors import ConfigError
from .hrnet import add_hrnet_config
from .loading import all_keys, load_config
from .validation import INSTANCE_SCORE_MODES, KEYPOINT_SCORE_MODES, validate_inspose_config

__all__ = [
    "ConfigError",
    "INSTANCE_SCORE_MODES",
    "KEYPOINT_SCORE_MODES",
    "add_hrnet_config",
    "add_inspose_config",
    "all_keys",
    "get_inspose_cfg",
    "load_config",
    "validate_inspose_config",
]
