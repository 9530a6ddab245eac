"""T5's initialisation of a fresh `T5Block`, which transformers does not give blocks built outside its own stacks
(the extra blocks of a deeper fusion stack). Source: the formulas of `T5PreTrainedModel._init_weights` in
transformers/models/t5/modeling_t5.py, transformers 5.17.0; tests/test_ablations.py compares the two.
"""

from __future__ import annotations

import torch
from transformers import T5Config
from transformers.models.t5.modeling_t5 import T5Attention, T5Block, T5DenseActDense, T5DenseGatedActDense, T5LayerNorm


def reset_t5_block(block: T5Block, config: T5Config) -> None:
    """T5's initialisation of `block`, as the authors' post_init gives the extra blocks of a deeper fusion stack.
    Plain tensor methods: transformers' loading guards its init functions for weights its generic init has already
    marked as initialised."""
    factor, d_model, d_ff = config.initializer_factor, config.d_model, config.d_ff
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, T5Attention):
                inner = module.n_heads * module.key_value_proj_dim
                module.q.weight.normal_(0.0, factor * (d_model * module.key_value_proj_dim) ** -0.5)
                module.k.weight.normal_(0.0, factor * d_model**-0.5)
                module.v.weight.normal_(0.0, factor * d_model**-0.5)
                module.o.weight.normal_(0.0, factor * inner**-0.5)
            elif isinstance(module, T5DenseGatedActDense):
                module.wi_0.weight.normal_(0.0, factor * d_model**-0.5)
                module.wi_1.weight.normal_(0.0, factor * d_model**-0.5)
                module.wo.weight.normal_(0.0, factor * d_ff**-0.5)
            elif isinstance(module, T5DenseActDense):
                module.wi.weight.normal_(0.0, factor * d_model**-0.5)
                module.wo.weight.normal_(0.0, factor * d_ff**-0.5)
            elif isinstance(module, T5LayerNorm):
                module.weight.fill_(factor)
