"""Django-free RLHF library: model loading, generation, training and evaluation.

Everything here takes plain data (paths, dataclass configs, lists of dicts) and an optional
`RunControl` for progress and cancellation, so it can run from Celery, a notebook or
`python -m rlhf`. Nothing in this package may import Django or Celery.
"""

__version__ = "0.1.0"
