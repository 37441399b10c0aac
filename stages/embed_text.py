"""DVC stage `embed_text`: the per-axis joint-order prompts (paper §3.1) of the train/val/test splits,
encoded once with the frozen text encoder → data/text/<split>_n<N>.npz (cliphand.text.cache.embed_splits)."""

from cliphand.text.cache import embed_splits
from cliphand.pipeline.stage import stage_context

with stage_context("embed_text") as st:
    st.finish(embed_splits(st.cfg, st.paths))
