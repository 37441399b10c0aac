"""DVC stage `synthesize`: renders the synthetic hand data set from the rigged hand → data/synth/."""

import time

from cliphand.data.synth.synthesize import synthesize
from cliphand.pipeline.stage import stage_context

with stage_context("synthesize") as st:
    t0 = time.perf_counter()
    counts = synthesize(st.paths.hand_glb, st.paths.gestures, st.paths.synth, st.cfg.synth, seed=st.cfg.seed)
    st.finish({"samples": counts, "images_per_s": round(sum(counts.values()) / (time.perf_counter() - t0), 2)})
