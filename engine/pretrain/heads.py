"""Projection heads of self-distillation: the DINO head and the iBOT head.

* :class:`DINOHead` (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
  ICCV 2021): an MLP (``n_layers`` linear layers with GELU between them, the last one down to a
  ``bottleneck_dim`` embedding), L2 normalisation of that embedding, then a weight-normalised linear
  layer without bias to ``out_dim`` "prototype" logits. With ``norm_last_layer=True`` (DINO's default)
  the rows of the last layer are kept at unit norm (the weight-norm gain is fixed to 1), so the
  logits are cosine similarities; this stabilises training.
* :class:`IBOTHead` (Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", ICLR
  2022): the same MLP applied token-wise to the class token and to every patch token; the class
  token uses ``last_layer``, the patch tokens either the same last layer (``shared_head=True``) or
  their own one with ``patch_out_dim`` prototypes (``shared_head=False``).

Usage::

    head = IBOTHead(in_dim=192, out_dim=4096, shared_head=True)
    cls_logits = head(cls_tokens)               # (B, D) -> (B, 4096)
    patch_logits = head.forward_patch(patches)  # (B, N, D) -> (B, N, 4096)

See also: ``engine.pretrain.losses`` (what the logits feed), ``engine.pretrain.trainer`` (which
freezes :meth:`DINOHead.last_layer_parameters` during the first epoch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WeightNormLinear(nn.Module):
    """Linear layer without bias whose weight is ``g * v / ||v||`` row by row (Salimans & Kingma 2016).

    Args:
        in_dim, out_dim: feature sizes.
        learn_norm: False (DINO's ``norm_last_layer``): ``g`` is fixed to 1 and not a parameter;
            True: ``g`` is a learnable ``(out_dim, 1)`` parameter initialised to 1.

    Shapes: ``(..., in_dim) -> (..., out_dim)``, any float dtype.
    """

    def __init__(self, in_dim: int, out_dim: int, learn_norm: bool = False):
        super().__init__()
        self.weight_v = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.trunc_normal_(self.weight_v, std=0.02)
        self.weight_g = nn.Parameter(torch.ones(out_dim, 1)) if learn_norm else None

    def weight(self) -> torch.Tensor:
        """The effective ``(out_dim, in_dim)`` weight."""
        w = F.normalize(self.weight_v, dim=1)
        return w if self.weight_g is None else w * self.weight_g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight().to(x.dtype))


def _mlp(in_dim: int, hidden_dim: int, bottleneck_dim: int, n_layers: int) -> nn.Sequential:
    if n_layers < 1:
        raise ValueError(f"a projection head needs n_layers >= 1, got {n_layers}")
    dims = [in_dim] + [hidden_dim] * (n_layers - 1) + [bottleneck_dim]
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < n_layers - 1:
            layers.append(nn.GELU())
    mlp = nn.Sequential(*layers)
    for m in mlp:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    return mlp


class DINOHead(nn.Module):
    """DINO projection head: MLP -> L2-normalised bottleneck -> weight-normalised last layer.

    Args:
        in_dim: backbone embedding size ``D``.
        out_dim: number of prototypes ``K`` (DINO uses 65536; a few thousand suffice for one
            product's images).
        hidden_dim, bottleneck_dim, n_layers: MLP shape (DINO: 2048, 256, 3).
        norm_last_layer: fix the last layer's row norms to 1 (module docstring).

    Shapes: ``forward``: ``(..., D) float -> (..., K)`` logits, same dtype as the input.
    """

    def __init__(self, in_dim: int, out_dim: int = 4096, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 n_layers: int = 3, norm_last_layer: bool = True):
        super().__init__()
        self.mlp = _mlp(in_dim, hidden_dim, bottleneck_dim, n_layers)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim, learn_norm=not norm_last_layer)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., D) -> (..., bottleneck_dim)`` unit-norm embedding (before the prototypes)."""
        return F.normalize(self.mlp(x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(self.embed(x))

    def last_layer_parameters(self) -> list[nn.Parameter]:
        """Parameters of the prototype layer(s), frozen during the first epoch(s) of training."""
        return list(self.last_layer.parameters())


class IBOTHead(DINOHead):
    """iBOT head: a :class:`DINOHead` for the class token plus a patch-token output.

    Args:
        patch_out_dim: prototypes of the patch output (ignored when ``shared_head``; then it is
            ``out_dim``).
        shared_head: True: patch tokens use the class token's last layer; False: a separate
            weight-normalised last layer. The MLP and bottleneck are shared in both cases, as in iBOT.
        other arguments: as :class:`DINOHead`.

    Shapes: ``forward(cls)``: ``(B, D) -> (B, out_dim)``; ``forward_patch(patches)``:
    ``(..., D) -> (..., patch_out_dim)``.
    """

    def __init__(self, in_dim: int, out_dim: int = 4096, patch_out_dim: int | None = None, shared_head: bool = True,
                 hidden_dim: int = 2048, bottleneck_dim: int = 256, n_layers: int = 3, norm_last_layer: bool = True):
        super().__init__(in_dim, out_dim, hidden_dim, bottleneck_dim, n_layers, norm_last_layer)
        self.shared_head = shared_head
        self.patch_out_dim = out_dim if shared_head or patch_out_dim is None else int(patch_out_dim)
        self.last_layer_patch = (None if shared_head else
                                 WeightNormLinear(bottleneck_dim, self.patch_out_dim, learn_norm=not norm_last_layer))

    def forward_patch(self, x: torch.Tensor) -> torch.Tensor:
        last = self.last_layer if self.last_layer_patch is None else self.last_layer_patch
        return last(self.embed(x))

    def last_layer_parameters(self) -> list[nn.Parameter]:
        params = super().last_layer_parameters()
        if self.last_layer_patch is not None:
            params += list(self.last_layer_patch.parameters())
        return params
