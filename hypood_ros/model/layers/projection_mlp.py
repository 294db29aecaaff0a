"""Token-wise MLP (Linear/ReLU stack) used by the FPN's token branch and the UEM projector."""
import torch
from torch import nn


class ProjectionMLP(nn.Module):
    """`num_layers` linear layers with ReLU between them; indices match the official `_layers` list."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError("ProjectionMLP needs at least 2 layers")
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        modules = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            modules += [nn.Linear(d_in, d_out), nn.ReLU()]
        modules.append(nn.Linear(dims[-1], output_dim))
        self.layers = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
