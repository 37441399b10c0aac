"""DVC stage `report`: reports/report.md and reports/figures/*.png from the pipeline's outputs
(cliphand.report.build); the report's own numbers go to reports/report_metrics.json, not data/metrics."""

from cliphand.report.build import build_report
from cliphand.pipeline.stage import stage_context

with stage_context("report") as st:
    out_md, fig_dir = st.paths.report_md, st.paths.figures
    summary = build_report(st.cfg, st.paths, out_md, fig_dir)
    st.run.log_artifact(out_md)
    st.run.log_artifact(fig_dir, "figures")
    st.finish({k: summary[k] for k in ("n_figures", "n_missing", "n_ablation_rows")}, st.paths.report_metrics)
