"""DVC stage `benchmark`: Table 6 (latency per module at batch 1, throughput at batch 32, parameters, FLOPs)
of the default and the paper model, their ONNX exports (parity, onnxruntime timing) and the speed of the
pipeline itself (loader vs training step, text cache); see cliphand/bench/speed.py."""

from cliphand.bench.speed import run_model_benchmarks, run_pipeline_speed
from cliphand.pipeline.stage import stage_context

with stage_context("benchmark") as st:
    models = run_model_benchmarks(st.cfg, st.paths, st.paths.bench)
    pipeline = run_pipeline_speed(st.cfg, st.paths)
    st.finish({"models": models, "pipeline": pipeline})
