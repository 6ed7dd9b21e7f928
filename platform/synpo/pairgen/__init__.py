"""Pair generation: videos -> candidates and clip captions -> judge -> preference pairs, on Ray Data.

Each stage is a small callable over Arrow tables (:mod:`synpo.pairgen.rows`), testable without
Ray; :mod:`synpo.pairgen.pipeline` wires them into one streaming Ray Data plan.
"""
