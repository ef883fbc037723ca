"""Typed configuration for a sweep: experiments.toml -> Config.

Pure Python (stdlib, tomli/tomllib and tomli-w; no torch, no Textual): the app validates a config
before it opens a window, and `python -m trainer` validates before anything trains.

One job per module:
- schema: the dataclasses with their defaults, the choices, ConfigError;
- bounds: the allowed range of every number, list, string, path and device, and of the file;
- load: reading the file (bounded), parsing TOML, `--set` overrides (`apply_overrides`);
- merge: the one merge of raw tables (`--set` into the file, a variant into the sections);
- keylines: where keys are in the text (file:line in messages);
- validate, coerce, rules, variants: keys and types, value rules, [[variants]];
- messages: values and keys cut to a readable length;
- write: config_to_dict and to_toml (tomli-w) for config.toml.
"""

from __future__ import annotations

from trainer.config.load import apply_overrides, config_from_toml, load_config, load_or_exit, parse_override
from trainer.config.schema import (
    CHOICES,
    DATASETS,
    DEFAULT_CONFIG_FILE,
    FAST_PATHS,
    FUSE_CHOICES,
    MODEL_NAMES,
    OPTIMIZERS,
    PIPELINES,
    PRECISIONS,
    SPLIT_METHODS,
    VARIANT_KEYS,
    VARIANT_NAME_RE,
    VARIANTS,
    BranchConfig,
    Config,
    ConfigError,
    DataConfig,
    GnsConfig,
    LrGridConfig,
    ModelConfig,
    OptimConfig,
    OutputConfig,
    PerfConfig,
    SplitBackwardConfig,
    SweepConfig,
    VariantConfig,
)
from trainer.config.write import config_to_dict, to_toml

__all__ = [
    "CHOICES",
    "DATASETS",
    "DEFAULT_CONFIG_FILE",
    "FAST_PATHS",
    "FUSE_CHOICES",
    "MODEL_NAMES",
    "OPTIMIZERS",
    "PIPELINES",
    "PRECISIONS",
    "SPLIT_METHODS",
    "VARIANT_KEYS",
    "VARIANT_NAME_RE",
    "VARIANTS",
    "BranchConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "GnsConfig",
    "LrGridConfig",
    "ModelConfig",
    "OptimConfig",
    "OutputConfig",
    "PerfConfig",
    "SplitBackwardConfig",
    "SweepConfig",
    "VariantConfig",
    "apply_overrides",
    "config_from_toml",
    "config_to_dict",
    "load_config",
    "load_or_exit",
    "parse_override",
    "to_toml",
]
