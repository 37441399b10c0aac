"""DVC stage `ablate@<row>`: one row of the paper's ablations (Tables 3-5): finetune from the shared
pretrained checkpoint with the row's settings, then evaluate on the synthetic val/test splits and the
real-world set. MLflow runs are grouped under a parent run named `ablate`."""

import sys

from cliphand.experiment import run_evaluation, run_finetune
from cliphand.stage import stage_context

row = sys.argv[1]
with stage_context(f"ablate@{row}", parent="ablate") as st:
    ab = st.params["ablate"]
    settings = {"epochs": ab["epochs"], "batch_size": ab["batch_size"], "n_joints": ab["n_joints"], "n_train": ab["n_train"],
                **(ab["runs"][row] or {})}
    out = st.path(f"data/ablate/{row}/model.pt")
    history = run_finetune(st.params, st.root, out, overrides=settings, log=st.run.log_metrics)
    text_of = {"synth_val": "val", "synth_test": "test"}
    results = {"settings": settings, "train_seconds": sum(h["seconds"] for h in history)}
    for data in ab["eval_on"]:
        text = text_of.get(data) if int(settings["n_joints"]) == int(st.params["text"]["n_joints"]) else None
        scores, _ = run_evaluation(out, st.root, data, text, st.params)
        results[data] = scores
    st.finish(results, f"data/ablate/{row}/metrics.json")
