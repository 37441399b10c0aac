"""The CLIP-Hand3D model (paper §3): visual encoder, joint regressor, feature matching head, mesh regressor."""

from .backbone import Backbone
from .clip_head import FeatureMatchingHead, TextAdapter
from .cliphand3d import DEFAULTS, CLIPHand3D, load_template, merge_config
from .joint_regressor import JointRegressor, lixel_centres, soft_argmax
from .mesh_levels import MeshLevels, build_levels, farthest_points, nearest_assignment
from .mesh_regressor import MeshRegressor, gaussian_1d, render_heatmap3d, sample_at

__all__ = [
    "Backbone", "CLIPHand3D", "DEFAULTS", "FeatureMatchingHead", "JointRegressor", "MeshLevels", "MeshRegressor",
    "TextAdapter", "build_levels", "farthest_points", "gaussian_1d", "lixel_centres", "load_template",
    "merge_config", "nearest_assignment", "render_heatmap3d", "sample_at", "soft_argmax",
]
