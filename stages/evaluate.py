"""DVC stage `evaluate@<benchmark>`: metrics.json and predictions of the finetuned model on one benchmark."""

import sys

from cliphand.experiment import run_evaluation
from cliphand.io import save_npz
from cliphand.stage import stage_context

name = sys.argv[1]
with stage_context(f"evaluate@{name}") as st:
    bench = st.params["evaluate"]["benchmarks"][name]
    scores, preds = run_evaluation(st.path("data/models/finetune.pt"), st.root, bench["data"], bench.get("text"),
                                   st.params)
    save_npz(st.path(f"data/eval/{name}/predictions.npz"), **preds)
    st.run.log_artifact(st.path(f"data/eval/{name}/predictions.npz"))
    st.finish(scores, f"data/eval/{name}/metrics.json")
