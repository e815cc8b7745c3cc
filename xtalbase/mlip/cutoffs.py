"""n2p2's cutoff functions and their radial derivatives, in torch (any dtype and device).

``x = (r - α R_c) / (R_c - α R_c)``; below the inner radius ``α R_c`` the function is 1, from ``R_c`` on 0.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_TANH1_CUBED = math.tanh(1.0) ** 3


def cutoff(name: str, r: "torch.Tensor", rc: float, alpha: float = 0.0) -> tuple["torch.Tensor", "torch.Tensor"]:
    """``(f_c(r), df_c/dr)`` for the cutoff function ``name`` (see :data:`xtalbase.mlip.recipe.CUTOFFS`)."""
    import torch

    inside = r < rc
    if name in ("tanhu", "tanh"):
        t = torch.tanh(1.0 - r / rc)
        f = t ** 3
        df = -3.0 * t * t * (1.0 - t * t) / rc
        if name == "tanh":
            f, df = f / _TANH1_CUBED, df / _TANH1_CUBED
        return torch.where(inside, f, 0.0), torch.where(inside, df, 0.0)
    if name == "hard":
        return inside.to(r.dtype), torch.zeros_like(r)
    rci = alpha * rc
    width = rc - rci
    x = ((r - rci) / width).clamp(0.0, 1.0)
    if name == "cos":
        f = 0.5 * (torch.cos(math.pi * x) + 1.0)
        dfdx = -0.5 * math.pi * torch.sin(math.pi * x)
    elif name == "exp":
        safe = torch.where(x < 1.0, x, 0.0)
        denom = 1.0 - safe * safe
        f = torch.where(x < 1.0, torch.exp(1.0 - 1.0 / denom), 0.0)
        dfdx = f * (-2.0 * safe / (denom * denom))
    elif name == "poly1":
        f = (2.0 * x - 3.0) * x * x + 1.0
        dfdx = 6.0 * x * x - 6.0 * x
    elif name == "poly2":
        f = ((15.0 - 6.0 * x) * x - 10.0) * x ** 3 + 1.0
        dfdx = x * x * (-30.0 * x * x + 60.0 * x - 30.0)
    elif name == "poly3":
        f = x ** 4 * (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) + 1.0
        dfdx = x ** 3 * (140.0 * x ** 3 - 420.0 * x * x + 420.0 * x - 140.0)
    elif name == "poly4":
        f = x ** 5 * (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) + 1.0
        dfdx = x ** 4 * (-630.0 * x ** 4 + 2520.0 * x ** 3 - 3780.0 * x * x + 2520.0 * x - 630.0)
    else:
        raise ValueError(f"unknown cutoff function {name!r}")
    inner = r <= rci
    f = torch.where(inner, 1.0, f)
    df = torch.where(inner, 0.0, dfdx / width)
    return torch.where(inside, f, 0.0), torch.where(inside, df, 0.0)
