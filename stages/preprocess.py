"""DVC stage `preprocess`: every split the pipeline reads (the training source's train/val/test and the
external benchmarks named in params) as square crops at the model input size with crop intrinsics and
uvd targets → data/prep/<split>/, plus the template mesh → data/prep/template.npz. Left hands are
mirrored to right hands (see cliphand.data.readers.sources)."""

from cliphand.data.splits import prepare_all
from cliphand.pipeline.stage import stage_context

with stage_context("preprocess") as st:
    st.finish(prepare_all(st.cfg, st.paths))
