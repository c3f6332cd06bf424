"""fervid: facial expression recognition in video (semi-supervised frame encoder + temporal
encoder, after arXiv 2403.11942)."""

__version__ = "0.1.0"
