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
are not finite) interpolate, at those pixels only, the classes that can still win there (`ClassMaxPlan`).
Tested against interpolating all classes in tests/test_class_max.py; docs/SCORES.md.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from hypood_ros.errors import ConfigError
from hypood_ros.scores import class_max_native
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
    """[K, blocks]: the classes whose largest value over a block's 4 corners (`by` [4, K, blocks]) reaches the
    best smallest value of a class there, less the slack; all classes where a corner is not finite."""
    lower = torch.minimum(torch.minimum(by[0], by[1]), torch.minimum(by[2], by[3]))
    upper = torch.maximum(torch.maximum(by[0], by[1]), torch.maximum(by[2], by[3]))
    return (upper >= lower.amax(dim=0) - slack) | ~finite


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
    unchanged) that the output pixels with lower neighbour (i, j) read. Decided blocks take their maxima
    from the winners' maps. For an undecided block a class k can only
    be the maximum at its pixels if its largest value over the 4 cells reaches the best smallest value of a
    class there (less the margin): interp(l_k) <= max_cells l_k and interp(l_c) >= min_cells l_c. Only those
    candidates (in class order, so the first maximum is torch.argmax's) are interpolated at its pixels; a
    block with a value that is not finite takes all K classes. The undecided pixels of the whole frame are
    done at once (a band of rows holds too few of them for PyTorch's per-operation cost), the rest per band;
    docs/SCORES.md says how.
    """

    def __init__(self, inputs: ScoreInputs, size: Sequence[int], class_scores: bool, logit: bool = True,
                 norm: bool = False) -> None:
        """`logit`: interpolate max_k (f+b)_k (for scores that read it; class ids come without it);
        `class_scores`: max_k f_k too; `norm`: ||z|| too, as one more channel of the winners' maps (the same
        interpolation as `ScoreInputs.resized_norm`, in the same pass)."""
        self.inputs = inputs
        self.size = (int(size[0]), int(size[1]))
        self.class_scores = class_scores
        self.logit = logit
        logits = inputs.full_logits()
        b, k, h, w = logits.shape
        device = logits.device
        self.rows = _on(axis_weights(h, self.size[0], 0, self.size[0]), device)
        self.cols = _on(axis_weights(w, self.size[1], 0, self.size[1]), device)
        self.col_index = self.cols[0] if self.cols is not None else torch.arange(w, device=device)
        self.bias = inputs.head.bias.float().to(device)
        top, winner = logits.max(dim=1)
        scale = torch.maximum(top, -logits.amin(dim=1)).abs() + self.bias.abs().max()  # max_k |l_k| + max_k |b_k|
        decided = _decided(logits, top, winner, scale)
        codes = winner
        channels = [top] if logit else []
        if class_scores:
            f = inputs.class_scores()
            f_top, f_winner = f.max(dim=1)
            decided &= _decided(f, f_top, f_winner, scale)
            codes = winner * k + f_winner
            channels.append(logits.gather(1, f_winner.unsqueeze(1))[:, 0])
        self._norm_channel: Optional[int] = None
        if norm and tuple(inputs.source_norm().shape[2:]) == (h, w):
            self._norm_channel = len(channels)
            channels.append(inputs.source_norm()[:, 0].float())
        codes = torch.where(decided, codes, torch.full_like(codes, -1))
        # A code survives where all 4 cells an output pixel reads from this one (as its lower index) agree.
        codes = _agree(_agree(codes, 1, self.rows), 2, self.cols)
        # [B,C,h,w]: the winner's logit l_c and/or the logit l_c' of f's winner c', then ||z|| if asked for
        # (C = 0: class ids only)
        self.winners = torch.stack(channels, dim=1) if channels else None
        self.row_index = self.rows[0] if self.rows is not None else torch.arange(self.size[0], device=device)
        # Per-pixel maps are made columns first on the network rows, [h,B,W], and then whole rows are copied.
        known = codes.clamp_min(0)
        winner = known // k if class_scores else known
        self._class_rows = _columns(winner.to(torch.uint8 if k <= 256 else torch.int64), self.col_index)
        if class_scores:  # the bias of f's winner, subtracted from its interpolated logit
            self._bias_rows = _columns(self.bias[known % k], self.col_index)
        undecided = codes < 0
        self._undecided_rows = _columns(undecided, self.col_index)  # [h,B,W] bool
        # Output pixels per network row and column (i0 does not decrease along an axis: each is a range).
        self._span_y = _spans(self.row_index, h)
        self._span_x = _spans(self.col_index, w)
        # Undecided blocks that some output pixel reads (when shrinking, a cell may be no pixel's lower index).
        read = (self._span_y[1] > 0).view(1, -1, 1) & (self._span_x[1] > 0).view(1, 1, -1)
        bb, i, j = (undecided & read).nonzero(as_tuple=True)
        self._blocks = (bb, i, j)
        pixels = self._span_y[1].index_select(0, i) * self._span_x[1].index_select(0, j)
        #: Share of output pixels that the winners do not decide; above `FULL_SHARE` the caller interpolates
        #: all classes instead (random logits are class borders everywhere).
        self.undecided_share = float(pixels.sum()) / max(1, b * self.size[0] * self.size[1])
        #: (blocks, (candidates,)) of each tier of undecided blocks, for inspection.
        self.tiers: List[Tuple[int, Tuple[int, ...]]] = []
        #: Per tier: (batch, flat index in [B,H,W], max logit, its class, max class score) of undecided pixels.
        self._found: List[Tuple[torch.Tensor, ...]] = []
        self._maps: Optional[Tuple[torch.Tensor, ...]] = None  # the same as frame-sized maps, for bands
        self._uem_difference: Optional[torch.Tensor] = None
        if bb.numel() and self.undecided_share <= FULL_SHARE:
            self._undecided_maxima(logits, scale)

    def _native(self):
        """The compiled loops (`class_max_native`) for CPU float32 logits without autograd, where they load."""
        logits = self.inputs.full_logits()
        if logits.device.type != "cpu" or logits.dtype != torch.float32 or logits.requires_grad:
            return None
        return class_max_native.library()

    def _undecided_maxima(self, logits: torch.Tensor, scale: torch.Tensor) -> None:
        """The maxima at the undecided output pixels, all of the frame at once (few operations per frame),
        kept per tier (`_found`) for the bands. On the CPU the compiled loop does them where it can
        (`class_max_native`; the same bits), leaving PyTorch the blocks with a value that is not finite."""
        lib = self._native()
        if lib is not None:
            handled, found = class_max_native.undecided_maxima(
                lib, logits, self.bias, self.size, self.rows, self.cols, self._span_y, self._span_x,
                self._blocks, self.class_scores, MARGIN, _TINY)
            self.tiers.append((int(handled.sum()), ()))  # candidates chosen per block inside the loop
            self._found.append((*found[:3], found[3].to(self._class_rows.dtype), found[4]))
            if bool(handled.all()):
                return
            self._blocks = tuple(t[~handled] for t in self._blocks)  # from here: the blocks left to PyTorch
        b, k, h, w = logits.shape
        bb, i, j = self._blocks
        ni = (i + 1).clamp_max(h - 1) if self.rows is not None else i
        nj = (j + 1).clamp_max(w - 1) if self.cols is not None else j
        planes = logits.transpose(0, 1).reshape(k, -1)  # [K, B*h*w], a view for B = 1
        # Corners in the order the interpolation reads them: (i0,c0), (i0,c1), (i1,c0), (i1,c1).
        flat = [(bb * h + r) * w + c for r, c in ((i, j), (i, nj), (ni, j), (ni, nj))]
        corners = torch.stack([planes.index_select(1, f) for f in flat])  # [4, K, blocks]
        slack = MARGIN * torch.stack([scale.view(-1).index_select(0, f) for f in flat]).amax(dim=0) + _TINY
        finite = torch.isfinite(corners).all(dim=1).all(dim=0)  # [blocks]
        chosen = _can_win(corners, slack, finite)
        if self.class_scores:  # one set for both maxima: a class that cannot win one is below its maximum
            chosen |= _can_win(corners - self.bias.view(1, -1, 1), slack, finite)
        count = chosen.sum(dim=0)
        # Blocks in tiers of similar candidate counts, each padded to its own largest: a few blocks with many
        # candidates (near-ties of several classes) do not make every block pay for them. Blocks with a value
        # that is not finite go last, where torch's max decides (NaN included) as in the reference.
        tier = sum((count > bound).long() for bound in TIERS)
        tier = torch.where(finite, tier, torch.full_like(tier, len(TIERS)))
        # Each tier's blocks are padded to its largest block: the blocks at the border (which also hold the
        # clamped pixels) are larger than the others and go to groups of their own.
        big = [(span[1] > (span[1][1:-1].max() if span[1].numel() > 2 else 0)).long().index_select(0, at)
               for span, at in ((self._span_y, i), (self._span_x, j))]
        group = tier * 4 + big[0] * 2 + big[1]
        for g in torch.unique(group).tolist():
            mine = (group == g).nonzero()[:, 0]
            self._maxima(mine, corners.index_select(2, mine), chosen.index_select(1, mine),
                         exact_max=g // 4 >= len(TIERS))

    def _maxima(self, mine: torch.Tensor, corners: torch.Tensor, chosen: torch.Tensor, exact_max: bool) -> None:
        """Interpolate the candidates of blocks `mine` ([4, K, n] corners) at all their pixels; keep the maxima.

        One candidate set serves max_k (f+b)_k and max_k f_k: it holds every class that can win either, and a
        class that cannot win one of them is below that one's maximum at every pixel of the block (the bound
        above), so it changes neither the maximum nor the first maximum. The pixels of the blocks form an
        [n, rows, cols] grid of the tier's largest block: the columns are blended once per block column on the
        block's two network rows, then the rows by broadcasting (the products and sums of `interpolate_rows`,
        in its order). A smaller block repeats its last row and column: the same pixel with the same value,
        written twice."""
        n = mine.numel()
        ids = _candidate_ids(chosen)  # [M, n]
        m = ids.shape[0]
        self.tiers.append((n, (m,)))
        v = corners.gather(1, ids.unsqueeze(0).expand(4, -1, -1)).unsqueeze(3)  # [4, M, n, 1]
        bb, i, j = (t.index_select(0, mine) for t in self._blocks)
        y0, ny = (a.index_select(0, i) for a in self._span_y)
        x0, nx = (a.index_select(0, j) for a in self._span_x)
        y = y0.unsqueeze(1) + torch.minimum(torch.arange(int(ny.max()), device=ny.device), ny.unsqueeze(1) - 1)
        x = x0.unsqueeze(1) + torch.minimum(torch.arange(int(nx.max()), device=nx.device), nx.unsqueeze(1) - 1)
        if self.cols is not None:  # [M, n, cols] on the block's upper and lower network row
            w0, w1 = (a.index_select(0, x.view(-1)).view(x.shape) for a in self.cols[2:])
            top, bottom = v[0] * w0 + v[1] * w1, v[2] * w0 + v[3] * w1
        else:
            top, bottom = v[0], v[2]
        top, bottom = top.unsqueeze(2), bottom.unsqueeze(2)  # [M, n, 1, cols]
        if self.rows is not None:
            w0, w1 = (a.index_select(0, y.view(-1)).view(1, *y.shape, 1) for a in self.rows[2:])
            blended = top * w0 + bottom * w1  # [M, n, rows, cols]
        else:
            blended = top
        per_block = blended.shape[2] * blended.shape[3]
        value, pos = _first_max(blended.reshape(m, -1), exact_max)
        classes = ids.unsqueeze(2).expand(m, n, per_block).gather(0, pos.view(1, n, per_block))
        class_score = None
        if self.class_scores:
            f = blended - self.bias.index_select(0, ids.view(-1)).view(m, n, 1, 1)
            class_score = _first_max(f.reshape(m, -1), exact_max)[0]
        h, w = self.size
        batch = bb.view(n, 1, 1).expand(n, blended.shape[2], blended.shape[3])
        found = [batch.reshape(-1), ((batch * h + y.unsqueeze(2)) * w + x.unsqueeze(1)).view(-1), value,
                 classes.view(-1).to(self._class_rows.dtype), class_score]
        if blended.requires_grad:  # a pixel written twice would take its gradient twice: once each
            rows, cols = blended.shape[2:]
            once = ((torch.arange(rows, device=ny.device) < ny.view(-1, 1)).unsqueeze(2)
                    & (torch.arange(cols, device=nx.device) < nx.view(-1, 1)).unsqueeze(1)).view(-1).nonzero()[:, 0]
            found = [None if t is None else t.index_select(0, once) for t in found]
        self._found.append(tuple(found))

    def band(self, rows: Tuple[int, int]) -> "ClassMaxInputs":
        """The maxima at output rows `rows`."""
        r0, r1 = rows
        row_index = self.row_index[r0:r1]
        lib = self._native()
        if lib is not None and self.winners is not None:  # one pass, the same bits
            values, classes, class_score = class_max_native.band(
                lib, self.winners, self.size, rows, self.rows, self.cols, self._class_rows,
                self._bias_rows if self.class_scores else None, (1 if self.logit else 0) if self.class_scores else None)
        else:
            values = None if self.winners is None else interpolate_rows(self.winners, self.size, rows)  # [B,C,n,W]
            classes = self._class_rows.index_select(0, row_index).permute(1, 0, 2).contiguous()
            class_score = None
            if self.class_scores:
                bias = self._bias_rows.index_select(0, row_index).permute(1, 0, 2)
                class_score = values[:, 1 if self.logit else 0] - bias
        if self._found and rows == (0, self.size[0]):  # the whole frame: the undecided pixels go straight in
            plane = self.size[0] * self.size[1]
            for batch, at, logit, ids, score in self._found:
                if self.logit:  # channel 0 of [B,C,H,W]
                    values.view(-1).scatter_(0, at + batch * (values.shape[1] - 1) * plane, logit)
                classes.view(-1).scatter_(0, at, ids)
                if class_score is not None:
                    class_score.view(-1).scatter_(0, at, score)
        logit = values[:, 0] if self.logit else None
        if self._found and rows != (0, self.size[0]):  # a band: merged from frame-sized maps (autograd-safe)
            undecided = self._undecided_rows.index_select(0, row_index).permute(1, 0, 2)
            maps = [None if m is None else m[:, r0:r1] for m in self._frame_maps()]
            if logit is not None:
                logit = torch.where(undecided, maps[0], logit)
            classes = torch.where(undecided, maps[1], classes)
            if class_score is not None:
                class_score = torch.where(undecided, maps[2], class_score)
        norm = None if self._norm_channel is None else values[:, self._norm_channel:self._norm_channel + 1]
        return ClassMaxInputs(self, rows, logit, classes, class_score, norm)

    def uem_source_difference(self) -> torch.Tensor:
        """u_1 - u_0 [B,1,hu,wu] on the UEM logits' own grid, made once per frame."""
        if self._uem_difference is None:
            u = self.inputs.uem_logits
            if u is None:
                raise ConfigError("this score needs UEM logits, but the model gave none")
            u = u.float()
            self._uem_difference = u[:, 1:2] - u[:, 0:1]
        return self._uem_difference

    def _frame_maps(self) -> Tuple[Optional[torch.Tensor], ...]:
        """The undecided pixels' maxima as frame-sized maps [B,H,W] (other pixels unset), made once."""
        if self._maps is None:
            b = self._class_rows.shape[1]
            size = (b, self.size[0], self.size[1])
            device = self._class_rows.device
            self._maps = (torch.empty(size, device=device), torch.empty(size, dtype=self._class_rows.dtype,
                          device=device), torch.empty(size, device=device) if self.class_scores else None)
            for _, at, *found in self._found:
                for m, v in zip(self._maps, found):
                    if m is not None:
                        m.view(-1).scatter_(0, at, v)
        return self._maps

def _spans(index: torch.Tensor, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(first output position, count) per network position, for the non-decreasing lower indices `index`."""
    count = torch.bincount(index, minlength=n)
    return torch.cumsum(count, 0) - count, count


def _candidate_ids(chosen: torch.Tensor) -> torch.Tensor:
    """[M, n] the classes marked in `chosen` [K, n], in class order (so a first maximum is torch.argmax's);
    columns with fewer than M padded with their first class, which ties it and comes later: neither the
    maximum nor the first maximum changes."""
    k, n = chosen.shape
    count = chosen.sum(dim=0)
    m = int(count.max())
    rank = torch.where(chosen, chosen.cumsum(dim=0) - 1, m)  # a class's place among its column's candidates
    ids = torch.zeros(m + 1, n, dtype=torch.int64, device=chosen.device)  # row m: a bin for the others
    ids.scatter_(0, rank, torch.arange(k, device=chosen.device).unsqueeze(1).expand(k, n))
    return torch.where(torch.arange(m, device=ids.device).unsqueeze(1) >= count, ids[:1], ids[:m])


def _first_max(values: torch.Tensor, exact: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """max and first argmax over dim 0 of [M, N]: torch.max where `exact` (NaN), else a running comparison,
    several times faster for a few rows (ties keep the earlier row, as torch.max)."""
    if exact or values.shape[0] > TIERS[-1]:
        found = values.max(dim=0)
        return found.values, found.indices
    best = values[0]
    pos = torch.zeros_like(best, dtype=torch.int64)
    for m in range(1, values.shape[0]):
        better = values[m] > best
        best = torch.where(better, values[m], best)
        pos.masked_fill_(better, m)
    return best, pos


def _columns(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """A [B,h,w] map at the output's columns, network rows outermost: [h,B,W] contiguous."""
    return t.index_select(2, index).permute(1, 0, 2).contiguous()


def _on(axis: Optional[Axis], device: torch.device) -> Optional[Axis]:
    return None if axis is None else tuple(a.to(device) for a in axis)


class ClassMaxInputs:
    """What the class-maximum scores read, at a band of output rows: the same methods as `ScoreInputs`
    except the K class maps, which do not exist here. ||z|| and the UEM logits are interpolated on first use."""

    def __init__(self, plan: ClassMaxPlan, rows: Tuple[int, int], logit: Optional[torch.Tensor], classes: torch.Tensor,
                 class_score: Optional[torch.Tensor], norm: Optional[torch.Tensor] = None) -> None:
        self.plan, self.rows = plan, rows
        self.head, self.sml_stats = plan.inputs.head, plan.inputs.sml_stats
        self.num_classes = plan.inputs.num_classes
        self._logit, self._classes, self._class_score = logit, classes, class_score
        self._norm: Optional[torch.Tensor] = norm  # interp(||z||) [B,1,n,W]: with the winners or on first use
        self._uem: Optional[torch.Tensor] = None

    def logit_max(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(max_k (f+b)_k, its class); the classes are uint8 where K <= 256."""
        if self._logit is None:
            raise RuntimeError("the plan was made without the logits' winners")
        return self._logit, self._classes

    def class_ids(self) -> torch.Tensor:
        return self._classes

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
        """interp(u_1 - u_0): interpolation is linear, so this one channel is interp(u_1) - interp(u_0) to
        float32 rounding (the all-classes path interpolates both and subtracts; docs/SCORES.md)."""
        if self._uem is not None:
            return self._uem[:, 1] - self._uem[:, 0]
        return interpolate_rows(self.plan.uem_source_difference(), self.plan.size, self.rows)[:, 0]
