"""DVC stage `synthesize`: renders the synthetic hand data set from the rigged hand → data/synth/."""

import time

from cliphand.data.synth.synthesize import synthesize
from cliphand.pipeline.stage import stage_context

with stage_context("synthesize") as st:
    cfg = {**st.cfg.synth, "gestures_path": str(st.paths.gestures)}
    t0 = time.perf_counter()
    counts = synthesize(st.paths.hand_glb, st.paths.synth, n_train=cfg["n_train"], n_val=cfg["n_val"],
                        n_test=cfg["n_test"], seed=st.cfg.seed, cfg=cfg, workers=int(cfg.get("workers", 0)))
    st.finish({"samples": counts, "images_per_s": round(sum(counts.values()) / (time.perf_counter() - t0), 2)})
