"""metric_types package."""
