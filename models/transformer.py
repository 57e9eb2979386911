"""A tiny post-norm transformer encoder block written with explicit ops.

No ``nn.MultiheadAttention``: attention is spelled out with ``Linear``,
``reshape``, ``transpose``, ``@``, a float scale and ``softmax`` so that
``torch.fx`` sees every operation the accelerator has to run.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyTransformer(nn.Module):
    """``tiny-transformer``: one post-norm encoder block, sequence 16, embed 32, 2 heads.

    Attributes: ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` (Linear(32, 32)
    each), ``norm1``, ``norm2`` (LayerNorm(32)), ``fc1`` Linear(32, 64),
    ``gelu`` GELU, ``fc2`` Linear(64, 32). Shapes for input ``(1, 16, 32)``::

        q = q_proj(x).reshape(-1, 16, 2, 16).transpose(1, 2)    # (1, 2, 16, 16); k, v alike
        scores = q @ k.transpose(-2, -1) * 0.25                  # (1, 2, 16, 16), 1/sqrt(16)
        attn = scores.softmax(dim=-1)                            # (1, 2, 16, 16)
        ctx = (attn @ v).transpose(1, 2).reshape(-1, 16, 32)     # (1, 16, 32)
        x = norm1(x + out_proj(ctx))                             # (1, 16, 32)
        return norm2(x + fc2(gelu(fc1(x))))                      # (1, 16, 32); fc1 -> (1, 16, 64)
    """

    def __init__(self, seq_len: int = 16, embed: int = 32, heads: int = 2, mlp_hidden: int = 64):
        super().__init__()
        if embed % heads:
            raise ValueError(f"embed ({embed}) must be divisible by heads ({heads})")
        self.seq_len = seq_len
        self.embed = embed
        self.heads = heads
        self.head_dim = embed // heads
        self.scale = 1.0 / float(self.head_dim) ** 0.5
        self.q_proj = nn.Linear(embed, embed)
        self.k_proj = nn.Linear(embed, embed)
        self.v_proj = nn.Linear(embed, embed)
        self.out_proj = nn.Linear(embed, embed)
        self.norm1 = nn.LayerNorm(embed)
        self.fc1 = nn.Linear(embed, mlp_hidden)
        self.gelu = nn.GELU()
        self.fc2 = nn.Linear(mlp_hidden, embed)
        self.norm2 = nn.LayerNorm(embed)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        # (B, S, E) -> (B, H, S, D)
        return t.reshape(-1, self.seq_len, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self._heads(self.q_proj(x))
        k = self._heads(self.k_proj(x))
        v = self._heads(self.v_proj(x))
        scores = q @ k.transpose(-2, -1) * self.scale
        attn = scores.softmax(dim=-1)
        ctx = (attn @ v).transpose(1, 2).reshape(-1, self.seq_len, self.embed)
        x = self.norm1(x + self.out_proj(ctx))
        return self.norm2(x + self.fc2(self.gelu(self.fc1(x))))
