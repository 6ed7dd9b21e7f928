"""synpo: preference learning for video-captioning VLMs (SynPO), end to end on Ray."""

__version__ = "0.1.0"
