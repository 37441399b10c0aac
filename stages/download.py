"""DVC stage `download`: the rigged WebXR hand (npm package, integrity-checked), the real-world test set
and the gesture poses of Ge et al. (local copy or the public repository) → data/raw/."""

from cliphand.data.download import fetch_gestures, fetch_realworld, fetch_webxr_hand
from cliphand.pipeline.stage import stage_context

with stage_context("download") as st:
    web, rw = st.params["download"]["webxr"], st.params["download"]["realworld"]
    hand = fetch_webxr_hand(st.path("data/raw/right.glb"), package=web["package"], version=str(web["version"]),
                            file=web["file"], integrity=web["integrity"], glb_sha256=web.get("glb_sha256"),
                            local_dir=st.path(web["local_dir"]) if web.get("local_dir") else None)
    real = fetch_realworld(st.path("data/raw/realworld"), local_dir=st.path(rw["local_dir"]) if rw.get("local_dir") else None,
                           repo=rw["repo"], subdir=rw["subdir"])
    ges = st.params["download"]["gestures"]
    gestures = fetch_gestures(st.path("data/raw/handGestures.txt"),
                              local_dir=st.path(ges["local_dir"]) if ges.get("local_dir") else None, repo=rw["repo"])
    st.run.set_tags({"download.webxr_route": str(hand.get("route")), "download.realworld_route": str(real.get("route"))})
    st.finish({"webxr": hand, "realworld": real, "gestures": gestures})
