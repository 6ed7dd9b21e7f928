"""The promotion job's typed config (``jobs/configs/promote*.yaml``; ``synpo config show promote``)."""

from __future__ import annotations

import pydantic

from synpo.config.base import StrictModel
from synpo.config.loader import ConfigError
from synpo.evaluation.config import EvalConfig
from synpo.promotion.serve_reload import ServeNotify
from synpo.registry.promotion import PromotionPolicy


class PromoteConfig(StrictModel):
    """Promote a registered version to the serving alias when its evaluation beats the holder's."""

    candidate: str | None = pydantic.Field(default=None, description="REQUIRED to promote: models:/NAME/VERSION")
    model_name: str = pydantic.Field(default="synpo-captioner", min_length=1, description="registered model of `rollback`")
    baseline: str | None = pydantic.Field(
        default=None,
        description="when the alias has no holder yet, compare the candidate with this model instead of only the floors "
        "(e.g. the base model folder it was trained from)",
    )
    policy: PromotionPolicy = pydantic.Field(default_factory=PromotionPolicy, description="when the alias moves")
    serve: ServeNotify = pydantic.Field(default_factory=ServeNotify, description="Serve deployments told to reload when the alias moves")
    eval: EvalConfig = pydantic.Field(
        default_factory=EvalConfig,
        description="how both versions are evaluated (its model is set per version; eval.output is the root, one folder per version)",
    )

    def require_candidate(self) -> tuple[str, str]:
        """(name, version) of ``candidate``; a version, not an alias (what is promoted must not move under us)."""
        from synpo.registry.resolve import REGISTRY_URI

        match = REGISTRY_URI.match(self.candidate or "")
        if match is None or match["version"] is None:
            raise ConfigError(f"candidate = {self.candidate!r}: required, as models:/NAME/VERSION (a version number, not an alias)")
        missing = [name for name in ("eval_set", "output") if not getattr(self.eval, name)]
        if missing:
            raise ConfigError(f"{', '.join('eval.' + name for name in missing)}: required, e.g. eval.eval_set=DIR/manifest.jsonl eval.output=DIR")
        return match["name"], match["version"]
