"""Miniature CLIP ViT-B/32 and ViT-L/14: transformers `CLIPModel` folders with seeded weights.

The projection widths stay full size (512 and 768) so the verifier's embedding has its real
shape; everything else is a few dozen channels wide. The tokenizer is a byte-level BPE with no
merges, built in memory (no hub), laid out like openai's (special tokens last).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

ClipSize = Literal["b32", "l14"]

# Width of the miniature L/14 text tower; Flux's miniature text encoder is this same tower.
L14_TEXT_HIDDEN = 32
_SIZES = {
    "b32": dict(patch_size=32, vision_hidden=32, text_hidden=32, projection_dim=512),
    "l14": dict(patch_size=14, vision_hidden=48, text_hidden=L14_TEXT_HIDDEN, projection_dim=768),
}


def clip_tokenizer() -> CLIPTokenizer:
    """A CLIP BPE tokenizer over the 256 byte symbols (and their end-of-word forms)."""
    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def miniature_clip_config(size: ClipSize, vocab_size: int, bos_id: int, eos_id: int) -> CLIPConfig:
    s = _SIZES[size]
    text = dict(
        vocab_size=vocab_size, hidden_size=s["text_hidden"], intermediate_size=2 * s["text_hidden"],
        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
        bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=eos_id,
    )
    vision = dict(
        hidden_size=s["vision_hidden"], intermediate_size=2 * s["vision_hidden"], num_hidden_layers=2,
        num_attention_heads=2, image_size=224, patch_size=s["patch_size"],
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=s["projection_dim"])


def save_miniature_clip(path: str | Path, size: ClipSize, seed: int = 0) -> Path:
    """Write a miniature CLIP folder (config, safetensors, tokenizer, image processor) to `path`."""
    path = Path(path)
    tokenizer = clip_tokenizer()
    config = miniature_clip_config(
        size, len(tokenizer), tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    # The PIL backend writes the same preprocessor_config.json without asking for torchvision.
    CLIPImageProcessorPil(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
    ).save_pretrained(path)
    return path
