"""Settings of the synthetic-data generator: :func:`merge_cfg` (``params.yaml`` ``synth:`` over
:data:`cliphand.defaults.SYNTH_DEFAULTS`, checked) and :func:`draw_range` (one uniform draw from a ``[low, high]`` setting).
"""

from __future__ import annotations

import numpy as np

from cliphand.defaults import SYNTH_DEFAULTS, SYNTH_STAGE_KEYS

def merge_cfg(cfg: dict | None) -> dict:
    """``SYNTH_DEFAULTS`` updated by ``cfg`` (:data:`SYNTH_STAGE_KEYS` are dropped, so the whole params.yaml ``synth:``
    section can be passed). Raises ValueError naming unknown keys (typos in params.yaml)."""
    cfg = {k: v for k, v in (cfg or {}).items() if k not in SYNTH_STAGE_KEYS}
    unknown = sorted(set(cfg) - set(SYNTH_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown synth settings {unknown}; known: {sorted(SYNTH_DEFAULTS)}")
    return {**SYNTH_DEFAULTS, **cfg}


def draw_range(rng: np.random.Generator, lohi) -> float:
    """One uniform draw from the range setting ``lohi`` = [low, high]."""
    return rng.uniform(lohi[0], lohi[1])
