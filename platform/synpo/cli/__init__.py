"""The ``synpo`` command line."""
