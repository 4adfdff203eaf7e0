"""Fake models with the engine's call signature, for train-step tests."""

import flax.linen as nn


class Linear(nn.Module):
    """Mean-pooled linear logits, with dropout before the dense layer."""

    num_classes: int = 3
    dropout: float = 0.5

    @nn.compact
    def __call__(self, inputs, frames=None, gender=None, *, train: bool):
        x = inputs.mean(axis=(1, 2))  # [B, C]
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes)(x)
