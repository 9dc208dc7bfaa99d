"""Keyed functions: the little the pipeline does in Python (the sinks), each saying why."""
