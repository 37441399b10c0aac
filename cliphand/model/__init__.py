"""The CLIP-Hand3D model (paper §3): visual encoder, joint regressor, feature matching head, mesh regressor."""

from cliphand.model.backbone import Backbone
from cliphand.model.clip_head import FeatureMatchingHead, TextAdapter
from cliphand.model.cliphand3d import CLIPHand3D
from cliphand.model.joint_regressor import JointRegressor, lixel_centres, soft_argmax
from cliphand.model.mesh_levels import MeshLevels, build_levels, farthest_points, nearest_assignment
from cliphand.model.mesh_regressor import MeshRegressor, gaussian_1d, render_heatmap3d, sample_at

__all__ = [
    "Backbone", "CLIPHand3D", "FeatureMatchingHead", "JointRegressor", "MeshLevels", "MeshRegressor",
    "TextAdapter", "build_levels", "farthest_points", "gaussian_1d", "lixel_centres",
    "nearest_assignment", "render_heatmap3d", "sample_at", "soft_argmax",
]
