"""Config front door: YAML files validated by strict pydantic models, every error reported at once.

``models`` holds the base model, ``catalog`` the metric catalog (metric definitions,
segments, per-experiment selection) and ``loader`` turns a directory of YAML files
into validated specs plus a list of :class:`~udf.errors.ConfigIssue`.
"""
