"""DVC stage `ablate@<row>`: one row of the paper's ablations (Tables 3-5): finetune from the shared
pretrained checkpoint with the row's settings, once per seed (``ablate.seeds``, or the row's own
``seeds``), then evaluate every seed's model on ``ablate.eval_on``. The metrics file holds the per-seed
scores and their mean and sample standard deviation (cliphand.train.experiment.seed_summary). MLflow runs
are grouped under a parent run named `ablate`."""

import sys

from cliphand.train.experiment import run_ablation_row
from cliphand.pipeline.stage import stage_context

row = sys.argv[1]
with stage_context(f"ablate@{row}", parent="ablate") as st:
    out = st.paths.ablate_dir(row)
    results = run_ablation_row(st.cfg, st.paths, row, out / "models", log=st.run.log_metrics)
    st.finish(results, out / "metrics.json")
