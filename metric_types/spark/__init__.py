"""Spark plumbing: the one session per process and the readers of the columnar archive."""
