"""Scoring: the field's metrics (PA-MPJPE, MPVPE, PCK/AUC, F@5/F@15, retrieval), the benchmarks' protocols, and
running a trained model over a prepared split (inference)."""
