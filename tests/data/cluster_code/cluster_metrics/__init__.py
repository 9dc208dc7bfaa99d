"""A user's custom metric package that only the driver's PYTHONPATH finds (tests of clusters)."""
