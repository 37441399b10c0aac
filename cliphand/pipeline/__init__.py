"""Stage plumbing and tracking: what every DVC stage entry point shares (settings check, MLflow run, metrics
file) and the MLflow store. The only package that imports MLflow and DVC."""
