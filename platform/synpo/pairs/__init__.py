"""Preference pairs: the schema shared by pair generation and training, readers and writers."""

from synpo.pairs.io import read_pairs, write_pairs
from synpo.pairs.schema import FIELD_NAMES, PAIR_SCHEMA, PairSchemaError

__all__ = ["FIELD_NAMES", "PAIR_SCHEMA", "PairSchemaError", "read_pairs", "write_pairs"]
