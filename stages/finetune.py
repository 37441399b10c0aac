"""DVC stage `finetune`: the full model from the pretrained weights → data/models/finetune.pt, also logged to
MLflow as a model (with its prepared datasets as run inputs)."""

from cliphand.train.experiment import run_finetune
from cliphand.pipeline.stage import stage_context
from cliphand.pipeline.tracking import log_trained_model

with stage_context("finetune", data_parallel=True) as st:  # under torchrun when distributed asks for it
    out = st.paths.finetune_model
    history = run_finetune(st.cfg, st.paths, out, log=st.run.log_metrics)
    log_trained_model(st.run, out, {"training": st.paths.prep_split("train"), "validation": st.paths.prep_split("val")},
                      example_set="validation")
    st.finish({"epochs": len(history), "total_steps": sum(h["steps"] for h in history),
               "train_s": round(sum(h["seconds"] for h in history), 1),
               **{f"final_{k}": v for k, v in history[-1].items() if k not in ("epoch", "steps")}})
