"""Known-answer replication of the paper's claims in the toy world (``jobs/replicate.py``, docs/replication.md)."""
