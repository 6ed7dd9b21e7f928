"""Preference training (SynPO or a DPO-family baseline) of a video VLM with LoRA.

Local, one process (CPU or one GPU), the embedded default:

    python jobs/train.py --config jobs/configs/train_local.yaml pairs=runs/demo/pairs.parquet

Every config field can be overridden with ``key=value`` (``synpo config show train`` lists them).
Writes ``metrics.jsonl``, ``training_curves.png`` (the paper's Fig. 3 diagnostics), ``config.yaml``,
``summary.json`` and the best epoch's LoRA adapter (``best_adapter/``) to ``output_dir``.
"""

from __future__ import annotations

import argparse
import sys

from synpo.config.loader import ConfigError, load_config
from synpo.pairs import PairSchemaError
from synpo.training.config import TrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML TrainConfig (see `synpo config show train`)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. objective=dpo optim.max_steps=10")
    args = parser.parse_args(argv)
    try:
        config = load_config(TrainConfig, args.config, args.overrides)
        if not config.pairs:
            raise ConfigError("pairs: required — give the preference pairs, e.g. pairs=runs/demo/pairs.parquet")
        from synpo.training.local import run_local

        result = run_local(config)
    except (ConfigError, PairSchemaError, FileNotFoundError) as error:
        print(f"train: error: {error}", file=sys.stderr)
        return 2
    print(f"done: {result.steps} steps, best epoch {result.best_epoch} ({config.best_metric} = {result.best_value}); outputs in {config.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
