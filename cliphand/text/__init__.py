"""Text side of CLIP-Hand3D (paper §3.1): pose-aware prompts, frozen text encoders, cached features.

- ``prompts``: joint names, per-axis ascending orders, prompt templates, token budgets;
- ``encoders``: ``MiniLMEncoder`` (offline default), ``OpenCLIPEncoder`` (the paper's CLIP),
  ``build_encoder``, ``order_sensitivity``;
- ``cache``: ``build_text_cache`` / ``save_text_cache`` / ``load_text_cache`` (data/text/<split>_n<N>.npz).
"""
