"""The two fusion modules Zemi adds to T5: a Perceiver resampler that squeezes each retrieved document into a fixed
set of latents, and a gated cross-attention block that lets the encoder output read those latents (Flamingo-style).

Parameter names and layouts match the published Zemi checkpoints (`perceiver_resampler.*`, `xattn_stack.0.*`).
Shapes: B batch, M document slots, La document tokens, N latents, L input tokens, D model width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

__all__ = ["GATES", "FeedForward", "PerceiverAttention", "PerceiverResampler", "MaskedCrossAttention",
           "GatedCrossAttentionBlock", "reset_fusion_parameters"]

GATES = ("tanh", "none")


class FeedForward(nn.Sequential):
    """LayerNorm -> Linear -> GELU (erf) -> Linear, no biases; a Sequential so the keys read `.0`, `.1`, `.3`."""

    def __init__(self, dim: int, *, mult: int):
        super().__init__(
            nn.LayerNorm(dim),
            nn.Linear(dim, dim * mult, bias=False),
            nn.GELU(),
            nn.Linear(dim * mult, dim, bias=False),
        )


def reset_fusion_parameters(module: nn.Module) -> None:
    """Zemi's initialisation of new modules: xavier-normal Linear weights, default LayerNorms."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.xavier_normal_(sub.weight)
        elif isinstance(sub, nn.LayerNorm):
            sub.reset_parameters()


class PerceiverAttention(nn.Module):
    """Latents attend to `[document tokens ; latents]` of their own slot. No padding mask, as in the original:
    padded document tokens are attended to."""

    def __init__(self, *, dim: int, dim_head: int = 64, heads: int = 8):
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x = self.norm_media(x)  # (B, M, La, D)
        latents = self.norm_latents(latents)  # (B, M, N, D)
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat((x, latents), dim=-2)).chunk(2, dim=-1)  # (B, M, La + N, inner)
        # Slots are independent: fold them into the batch axis (4-D attention, as every SDPA kernel expects).
        q, k, v = (rearrange(t, "b m n (h d) -> (b m) h n d", h=self.heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # scale dim_head ** -0.5
        return self.to_out(rearrange(out, "(b m) h n d -> b m n (h d)", m=x.shape[1]))


class PerceiverResampler(nn.Module):
    """Turns each document slot's token states (B, M, La, D) into `num_latents` vectors (B, M, N, D)."""

    def __init__(
        self,
        *,
        dim: int,
        depth: int = 1,
        dim_head: int = 64,
        heads: int = 8,
        num_latents: int = 64,
        num_aug_sources: int = 5,
        ff_mult: int = 2,
    ):
        super().__init__()
        self.latents = nn.Parameter(torch.empty(num_latents, dim))
        self.time_pos_emb = nn.Parameter(torch.empty(num_aug_sources, 1, dim))  # one embedding per slot
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim=dim, dim_head=dim_head, heads=heads), FeedForward(dim, mult=ff_mult)])
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.latents)
        nn.init.normal_(self.time_pos_emb)
        reset_fusion_parameters(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, m = x.shape[:2]
        if m > self.time_pos_emb.shape[0]:
            raise ValueError(
                f"{m} document slots given but the resampler has slot embeddings for {self.time_pos_emb.shape[0]} "
                "(num_aug_sources); fold extra documents into the slots with --fit_aug_num"
            )
        x = x + self.time_pos_emb[:m]  # (B, M, La, D)
        latents = repeat(self.latents, "n d -> b m n d", b=b, m=m)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm(latents)  # (B, M, N, D)


class MaskedCrossAttention(nn.Module):
    """Every input position attends to all latents of all present slots; absent slots (`slot_mask` 0) are masked."""

    def __init__(self, *, dim: int, dim_head: int = 64, heads: int = 8):
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, media: torch.Tensor, slot_mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.to_q(self.norm(x))  # (B, L, inner)
        n_latents = media.shape[2]
        k, v = self.to_kv(rearrange(media, "b m n d -> b (m n) d")).chunk(2, dim=-1)  # (B, M*N, inner)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        bias = None
        if slot_mask is not None:
            # The original fills masked scores with -finfo.max (not -inf): a row with no present slot then
            # attends uniformly instead of producing NaN.
            attend = repeat(slot_mask.bool(), "b m -> b 1 1 (m n)", n=n_latents)
            bias = torch.zeros(attend.shape, dtype=q.dtype, device=q.device).masked_fill(~attend,
                                                                                         torch.finfo(q.dtype).min)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class GatedCrossAttentionBlock(nn.Module):
    """`x + tanh(attn_gate) * XAttn(x, media)`, then `x + tanh(ff_gate) * FF(x)`.

    The gates start at 0, so a fresh block is the identity and a fresh Zemi equals its backbone T5.
    `gate="none"` is the "no tanh gate" ablation: plain residual connections, no gate parameters.
    """

    def __init__(self, *, dim: int, dim_head: int = 64, heads: int = 8, ff_mult: int = 4, gate: str = "tanh"):
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        self.gated = gate == "tanh"
        if self.gated:
            self.attn_gate = nn.Parameter(torch.zeros(1))
            self.ff_gate = nn.Parameter(torch.zeros(1))
        self.attn = MaskedCrossAttention(dim=dim, dim_head=dim_head, heads=heads)
        self.ff = FeedForward(dim, mult=ff_mult)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.gated:
            nn.init.zeros_(self.attn_gate)
            nn.init.zeros_(self.ff_gate)
        reset_fusion_parameters(self)

    def forward(self, x: torch.Tensor, media: torch.Tensor, slot_mask: torch.Tensor | None = None) -> torch.Tensor:
        attn_out = self.attn(x, media, slot_mask)  # (B, L, D)
        x = x + (attn_out * self.attn_gate.tanh() if self.gated else attn_out)
        ff_out = self.ff(x)
        return x + (ff_out * self.ff_gate.tanh() if self.gated else ff_out)
