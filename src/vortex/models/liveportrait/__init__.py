"""LivePortrait (KwaiVGI), our own implementation, state-dict compatible with the public weights.

One network per module, as in the public code: F (appearance_feature_extractor), M
(motion_extractor on convnextv2), W (warping_network on dense_motion), G (spade_generator),
the stitching / eye / lip MLPs (stitching_retargeting); the keypoint geometry in camera; the
architecture numbers in config; the bundle and the on-disk format in networks.
"""

from .camera import get_rotation_matrix, headpose_pred_to_degree, transform_keypoint
from .config import FULL, MINIATURE, LivePortraitModelConfig, NetworkSize, model_config
from .networks import (
    WEIGHT_FILES,
    LivePortraitNetworks,
    build_networks,
    load_networks,
    save_miniature_liveportrait,
    weights_root,
)
from .stitching_retargeting import retarget_eye, retarget_lip, stitch

__all__ = [
    "FULL",
    "MINIATURE",
    "WEIGHT_FILES",
    "LivePortraitModelConfig",
    "LivePortraitNetworks",
    "NetworkSize",
    "build_networks",
    "get_rotation_matrix",
    "headpose_pred_to_degree",
    "load_networks",
    "model_config",
    "retarget_eye",
    "retarget_lip",
    "save_miniature_liveportrait",
    "stitch",
    "transform_keypoint",
    "weights_root",
]
