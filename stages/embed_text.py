"""DVC stage `embed_text`: builds the per-axis joint-order prompts (paper §3.1) of the synthetic splits
and encodes them once with the frozen text encoder → data/text/<split>_n<N>.npz.

Prompts follow the camera-frame pose of the rendered sample, which is the pose of training view a
(photometric augmentation only), so the cache stays valid under augmentation (cliphand.data.augment).
Train caches are built for every N the pipeline uses (text.n_joints and the ablation rows); val/test
caches (for retrieval) for text.n_joints.
"""

import numpy as np

from cliphand.experiment import prep_dir, text_path
from cliphand.stage import stage_context
from cliphand.text.cache import build_text_cache, save_text_cache
from cliphand.text.encoders import build_encoder

with stage_context("embed_text") as st:
    text, ab = st.params["text"], st.params["ablate"]
    main_n = int(text["n_joints"])
    ns = sorted({main_n, int(ab["n_joints"])} | {int(r["n_joints"]) for r in ab["runs"].values() if r and "n_joints" in r})
    encoder = build_encoder(text)
    # train: every N (the ablation-only N values just for the ablation's training subset)
    jobs = [("train", n, None if n == main_n else int(ab["n_train"])) for n in ns] + [("val", main_n, None), ("test", main_n, None)]
    metrics = {"encoder": encoder.fingerprint(), "n_values": ns}
    for split, n, limit in jobs:
        joints = np.load(prep_dir(st.root, f"synth_{split}") / "labels.npz")["joints"][:limit]
        cache = build_text_cache(joints, n, int(st.params["seed"]), encoder,
                                 {"template": text.get("template", "auto")}, batch_size=int(text.get("batch_size", 64)))
        save_text_cache(text_path(st.root, split, n), cache)
        metrics[f"{split}_n{n}"] = {"samples": int(len(cache["prompts"])), "feature_shape": list(cache["feats"].shape[2:])}
    st.finish(metrics)
