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

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from hypood_ros.errors import ConfigError
from hypood_ros.scores.inputs import ScoreInputs, norm_of
from hypood_ros.scores.interpolation import Axis, axis_weights, interpolate_rows

#: A cell's winner must lead the runner-up by more than MARGIN * (max_k |l_k| + max_k |b_k|) (plus a tiny
#: absolute term for subnormal products): 2^-14 is about 1000 float32 roundings of a bilinear blend.
MARGIN = 2.0 ** -14
_TINY = 2.0 ** -100
#: Undecided blocks are grouped by their number of candidate classes: up to 2, 3-4, 5-8, more.
TIERS = (2, 4, 8)
#: Above this share of undecided output pixels the image order interpolates all classes instead (`score_maps`).
FULL_SHARE = 0.25


def _decided(values: torch.Tensor, top: torch.Tensor, winner: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Cells [B,h,w] whose winner leads every other class by more than the margin (False for NaN/inf)."""
    if values.shape[1] == 1:
        return torch.isfinite(top)
    second = values.scatter(1, winner.unsqueeze(1), float("-inf")).amax(dim=1)
    return (top - second) > MARGIN * scale + _TINY


def _can_win(by: torch.Tensor, slack: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
    """[blocks, K]: the classes whose largest value over a block's 4 corners (`by` [blocks, 4, K]) reaches the
    best smallest value of a class there, less the slack; all classes where a corner is not finite."""
    best = by.amin(dim=1).amax(dim=1, keepdim=True)
    return (by.amax(dim=1) >= best - slack) | ~finite


def _agree(codes: torch.Tensor, dim: int, axis: Optional[Axis]) -> torch.Tensor:
    """Keep a cell's code where the next cell along `dim` (the upper neighbour the interpolation pairs with
    it: index + 1, clamped at the border) has the same code; -1 elsewhere. Unchanged axes pair no cells."""
    if axis is None:
        return codes
    n = codes.shape[dim]
    nxt = (torch.arange(n, device=codes.device) + 1).clamp_max(n - 1)
    return torch.where(codes == codes.index_select(dim, nxt), codes, torch.full_like(codes, -1))


class ClassMaxPlan:
    """Per frame and output size: the winners' maps, and the candidate classes of the undecided blocks.

    A block is the 2x2 cells (i, i+1) x (j, j+1) (clamped at the border; one cell along an axis whose size is
    unchanged) that the output pixels with lower neighbour (i, j) read. Decided blocks (`codes` >= 0) take
    their maxima from the winners' maps. For an undecided block (`codes` = -1 - its index) a class k can only
    be the maximum at its pixels if its largest value over the 4 cells reaches the best smallest value of a
    class there (less the margin): interp(l_k) <= max_cells l_k and interp(l_c) >= min_cells l_c. Only those
    candidates (in class order, so the first maximum is torch.argmax's) are interpolated at its pixels; a
    block with a value that is not finite takes all K classes. The undecided pixels of the whole frame are
    done at once (a band of rows holds too few of them for PyTorch's per-operation cost), the rest per band.
    """

    def __init__(self, inputs: ScoreInputs, size: Sequence[int], class_scores: bool) -> None:
        self.inputs = inputs
        self.size = (int(size[0]), int(size[1]))
        self.class_scores = class_scores
        logits = inputs.full_logits()
        b, k, h, w = logits.shape
        device = logits.device
        self.rows = _on(axis_weights(h, self.size[0], 0, self.size[0]), device)
        self.cols = _on(axis_weights(w, self.size[1], 0, self.size[1]), device)
        self.col_index = self.cols[0] if self.cols is not None else torch.arange(w, device=device)
        self.bias = inputs.head.bias.float().to(device)
        scale = logits.abs().amax(dim=1) + self.bias.abs().max()
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
        codes = torch.where(decided, codes, torch.full_like(codes, -1))
        # A code survives where all 4 cells an output pixel reads from this one (as its lower index) agree.
        codes = _agree(_agree(codes, 1, self.rows), 2, self.cols)
        self.winners = torch.stack(channels, dim=1)  # [B,C,h,w]: l_c (and l_c' of f's winner c')
        self.row_index = self.rows[0] if self.rows is not None else torch.arange(self.size[0], device=device)
        # Per-pixel maps are made columns first on the network rows, [h,B,W], and then whole rows are copied.
        known = codes.clamp_min(0)
        winner = known // k if class_scores else known
        self._class_rows = _columns(winner.to(torch.uint8 if k <= 256 else torch.int64), self.col_index)
        if class_scores:  # the bias of f's winner, subtracted from its interpolated logit
            self._bias_rows = _columns(self.bias[known % k], self.col_index)
        self._undecided_pixels(codes < 0)
        #: (blocks, candidates per set) of each tier of undecided blocks, for inspection.
        self.tiers: List[Tuple[int, Tuple[int, ...]]] = []
        if self.undecided[0].numel() and self.undecided_share <= FULL_SHARE:
            self._undecided_maxima(logits, scale, codes)

    def _undecided_pixels(self, undecided: torch.Tensor) -> None:
        """The output pixels (batch, y, x) of undecided blocks, row by row (`row_starts`: each row's first)."""
        h = undecided.shape[1]
        i, batch, x = _columns(undecided, self.col_index).nonzero(as_tuple=True)  # sorted by network row
        per_row = torch.bincount(i, minlength=h)
        first = torch.cumsum(per_row, 0) - per_row
        counts = per_row.index_select(0, self.row_index)  # output row y has network row i0[y]'s pixels
        ends = torch.cumsum(counts, 0)
        total = int(ends[-1]) if ends.numel() else 0
        y = torch.repeat_interleave(torch.arange(self.size[0], device=undecided.device), counts, output_size=total)
        src = (torch.arange(total, device=undecided.device) - (ends - counts).index_select(0, y)
               + first.index_select(0, self.row_index.index_select(0, y)))
        self.undecided = (batch.index_select(0, src), y, x.index_select(0, src))
        self.row_starts = [0] + ends.tolist()
        #: Share of output pixels that the winners do not decide; above `FULL_SHARE` the caller interpolates
        #: all classes instead (random logits are class borders everywhere).
        self.undecided_share = total / max(1, undecided.shape[0] * self.size[0] * self.size[1])

    def _undecided_maxima(self, logits: torch.Tensor, scale: torch.Tensor, codes: torch.Tensor) -> None:
        """The maxima at the undecided output pixels (all of the frame at once: few operations per frame)."""
        b, k, h, w = logits.shape
        batch, y, x = self.undecided
        row_index = self.row_index
        bb, i, j = (codes < 0).nonzero(as_tuple=True)
        ni = (i + 1).clamp_max(h - 1) if self.rows is not None else i
        nj = (j + 1).clamp_max(w - 1) if self.cols is not None else j
        cells = logits.permute(0, 2, 3, 1).contiguous().view(-1, k)
        # Corners in the order the interpolation reads them: (i0,c0), (i0,c1), (i1,c0), (i1,c1).
        flat = [(bb * h + r) * w + c for r, c in ((i, j), (i, nj), (ni, j), (ni, nj))]
        corners = torch.stack([F.embedding(f, cells) for f in flat], dim=1)  # [blocks, 4, K]
        slack = MARGIN * torch.stack([scale.view(-1).index_select(0, f) for f in flat], dim=1).amax(dim=1)
        slack = slack.unsqueeze(1) + _TINY
        finite = torch.isfinite(corners.view(corners.shape[0], -1)).all(dim=1, keepdim=True)
        chosen = [_can_win(corners, slack, finite)]
        if self.class_scores:
            chosen.append(_can_win(corners - self.bias, slack, finite))
        count = torch.stack([c.sum(dim=1) for c in chosen], dim=1).amax(dim=1)
        # Blocks in tiers of similar candidate counts, each padded to its own largest: a few blocks with many
        # candidates (near-ties of several classes) do not make every block pay for them. Blocks are numbered
        # tier by tier, so a tier is a range of numbers.
        tier = torch.bucketize(count, torch.tensor(TIERS, device=count.device))
        order = torch.sort(tier, stable=True).indices
        number = torch.full((b * h * w,), -1, dtype=torch.int64, device=codes.device)
        number.index_copy_(0, flat[0].index_select(0, order), torch.arange(order.numel(), device=codes.device))
        cell = (batch * h + row_index.index_select(0, y)) * w + self.col_index.index_select(0, x)
        block = number.index_select(0, cell)  # each undecided pixel's block
        self.logit = torch.empty(y.numel(), device=logits.device)
        self.classes = torch.empty(y.numel(), dtype=torch.int64, device=logits.device)
        self.class_score = torch.empty_like(self.logit) if self.class_scores else None
        first = 0
        for stop in torch.cumsum(torch.bincount(tier, minlength=len(TIERS) + 1), 0).tolist():
            if stop > first:
                pixels = ((block >= first) & (block < stop)).nonzero()[:, 0]
                mine = order[first:stop]
                self._maxima(pixels, block.index_select(0, pixels) - first, y.index_select(0, pixels),
                             x.index_select(0, pixels), corners.index_select(0, mine),
                             [c.index_select(0, mine) for c in chosen])
            first = stop

    def _maxima(self, pixels: torch.Tensor, block: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
                corners: torch.Tensor, chosen: List[torch.Tensor]) -> None:
        """Interpolate the candidates of blocks `corners` at their `pixels`; keep the maxima (first wins)."""
        classes, values = [], []
        for mask in chosen:
            count = mask.sum(dim=1, keepdim=True)
            m = int(count.max())
            # Candidates first, in class order; short rows padded with their first candidate, which ties it
            # and comes later, so neither the maximum nor the first maximum changes.
            ids = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices[:, :m]
            ids = torch.where(torch.arange(m, device=ids.device).unsqueeze(0) >= count, ids[:, :1], ids)
            classes.append(ids)
            values.append(corners.gather(2, ids.unsqueeze(1).expand(-1, 4, -1)))
        sets = [c.shape[1] for c in classes]
        self.tiers.append((corners.shape[0], tuple(sets)))
        blended = self._blend(F.embedding(block, torch.cat(values, dim=2).flatten(1)).view(-1, 4, sum(sets)), y, x)
        value, pos = blended[:, :sets[0]].max(dim=1)
        self.logit.index_copy_(0, pixels, value)
        self.classes.index_copy_(0, pixels, F.embedding(block, classes[0]).gather(1, pos.unsqueeze(1))[:, 0])
        if self.class_scores:
            bias = F.embedding(block, self.bias[classes[1]])
            self.class_score.index_copy_(0, pixels, (blended[:, sets[0]:] - bias).amax(dim=1))

    def band(self, rows: Tuple[int, int]) -> "ClassMaxInputs":
        """The maxima at output rows `rows`."""
        r0, r1 = rows
        values = interpolate_rows(self.winners, self.size, rows)  # [B,C,n,W]
        b, c, n, width = values.shape
        row_index = self.row_index[r0:r1]
        classes = self._class_rows.index_select(0, row_index).permute(1, 0, 2).contiguous()
        first, stop = self.row_starts[r0], self.row_starts[r1]
        at = None
        if stop > first:
            batch, y, x = (t[first:stop] for t in self.undecided)
            at = (batch * n + y - r0) * width + x  # in a [B,n,W] map
            logit_at = (batch * c * n + y - r0) * width + x  # channel 0 of [B,C,n,W]
            values.view(-1).index_copy_(0, logit_at, self.logit[first:stop])
            classes.view(-1).index_copy_(0, at, self.classes[first:stop].to(classes.dtype))
        class_score = None
        if self.class_scores:
            bias = self._bias_rows.index_select(0, row_index).permute(1, 0, 2)
            class_score = (values[:, 1] - bias).contiguous()
            if at is not None:
                class_score.view(-1).index_copy_(0, at, self.class_score[first:stop])
        return ClassMaxInputs(self, rows, values[:, 0], classes, class_score)

    def _blend(self, corners: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Candidates [N, 4 corners, M] interpolated at pixels (y, x): the products and sums of `interpolate_rows`."""
        if self.cols is not None:
            w0, w1 = (a.index_select(0, x).unsqueeze(1) for a in self.cols[2:])
            top = corners[:, 0] * w0 + corners[:, 1] * w1
            bottom = corners[:, 2] * w0 + corners[:, 3] * w1
        else:
            top, bottom = corners[:, 0], corners[:, 2]
        if self.rows is None:
            return top
        w0, w1 = (a.index_select(0, y).unsqueeze(1) for a in self.rows[2:])
        return top * w0 + bottom * w1


def _columns(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """A [B,h,w] map at the output's columns, network rows outermost: [h,B,W] contiguous."""
    return t.index_select(2, index).permute(1, 0, 2).contiguous()


def _on(axis: Optional[Axis], device: torch.device) -> Optional[Axis]:
    return None if axis is None else tuple(a.to(device) for a in axis)


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

    def logit_max(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(max_k (f+b)_k, its class); the classes are uint8 where K <= 256."""
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
