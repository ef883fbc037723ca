"""From a raw TOML dict to a Config: keys and types from the dataclasses, then the value rules.

Every problem is collected (not only the first), each as "where: key: message", where is the
file:line or the --set; a key with an unknown-key or type problem keeps its default and gets no
second complaint. After MAX_PROBLEMS problems the rest are only counted, so 100,000 unknown keys
cost no more than a few dozen (no did-you-mean search for the ones nobody will read).
"""

from __future__ import annotations

from trainer.config import branch_rules, rules, variants
from trainer.config.builder import BuilderBase
from trainer.config.schema import VARIANTS, Config, ConfigError


class Builder(BuilderBase):
    """Builds a Config from a raw TOML dict: the keys and types, then the value rules and [[variants]]."""

    def build(self) -> Config:
        cfg = self._dataclass(Config, {k: v for k, v in self.raw.items() if k != VARIANTS}, ())
        rules.check_values(self, cfg)
        if VARIANTS in self.raw:
            cfg.variants = variants.build_variants(self, self.raw[VARIANTS], cfg)
        if self.whole:
            rules.check_run_count(self, cfg)
            branch_rules.check_branch(self, cfg)
            branch_rules.check_schedule(self, cfg)
        if self.problems:
            raise ConfigError(self.problems, omitted=self.omitted)
        return cfg
