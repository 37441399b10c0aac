"""DVC stage `evaluate@<benchmark>`: metrics.json (the benchmark's protocol) and predictions.npz of the
finetuned model; with a MANO template (778 vertices) also pred.json, FreiHAND's scorer format
``[xyz_list, verts_list]`` (metres, camera frame), for the official eval.py."""

import sys

from cliphand.data.readers.freihand import NUM_VERTS, write_prediction_json
from cliphand.train.experiment import run_evaluation
from cliphand.io import save_npz
from cliphand.pipeline.stage import stage_context

name = sys.argv[1]
with stage_context(f"evaluate@{name}") as st:
    bench, out = st.cfg.evaluate.benchmarks[name], st.paths.eval_dir(name)
    scores, preds = run_evaluation(st.paths.finetune_model, st.paths, bench.data, bench.text, st.cfg)
    save_npz(out / "predictions.npz", **preds)
    if preds["verts"].shape[1] == NUM_VERTS:
        write_prediction_json(out / "pred.json", preds["joints"], preds["verts"])
    st.run.log_artifact(out / "predictions.npz")
    st.finish(scores, out / "metrics.json")
