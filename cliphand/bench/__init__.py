"""Speed: timing helpers, the paper's Table 6 on this machine, loader and training-step throughput, and the
ONNX export with its parity and latency."""
