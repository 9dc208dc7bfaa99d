"""One module per metric type; :mod:`metric_types.registry` lists them."""
