"""DVC stage `pretrain`: visual encoder + joint regressor (paper §4.2) → data/models/pretrain.pt."""

from cliphand.train.experiment import run_pretrain
from cliphand.pipeline.stage import stage_context

with stage_context("pretrain", data_parallel=True) as st:  # under torchrun when distributed asks for it
    history = run_pretrain(st.cfg, st.paths, st.paths.pretrain_model, log=st.run.log_metrics)
    st.finish({"epochs": len(history), "total_steps": sum(h["steps"] for h in history),
               "train_s": round(sum(h["seconds"] for h in history), 1),
               **{f"final_{k}": v for k, v in history[-1].items() if k not in ("epoch", "steps")}})
