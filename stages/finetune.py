"""DVC stage `finetune`: the full model end to end from the pretrained weights → data/models/finetune.pt."""

from cliphand.experiment import run_finetune
from cliphand.stage import stage_context

with stage_context("finetune") as st:
    history = run_finetune(st.params, st.root, st.path("data/models/finetune.pt"), log=st.run.log_metrics)
    st.finish({"epochs": len(history), "total_steps": sum(h["steps"] for h in history),
               "train_s": round(sum(h["seconds"] for h in history), 1),
               **{f"final_{k}": v for k, v in history[-1].items() if k not in ("epoch", "steps")}})
