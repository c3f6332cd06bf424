"""Datasets: the Aff-Wild2 layout, class-folder sets, unlabelled pools, samplers and transforms.

The names of the splits that ``ssl.unlabelled`` may put in the pool live here, not in
``sources.py``, so that the config reads them without importing the readers (start-up time of
``fervid predict``, which builds a config from every model file).
"""

SPLIT_SOURCE = "split:"
"""``ssl.unlabelled`` entries ``split:NAME`` put a split's frames, labels hidden, in the pool."""
SPLIT_SOURCES = ("train", "validation", "test")
