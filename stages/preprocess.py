"""DVC stage `preprocess`: square crops at the model input size, crop intrinsics and uvd targets, as
memory-mappable arrays → data/prep/{synth_train, synth_val, synth_test, realworld}. The real-world
left hands are mirrored to right hands (flip, negate x, u0' = 256 - u0')."""

import time

import numpy as np

from cliphand.data.preprocess import prepare_split, write_prepared
from cliphand.data.realworld import load_realworld
from cliphand.stage import stage_context

with stage_context("preprocess") as st:
    pp = st.params["preprocess"]
    size, depth_range, pad = int(pp["input_size"]), float(pp["depth_range"]), float(pp["pad"])
    counts = {}
    t0 = time.perf_counter()
    for split in ("train", "val", "test"):
        src = st.path(f"data/synth/{split}")
        images = np.load(src / "images.npy", mmap_mode="r")
        with np.load(src / "labels.npz") as z:
            labels = {k: z[k] for k in z.files}
        arrays = prepare_split(images, labels["K"], labels["joints"], labels["verts"], size, depth_range, pad)
        write_prepared(st.path(f"data/prep/synth_{split}"), arrays)
        counts[f"synth_{split}"] = len(arrays["images"])
    real = load_realworld(st.path("data/raw/realworld"), mirror=True)
    arrays = prepare_split(real["images"], real["K"], real["joints"], None, size, depth_range, pad, ids=real["ids"])
    write_prepared(st.path("data/prep/realworld"), arrays)
    counts["realworld"] = len(arrays["images"])
    d = arrays["uvd"][..., 2]
    st.finish({"samples": counts, "images_per_s": round(sum(counts.values()) / (time.perf_counter() - t0), 1),
               "realworld_depth_outside_range_frac": float(((d < 0) | (d > 1)).mean())})
