"""DVC stage `download`: the rigged WebXR hand (npm package, integrity-checked), the real-world test set
and the gesture poses of Ge et al. (local copy or the public repository) → data/raw/."""

from cliphand.data.download import fetch_gestures, fetch_realworld, fetch_webxr_hand
from cliphand.pipeline.stage import stage_context

with stage_context("download") as st:
    web, rw, ges = st.cfg.download.webxr, st.cfg.download.realworld, st.cfg.download.gestures
    local = {k: st.paths.resolve(src.local_dir) if src.local_dir else None
             for k, src in (("webxr", web), ("realworld", rw), ("gestures", ges))}
    hand = fetch_webxr_hand(st.paths.hand_glb, package=web.package, version=web.version, file=web.file,
                            integrity=web.integrity, glb_sha256=web.glb_sha256, local_dir=local["webxr"])
    real = fetch_realworld(st.paths.realworld_raw, local_dir=local["realworld"], repo=rw.repo, subdir=rw.subdir)
    gestures = fetch_gestures(st.paths.gestures, local_dir=local["gestures"], repo=ges.repo,
                              path_in_repo=ges.path_in_repo)
    st.run.set_tags({"download.webxr_route": str(hand.get("route")), "download.realworld_route": str(real.get("route"))})
    st.finish({"webxr": hand, "realworld": real, "gestures": gestures})
