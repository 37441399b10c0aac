"""The names settings may take: the backbones, the data splits, the ablation switches (every setting's default
is its field's in :mod:`cliphand.config`).
"""

from __future__ import annotations

#: every backbone the visual encoder can build (cliphand/model/backbone.py, efficientnet_lite.py)
BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet18", "resnet34", "resnet50")

#: the splits of the training source (``data.train``) and the external benchmarks (cliphand/data/splits.py)
TRAIN_SPLITS = ("train", "val", "test")
EXTERNAL = ("realworld", "rhd_eval", "stb_eval")

#: the model switches of the ablation rows (paper Table 5): each module on (default) or off
MODEL_SWITCHES = ("use_clip", "use_projection", "use_sparse_to_dense")
