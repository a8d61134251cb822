"""L-BFGS whose direction costs a fixed handful of kernels and one synchronisation, whatever the history.

torch.optim.LBFGS computes the direction with the two-loop recursion over its history, pair by pair:
per pair and loop a dot product, an add and a multiply, and a 0-dim tensor passed as `alpha`, which
makes a device-to-host synchronisation. With the default 100 pairs that is ~600 launches and ~200
synchronisations an iteration; on an H200 at 512 px it left the GPU idle for ~9 of an iteration's
15.4 ms (bench/RESULTS.md, "GPU on one H200"; `python -m bench.gpu_profile`).

Here the history lives in one (m × 2 × n) buffer, slot i holding the pair (sᵢ, yᵢ), and the same
recursion runs on the pairs' inner products instead of the vectors (Byrd, Nocedal and Schnabel 1994
give the algebra): three matrix-vector products over the stored pairs (with the gradient, the new s
and the new y) and four dot products give every inner product an iteration needs, one transfer
brings them to the host, the recursion runs there in float64 as two triangular solves of at most
m × m, and one matrix-vector product makes the direction. The inner products of stored pairs with
each other are kept on the host, updated with the new pair's. The result equals torch's two-loop
recursion up to rounding (tests/engine/test_lbfgs.py compares whole trajectories); the line search
is torch's own strong Wolfe search, called as torch.optim.LBFGS calls it.

One iteration per step() (the engine calls step once per iteration, max_iter=1), line search
"strong_wolfe" only, one parameter tensor, minimisation only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.lbfgs import _strong_wolfe  # torch's own line search (pinned torch; no public name)

_CURVATURE_FLOOR = 1e-10  # as torch: a pair with yᵀs at or below this is not stored


class LBFGS(torch.optim.LBFGS):
    """torch.optim.LBFGS's iteration (max_iter=1, strong Wolfe) with the direction from inner products."""

    def __init__(
        self,
        params: list[torch.Tensor],
        lr: float = 1.0,
        max_eval: int = 26,
        history_size: int = 100,
        tolerance_grad: float = 0.0,
        tolerance_change: float = 0.0,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            max_iter=1,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn="strong_wolfe",
        )
        if len(self._params) != 1:
            raise ValueError("this L-BFGS optimises one tensor")
        self._history = _History(history_size)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """One L-BFGS iteration: the closure at the current point, a direction, a strong Wolfe line search."""
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr = float(group["lr"])
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if flat_grad.abs().max() <= group["tolerance_grad"]:
            return orig_loss
        state["n_iter"] += 1

        if state["n_iter"] == 1:
            d = flat_grad.neg()
            t: float | torch.Tensor = min(1.0, 1.0 / flat_grad.abs().sum()) * lr  # as torch: 1/|g|₁ at first
        else:
            y = flat_grad.sub(state["prev_flat_grad"])
            s = state["d"].mul(state["t"])
            d = self._history.direction(flat_grad, s, y)
            t = lr
        prev = state.get("prev_flat_grad")
        if prev is None:
            state["prev_flat_grad"] = flat_grad.clone(memory_format=torch.contiguous_format)
        else:
            prev.copy_(flat_grad)
        state["prev_loss"] = loss

        gtd = flat_grad.dot(d)
        if gtd > -group["tolerance_change"]:
            state["d"], state["t"] = d, t
            return orig_loss
        x_init = self._clone_param()

        def obj_func(x: list[torch.Tensor], step: float, direction: torch.Tensor) -> tuple[float, torch.Tensor]:
            return self._directional_evaluate(closure, x, step, direction)

        loss, flat_grad, t, evaluations = _strong_wolfe(
            obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=group["max_eval"] - 1
        )
        self._add_grad(t, d)
        state["func_evals"] += evaluations
        state["d"], state["t"] = d, t
        return orig_loss


class _History:
    """The stored (s, y) pairs in one buffer and their inner products on the host."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer: torch.Tensor | None = None  # (size, 2, n): slot i holds s_i in [i, 0] and y_i in [i, 1]
        self.order: list[int] = []  # the used slots, oldest pair first; slots fill 0, 1, ... then cycle
        self.sy = torch.zeros(size, size, dtype=torch.float64)  # sy[i, j] = s_iᵀ y_j, by slot
        self.yy = torch.zeros(size, size, dtype=torch.float64)  # yy[i, j] = y_iᵀ y_j, by slot
        self.gamma = 1.0  # the initial inverse Hessian's scale: yᵀs / yᵀy of the newest pair

    def direction(self, g: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Store (s, y) if its curvature yᵀs is positive, then the L-BFGS direction −H·g."""
        if self.buffer is None:
            # empty, not zeros: only used slots are read, so a short job never touches the rest (CPU pages)
            self.buffer = torch.empty(self.size, 2, g.numel(), dtype=g.dtype, device=g.device)
        used = len(self.order)  # slots [0, used) hold pairs
        pairs = self.buffer[:used].view(2 * used, g.numel())  # rows s_0, y_0, s_1, y_1, ...
        on_device = torch.cat([pairs @ g, pairs @ s, pairs @ y, torch.stack([s.dot(g), y.dot(g), s.dot(y), y.dot(y)])])
        products = on_device.to(torch.float64).cpu()  # the iteration's one synchronisation
        with_g, with_s, with_y = products[: 2 * used], products[2 * used : 4 * used], products[4 * used : 6 * used]
        s_new_g, y_new_g, ys, yy = products[6 * used :].tolist()
        s_g = torch.zeros(self.size, dtype=torch.float64)
        y_g = torch.zeros(self.size, dtype=torch.float64)
        s_g[:used], y_g[:used] = with_g[0::2], with_g[1::2]
        if ys > _CURVATURE_FLOOR:
            slot = self.order.pop(0) if used == self.size else used
            self.buffer[slot, 0].copy_(s)
            self.buffer[slot, 1].copy_(y)
            self.sy[:used, slot] = with_y[0::2]  # s_jᵀ y_new
            self.sy[slot, :used] = with_s[1::2]  # s_newᵀ y_j
            self.yy[:used, slot] = with_y[1::2]
            self.yy[slot, :used] = with_y[1::2]
            self.sy[slot, slot], self.yy[slot, slot] = ys, yy
            s_g[slot], y_g[slot] = s_new_g, y_new_g
            self.order.append(slot)
            self.gamma = ys / yy
        return self._two_loop(g, s_g, y_g)

    def _two_loop(self, g: torch.Tensor, s_g: torch.Tensor, y_g: torch.Tensor) -> torch.Tensor:
        """torch's two-loop recursion, on inner products: d = −γg − γ Σ αᵢyᵢ + Σ (αᵢ − βᵢ)sᵢ.

        In the pairs' order, oldest first, with ρᵢ = 1/sᵢᵀyᵢ: the first loop's αᵢ = ρᵢ sᵢᵀ(−g − Σ_{j>i} αⱼyⱼ)
        is the upper triangular system triu(SY)·α = −Sᵀg; the second loop's βᵢ = ρᵢ yᵢᵀ(γq + Σ_{j<i} (αⱼ − βⱼ)sⱼ),
        with q = −g − Yα, is the lower triangular system tril(SYᵀ)·β = γYᵀq + tril(SYᵀ, −1)·α.
        """
        gamma = self.gamma
        if not self.order:
            return g.mul(-gamma)
        index = torch.tensor(self.order)
        sy = self.sy[index][:, index]
        yy = self.yy[index][:, index]
        alpha = torch.linalg.solve_triangular(sy.triu(), -s_g[index].unsqueeze(1), upper=True).squeeze(1)
        y_q = -y_g[index] - yy @ alpha
        right = gamma * y_q + sy.T.tril(-1) @ alpha
        beta = torch.linalg.solve_triangular(sy.T.tril(), right.unsqueeze(1), upper=False).squeeze(1)
        used = len(self.order)  # the used slots are 0..used-1, in some order
        coefficients = torch.zeros(used, 2, dtype=torch.float64)  # per slot: on its s, on its y
        coefficients[index, 0] = alpha - beta
        coefficients[index, 1] = -gamma * alpha
        assert self.buffer is not None
        pairs = self.buffer[:used].view(2 * used, g.numel())
        weights = coefficients.flatten().to(dtype=g.dtype, device=g.device)
        return torch.addmv(g, pairs.T, weights, beta=-gamma)
