"""Bytes a module occupies at a given precision, counted tensor by tensor from the module itself.

Nothing here is declared per model: the planner hands in a meta-device module and a rule saying
which `nn.Linear` layers the quantizer converts (the same rule diffusers / transformers apply),
and the bytes follow from the shapes and the storage format of each precision:

- fp32 4 B, fp16 / bf16 2 B per element.
- nf4 (bitsandbytes `Params4bit`, as `Linear4bit` stores it): the weight packed two per byte,
  an absmax per 64-element block; with double quantisation the absmax is itself quantised to
  one byte per block, plus an fp32 absmax per 256 blocks, an fp32 offset and the two code
  tables (16 fp32 for NF4, 256 fp32 for the nested dynamic map; bitsandbytes 0.50 keeps a copy
  per layer). Everything else (biases, norms, embeddings, unconverted Linears) sits at the
  compute dtype, bf16. Checked against bitsandbytes 0.50.2 quantising a real Linear on CPU.
- int8 on the GPU (bitsandbytes LLM.int8, `Linear8bitLt`): int8 weight + fp32 scale per output
  row (`SCB`); the rest fp16.
- int8 on the host (torch dynamic quantisation of `nn.Linear`): qint8 weight, per-tensor
  scale/zero point, fbgemm's int32 column offsets per output feature; biases and the rest fp32.

Tensors a module keeps outside its parameters and buffers are counted too: `torch.nn.utils.
weight_norm` (Kokoro's vocoder) materialises the full `weight` as a plain attribute beside
`weight_g`/`weight_v`, and after the first forward that copy stays resident on the device.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Literal

import torch
from torch import nn

Placement = Literal["cuda", "cpu"]
QuantizeRule = Callable[[str, nn.Module], bool]  # (full module name, module) -> converted?

ELEMENT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class Nf4Settings:
    """The bitsandbytes 4-bit settings the planner counts; loaders must build the same config."""

    blocksize: int = 64  # Params4bit default
    double_quant: bool = True  # BitsAndBytesConfig(bnb_4bit_use_double_quant=True)
    nested_blocksize: int = 256  # blocksize of the second-level (absmax) quantisation
    compute_dtype: str = "bf16"  # bnb_4bit_compute_dtype, and the torch_dtype of everything unconverted
    quant_type: str = "nf4"


NF4 = Nf4Settings()
_NF4_CODE_BYTES = 16 * 4  # the 16-entry NF4 code, fp32
_NESTED_CODE_BYTES = 256 * 4  # the dynamic 8-bit map used for the absmax, fp32
_FBGEMM_QPARAM_BYTES = 16  # per-tensor scale (fp64) + zero point (int64)


def nf4_weight_bytes(numel: int, settings: Nf4Settings = NF4) -> int:
    """Resident bytes of one Params4bit weight with its quant state."""
    blocks = math.ceil(numel / settings.blocksize)
    packed = math.ceil(numel / 2)
    if settings.double_quant:
        nested_blocks = math.ceil(blocks / settings.nested_blocksize)
        stats = blocks * 1 + nested_blocks * 4 + 4 + _NESTED_CODE_BYTES
    else:
        stats = blocks * 4
    return packed + stats + _NF4_CODE_BYTES


def int8_weight_bytes(out_features: int, in_features: int, placement: Placement) -> int:
    """Resident bytes of one int8 Linear weight with its scales (biases not included)."""
    if placement == "cuda":  # LLM.int8: CB (int8) + SCB (fp32 per row); CB is the parameter itself
        return out_features * in_features + out_features * 4
    # torch dynamic quantisation (fbgemm): qint8 weight, col_offsets int32 per output, qparams
    return out_features * in_features + out_features * 4 + _FBGEMM_QPARAM_BYTES


def every_linear(name: str, module: nn.Module) -> bool:
    """The default rule: every plain nn.Linear is converted (diffusers with no skip list; torch
    dynamic quantisation with qconfig_spec={nn.Linear})."""
    return type(module) is nn.Linear


def diffusers_bnb_rule(modules_to_not_convert: Iterable[str] = ()) -> QuantizeRule:
    """diffusers' `_replace_with_bnb_linear`: a Linear is kept when its own name is in the list, or
    a listed key equals its full name or appears in it followed by a dot. diffusers adds only the
    model's `_keep_in_fp32_modules` (none for Flux) to the user's skip list."""
    skip = [key for key in modules_to_not_convert if key]

    def rule(name: str, module: nn.Module) -> bool:
        if not isinstance(module, nn.Linear):
            return False
        leaf = name.rsplit(".", 1)[-1]
        return leaf not in skip and not any(f"{key}." in name or key == name for key in skip)

    return rule


def transformers_bnb_rule(model: nn.Module, skip_modules: Iterable[str] | None = None) -> QuantizeRule:
    """transformers' bitsandbytes quantizers (4-bit and 8-bit): `get_modules_to_not_convert` keeps
    the model's `_keep_in_fp32_modules` (T5: `wo`), the output embeddings, tied weights and the
    module holding the last parameter (CLIPModel: `text_projection`); `should_convert_module`
    matches a key from the start at a module boundary, or as a suffix."""
    patterns = set(skip_modules or ()) | set(getattr(model, "_keep_in_fp32_modules", None) or ())
    if skip_modules is None:
        patterns |= _default_transformers_skips(model)

    def rule(name: str, module: nn.Module) -> bool:
        if type(module) is not nn.Linear:
            return False
        boundary = r"(?:(?<=\.)|(?=\.|$))"
        return not any(re.match(rf"(?:{key}){boundary}", name) or name.endswith(key) for key in patterns)

    return rule


def _default_transformers_skips(model: nn.Module) -> set[str]:
    keys: set[str] = set()
    tied = getattr(model, "all_tied_weights_keys", None) or {}
    keys |= set(tied.keys()) | set(tied.values())
    named = list(model.named_parameters())
    if named:
        keys.add(named[-1][0])
    get_output = getattr(model, "get_output_embeddings", None)
    output = get_output() if callable(get_output) else None
    if output is not None:
        keys |= {name for name, module in model.named_modules() if module is output}
    return {key.removesuffix(".weight") for key in keys}


def count_module_bytes(
    module: nn.Module,
    precision: str,
    quantize: QuantizeRule | None = None,
    *,
    placement: Placement = "cuda",
    nf4: Nf4Settings = NF4,
) -> tuple[int, int]:
    """(parameters, resident bytes) of `module` loaded at `precision` on `placement`.

    `quantize(name, module)` says which Linear layers nf4/int8 convert (default: every plain
    nn.Linear); it is ignored for fp32/bf16/fp16. Works on meta-device modules.
    """
    if precision not in ("fp32", "bf16", "fp16", "nf4", "int8"):
        raise ValueError(f"unknown precision '{precision}' (fp32, bf16, fp16, nf4 or int8)")
    rule = quantize or every_linear
    float_bytes = _float_bytes(precision, placement, nf4)
    params = sum(p.numel() for p in module.parameters())
    total = 0
    for name, sub in module.named_modules():
        converted = precision in ("nf4", "int8") and rule(name, sub)
        for pname, tensor in sub.named_parameters(recurse=False):
            if converted and pname == "weight":
                total += _quantized_weight_bytes(sub, precision, placement, nf4)
            else:
                total += _tensor_bytes(tensor, float_bytes)
        for tensor in sub.buffers(recurse=False):
            total += _tensor_bytes(tensor, float_bytes)
        for tensor in _plain_tensor_attributes(sub):
            total += _tensor_bytes(tensor, float_bytes)
    return params, total


def materialised_attribute_elements(module: nn.Module) -> int:
    """Elements held in plain tensor attributes (weight_norm / spectral_norm's computed weights)."""
    return sum(t.numel() for sub in module.modules() for t in _plain_tensor_attributes(sub))


def _plain_tensor_attributes(module: nn.Module) -> list[torch.Tensor]:
    return [v for v in vars(module).values() if isinstance(v, torch.Tensor) and not isinstance(v, nn.Parameter)]


def _float_bytes(precision: str, placement: Placement, nf4: Nf4Settings) -> int:
    if precision == "nf4":
        return ELEMENT_BYTES[nf4.compute_dtype]
    if precision == "int8":
        return 2 if placement == "cuda" else 4  # LLM.int8 loads at fp16; dynamic quantisation stays fp32
    return ELEMENT_BYTES[precision]


def _tensor_bytes(tensor: torch.Tensor, float_bytes: int) -> int:
    # Integer tensors (position ids, counters) keep their dtype; floats take the precision's width.
    width = float_bytes if tensor.is_floating_point() else tensor.element_size()
    return tensor.numel() * width


def _quantized_weight_bytes(linear: nn.Module, precision: str, placement: Placement, nf4: Nf4Settings) -> int:
    out_features, in_features = linear.weight.shape
    if precision == "nf4":
        return nf4_weight_bytes(out_features * in_features, nf4)
    return int8_weight_bytes(out_features, in_features, placement)
