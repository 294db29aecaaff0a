"""Unknown Estimation Module: an MLP projector on the final normalized patch tokens + a 2-class head.

Output channel 0 is the generic-inlier logit, channel 1 the outlier logit (UEM paper, sec. 3.4).
"""
from __future__ import annotations

import torch
from torch import nn

from hypood_ros.model.layers import ProjectionMLP


class UnknownEstimationModule(nn.Module):
    def __init__(self, input_dim: int = 768, hidden_dim: int = 512, output_dim: int = 256, num_layers: int = 3) -> None:
        super().__init__()
        self.projector = ProjectionMLP(input_dim, hidden_dim, output_dim, num_layers)
        self.classifier = nn.Linear(output_dim, 2)

    def forward(self, final_tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """final_tokens [B,N,C] -> uem_logits [B,2,h,w]."""
        logits = self.classifier(self.projector(final_tokens))
        return logits.transpose(1, 2).reshape(final_tokens.shape[0], 2, h, w)
