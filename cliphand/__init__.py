"""cliphand: a reproducible experiment pipeline for CLIP-Hand3D (Guo et al., ACM MM 2023).

The library is importable without DVC or MLflow running; the thin entry points in ``stages/``
read ``params.yaml`` and call it.
"""

__version__ = "0.1.0"
