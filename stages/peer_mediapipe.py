"""DVC stage `peer_mediapipe`: MediaPipe Hands on the real-world photos, scored with our metrics and timed
on this machine (cliphand/peers/scoring.py). Without MediaPipe (`pip install '.[peers]'`) it records
that the peer was not run, and the report says so."""

from cliphand.io import save_npz
from cliphand.peers.mediapipe_hands import INSTALL_HINT, available
from cliphand.peers.scoring import evaluate_mediapipe
from cliphand.pipeline.stage import stage_context

with stage_context("peer_mediapipe") as st:
    out = st.paths.peer_mediapipe
    out.mkdir(parents=True, exist_ok=True)
    if not available():
        print(f"peer_mediapipe: MediaPipe is not installed, the peer row is not run ({INSTALL_HINT})")
        st.finish({"status": "not run", "reason": f"MediaPipe is not installed: {INSTALL_HINT}"})
    else:
        metrics, preds = evaluate_mediapipe(st.paths.realworld_raw, st.cfg.peers.mediapipe)
        save_npz(out / "predictions.npz", **preds)
        st.finish({"status": "run", **metrics})
