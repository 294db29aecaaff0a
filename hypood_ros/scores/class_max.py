"""The image order for scores that read the classes only through their maximum, without K maps at image size.

Bilinear weights are non-negative, so where one class c is above every other class k at each network cell an
output pixel reads, interp(l_c) >= interp(l_k) there: the maximum of the interpolated classes is the
interpolated winner, and its class is c. In float32 each product and sum of the interpolation rounds
monotonically, so the inequality holds for the computed values too; a cell counts as decided only when its
winner leads by more than `MARGIN` times the cell's scale (max_k |l_k| + max_k |b_k|), about a thousand times
the rounding of the weighted sums, so no tie can appear at the output and the class is torch.argmax's. For
the pixels whose cells are all decided for the same class, one interpolated channel (the winner's logit,
made on the network grid) gives max_k (f+b)_k and its class, and with the winner of f = l - b a second one
gives max_k f_k = interp(l_c') - b_c': the same products and sums as interpolating all K classes, so the
same bits. The other pixels (class borders, near-ties, zero embeddings where every f_k is 0, values that
are not finite) are interpolated in all K channels, at those pixels only (`interpolation.interpolate_points`).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from hypood_ros.errors import ConfigError
from hypood_ros.scores.inputs import ScoreInputs, norm_of
from hypood_ros.scores.interpolation import Axis, axis_weights, interpolate_points, interpolate_rows

#: A cell's winner must lead the runner-up by more than MARGIN * (max_k |l_k| + max_k |b_k|) (plus a tiny
#: absolute term for subnormal products): 2^-14 is about 1000 float32 roundings of a bilinear blend.
MARGIN = 2.0 ** -14
_TINY = 2.0 ** -100


def _decided(values: torch.Tensor, top: torch.Tensor, winner: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Cells [B,h,w] whose winner leads every other class by more than the margin (False for NaN/inf)."""
    if values.shape[1] == 1:
        return torch.isfinite(top)
    second = values.scatter(1, winner.unsqueeze(1), float("-inf")).amax(dim=1)
    return (top - second) > MARGIN * scale + _TINY


def _agree(codes: torch.Tensor, dim: int, axis: Optional[Axis]) -> torch.Tensor:
    """Keep a cell's code where the next cell along `dim` (the upper neighbour the interpolation pairs with
    it: index + 1, clamped at the border) has the same code; -1 elsewhere. Unchanged axes pair no cells."""
    if axis is None:
        return codes
    n = codes.shape[dim]
    nxt = (torch.arange(n, device=codes.device) + 1).clamp_max(n - 1)
    return torch.where(codes == codes.index_select(dim, nxt), codes, torch.full_like(codes, -1))


class ClassMaxPlan:
    """Per frame and output size: which output pixels have decided winners, and the winners' logit maps."""

    def __init__(self, inputs: ScoreInputs, size: Sequence[int], class_scores: bool) -> None:
        self.inputs = inputs
        self.size = (int(size[0]), int(size[1]))
        self.class_scores = class_scores
        logits = inputs.full_logits()
        b, k, h, w = logits.shape
        self.grid = (h, w)
        device = logits.device
        self.rows = axis_weights(h, self.size[0], 0, self.size[0])
        self.cols = axis_weights(w, self.size[1], 0, self.size[1])
        if self.rows is not None:
            self.rows = tuple(a.to(device) for a in self.rows)
        if self.cols is not None:
            self.cols = tuple(a.to(device) for a in self.cols)
        self.col_index = self.cols[0] if self.cols is not None else torch.arange(w, device=device)
        bias = inputs.head.bias.float().to(device)
        scale = logits.abs().amax(dim=1) + bias.abs().max()
        top, winner = logits.max(dim=1)
        decided = _decided(logits, top, winner, scale)
        codes = winner
        channels = [top]
        if class_scores:
            f = inputs.class_scores()
            f_top, f_winner = f.max(dim=1)
            decided &= _decided(f, f_top, f_winner, scale)
            codes = winner * k + f_winner
            channels.append(logits.gather(1, f_winner.unsqueeze(1))[:, 0])
        codes = torch.where(decided, codes, torch.full_like(codes, -1)).to(torch.int32)
        # A code survives where all 4 cells an output pixel reads from this one (as its lower index) agree.
        self.codes = _agree(_agree(codes, 1, self.rows), 2, self.cols)
        self.winners = torch.stack(channels, dim=1)  # [B,C,h,w]: l_c (and l_c' of f's winner c')
        self.bias = bias
        self._cells: Optional[torch.Tensor] = None

    def band_codes(self, rows: Tuple[int, int]) -> torch.Tensor:
        """The codes at output rows `rows` [B,n,W] (-1: the pixel needs all K classes)."""
        r0, r1 = rows
        row_index = self.rows[0][r0:r1] if self.rows is not None else torch.arange(r0, r1, device=self.codes.device)
        return self.codes.index_select(1, row_index).index_select(2, self.col_index)

    def band(self, rows: Tuple[int, int], codes: torch.Tensor) -> "ClassMaxInputs":
        """The maxima at output rows `rows`, valid where `codes` >= 0."""
        k = self.inputs.num_classes
        values = interpolate_rows(self.winners, self.size, rows)
        code = codes.long().clamp_min(0)
        classes = code // k if self.class_scores else code
        class_score = values[:, 1] - self.bias[code % k] if self.class_scores else None
        return ClassMaxInputs(self, rows, values[:, 0], classes, class_score)

    def points(self, band: "ClassMaxInputs", where: Tuple[torch.Tensor, ...]) -> ScoreInputs:
        """All K classes interpolated at the band's pixels `where` = (batch, row in band, column), as inputs
        of shape [1,K,1,N] that the registry scores like any image (bit-identical interpolated values)."""
        if self._cells is None:
            logits = self.inputs.full_logits()
            self._cells = logits.permute(0, 2, 3, 1).contiguous().view(-1, logits.shape[1])
        batch, y, x = where
        logits = interpolate_points(self._cells, self.grid, self.size, batch, y + band.rows[0], x,
                                    (self.rows, self.cols))
        norm = band.norm_map()[batch, :, y, x] if band.has_norm else torch.ones_like(logits[:, :1])
        uem = band.uem_map()[batch, :, y, x] if band.has_uem else None
        as_image = lambda t: t.t().unsqueeze(0).unsqueeze(2)  # noqa: E731  [N,C] -> [1,C,1,N]
        return ScoreInputs(as_image(logits), as_image(norm), self.inputs.head,
                           None if uem is None else as_image(uem), self.inputs.sml_stats)


class ClassMaxInputs:
    """What the class-maximum scores read, at a band of output rows: the same methods as `ScoreInputs`
    except the K class maps, which do not exist here. ||z|| and the UEM logits are interpolated on first use."""

    def __init__(self, plan: ClassMaxPlan, rows: Tuple[int, int], logit: torch.Tensor, classes: torch.Tensor,
                 class_score: Optional[torch.Tensor]) -> None:
        self.plan, self.rows = plan, rows
        self.head, self.sml_stats = plan.inputs.head, plan.inputs.sml_stats
        self.num_classes = plan.inputs.num_classes
        self._logit, self._classes, self._class_score = logit, classes, class_score
        self._norm: Optional[torch.Tensor] = None
        self._uem: Optional[torch.Tensor] = None

    @property
    def has_norm(self) -> bool:
        return self._norm is not None

    @property
    def has_uem(self) -> bool:
        return self._uem is not None

    def logit_max(self) -> Tuple[torch.Tensor, torch.Tensor]:
        return self._logit, self._classes

    def class_score_max(self) -> torch.Tensor:
        if self._class_score is None:
            raise RuntimeError("the plan was made without the class scores' winners")
        return self._class_score

    def norm_map(self) -> torch.Tensor:
        if self._norm is None:
            self._norm = self.plan.inputs.resized_norm(self.plan.size, self.rows)
        return self._norm

    def embedding_norm(self) -> torch.Tensor:
        return norm_of(self.norm_map())

    def uem_map(self) -> torch.Tensor:
        if self._uem is None:
            uem = self.plan.inputs.resized_uem(self.plan.size, self.rows)
            if uem is None:
                raise ConfigError("this score needs UEM logits, but the model gave none")
            self._uem = uem
        return self._uem

    def uem_difference(self) -> torch.Tensor:
        u = self.uem_map()
        return u[:, 1] - u[:, 0]
