"""The LivePortrait architecture, as numbers.

`FULL` holds the values of the public `src/config/models.yaml` (the human model). `MINIATURE` is
the same architecture a few channels wide, for tests and the cpu-miniature profile: it keeps the
interfaces of the real model (256² input, a 64×64 feature volume, 21 keypoints, 66 pose bins,
512² output, the retargeting MLPs' input/output sizes) so that code written against it runs
unchanged on the real weights.

Three numbers that the public code hard-codes are fields here so the miniature can shrink them:
the SPADE hidden width (128), the dense-motion mask kernel (7) and the generator's last block
width (64). `FULL` keeps the public values.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ...errors import ConfigError

NetworkSize = Literal["full", "miniature"]

NUM_KP = 21  # implicit keypoints of the human model
NUM_POSE_BINS = 66  # pitch / yaw / roll are classified into 66 bins of 3 degrees


@dataclass(frozen=True)
class AppearanceFeatureExtractorConfig:  # F
    image_channel: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 512
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6


@dataclass(frozen=True)
class MotionExtractorConfig:  # M: a ConvNeXt-V2 with keypoint / pose / expression heads
    num_kp: int = NUM_KP
    num_bins: int = NUM_POSE_BINS
    depths: tuple[int, ...] = (3, 3, 9, 3)  # convnextv2_tiny
    dims: tuple[int, ...] = (96, 192, 384, 768)


@dataclass(frozen=True)
class DenseMotionConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_depth: int = 16
    compress: int = 4
    mask_kernel_size: int = 7  # public: fixed 7 (the costliest convolution of W)


@dataclass(frozen=True)
class WarpingNetworkConfig:  # W
    num_kp: int = NUM_KP
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    estimate_occlusion_map: bool = True
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)


@dataclass(frozen=True)
class SpadeGeneratorConfig:  # G
    upscale: int = 2  # 256² → 512²
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    out_channels: int = 64  # public: constructor default, not in models.yaml
    spade_hidden: int = 128  # public: fixed 128

    @property
    def input_channels(self) -> int:
        return min(self.max_features, self.block_expansion * 2**self.num_down_blocks)


@dataclass(frozen=True)
class MlpConfig:
    input_size: int
    hidden_sizes: tuple[int, ...]
    output_size: int


@dataclass(frozen=True)
class StitchingRetargetingConfig:  # S and the two retargeting MLPs
    stitching: MlpConfig = MlpConfig(2 * 3 * NUM_KP, (128, 128, 64), 3 * NUM_KP + 2)  # [x_s, x_d] → Δx_d, Δ(tx, ty)
    lip: MlpConfig = MlpConfig(3 * NUM_KP + 2, (128, 128, 64), 3 * NUM_KP)  # [x_s, c_s_lip, c_d_lip]
    eye: MlpConfig = MlpConfig(3 * NUM_KP + 3, (256, 256, 128, 128, 64), 3 * NUM_KP)  # [x_s, c_s_eyes(2), c_d_eyes]


@dataclass(frozen=True)
class LivePortraitModelConfig:
    appearance_feature_extractor: AppearanceFeatureExtractorConfig = field(
        default_factory=AppearanceFeatureExtractorConfig
    )
    motion_extractor: MotionExtractorConfig = field(default_factory=MotionExtractorConfig)
    warping_module: WarpingNetworkConfig = field(default_factory=WarpingNetworkConfig)
    spade_generator: SpadeGeneratorConfig = field(default_factory=SpadeGeneratorConfig)
    stitching_retargeting_module: StitchingRetargetingConfig = field(default_factory=StitchingRetargetingConfig)

    def validate(self) -> "LivePortraitModelConfig":
        """Check that the networks' widths fit together (F's volume is W's input, W's output G's)."""
        f, w, g = self.appearance_feature_extractor, self.warping_module, self.spade_generator
        volume = f.reshape_channel * f.reshape_depth
        problems = []
        if f.max_features != volume:
            problems.append(f"F.max_features ({f.max_features}) != reshape_channel × reshape_depth ({volume})")
        if w.max_features != volume or w.reshape_channel != f.reshape_channel:
            problems.append("W.max_features / reshape_channel do not match F's feature volume")
        if w.dense_motion.reshape_depth != f.reshape_depth:
            problems.append("W.dense_motion.reshape_depth != F.reshape_depth")
        if w.block_expansion * 2**w.num_down_blocks != g.input_channels:
            problems.append("W's output width != G's input width")
        if w.num_kp != self.motion_extractor.num_kp:
            problems.append("W.num_kp != M.num_kp")
        if problems:
            raise ConfigError("LivePortrait model config: " + "; ".join(problems))
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "LivePortraitModelConfig":
        raw: dict[str, Any] = json.loads(text)
        try:
            s, w = raw["stitching_retargeting_module"], raw["warping_module"]
            return cls(
                appearance_feature_extractor=AppearanceFeatureExtractorConfig(**raw["appearance_feature_extractor"]),
                motion_extractor=_tuples(MotionExtractorConfig, raw["motion_extractor"]),
                warping_module=WarpingNetworkConfig(**{**w, "dense_motion": DenseMotionConfig(**w["dense_motion"])}),
                spade_generator=SpadeGeneratorConfig(**raw["spade_generator"]),
                stitching_retargeting_module=StitchingRetargetingConfig(
                    **{name: _tuples(MlpConfig, s[name]) for name in ("stitching", "lip", "eye")}
                ),
            ).validate()
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"LivePortrait model config JSON is malformed: {exc}") from None


def _tuples(cls: type, values: dict[str, Any]) -> Any:
    """JSON has no tuples; the frozen dataclasses want them (hashable, immutable)."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


FULL = LivePortraitModelConfig().validate()

# Sized for CPU speed (the cpu-miniature profile renders every frame of a slot): W's 3-D hourglass
# dominates (its input is 22 × (compress + 1) channels whatever the widths), so the volume depth
# is 2 (the least make_coordinate_grid allows) and the mask kernel 3; block_expansion 1 in W
# and G keep G's SPADE blocks at 256² cheap. W + G in batches of 4: ≈70 ms of one core a frame
# (≈45 ms on 2 cores). A batch of 1 is slower: PyTorch sends such small 3-D convolutions to its
# native kernel instead of oneDNN.
MINIATURE = LivePortraitModelConfig(
    appearance_feature_extractor=AppearanceFeatureExtractorConfig(
        block_expansion=8, max_features=16, reshape_channel=8, reshape_depth=2, num_resblocks=1
    ),
    motion_extractor=MotionExtractorConfig(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128)),
    warping_module=WarpingNetworkConfig(
        block_expansion=1, max_features=16, reshape_channel=8,
        dense_motion=DenseMotionConfig(
            block_expansion=1, max_features=16, num_blocks=2, reshape_depth=2, compress=1, mask_kernel_size=3
        ),
    ),
    spade_generator=SpadeGeneratorConfig(block_expansion=1, max_features=16, out_channels=2, spade_hidden=4),
    stitching_retargeting_module=StitchingRetargetingConfig(
        stitching=MlpConfig(2 * 3 * NUM_KP, (16, 16), 3 * NUM_KP + 2),
        lip=MlpConfig(3 * NUM_KP + 2, (16, 16), 3 * NUM_KP),
        eye=MlpConfig(3 * NUM_KP + 3, (16, 16), 3 * NUM_KP),
    ),
).validate()


def model_config(size: NetworkSize) -> LivePortraitModelConfig:
    if size == "full":
        return FULL
    if size == "miniature":
        return MINIATURE
    raise ConfigError(f"LivePortrait network size must be 'full' or 'miniature', not {size!r}")
