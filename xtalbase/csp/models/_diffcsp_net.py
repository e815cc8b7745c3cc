"""The torch pieces of :mod:`xtalbase.csp.models.diffcsp`: noise schedules and the CSPNet denoiser.

Imported only from inside that module's methods, so ``import xtalbase`` never pulls in torch.

Crystals are held densely, padded to the largest cell of a batch: ``numbers`` (B, N), ``frac`` (B, N, 3),
``lattice`` (B, 3, 3) with rows as lattice vectors, ``mask`` (B, N) true on real atoms. The graph is fully
connected within each crystal, so a dense (B, N, N, ·) edge tensor is both simpler and faster on a CPU than
scatter-based message passing for the small cells CSP deals with.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

#: Atomic numbers 1..MAX_Z have embeddings (row 0 is the padding atom).
MAX_Z = 100


# --------------------------------------------------------------------------- schedules


def cosine_betas(timesteps: int, s: float = 0.008) -> np.ndarray:
    """Cosine beta schedule (Nichol & Dhariwal) for the lattice DDPM, clipped as DiffCSP does."""
    x = np.linspace(0, timesteps, timesteps + 1, dtype=np.float64)
    ac = np.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    ac = ac / ac[0]
    return np.clip(1 - ac[1:] / ac[:-1], 1e-4, 0.9999)


def wrapped_normal_score(x: torch.Tensor, sigma: torch.Tensor, n_images: int = 10) -> torch.Tensor:
    """Minus the gradient of the log density of a unit-period wrapped normal at ``x`` (DiffCSP's target).

    Written as a softmax-weighted sum over periodic images so it cannot underflow at small sigma.
    """
    shifts = torch.arange(-n_images, n_images + 1, dtype=x.dtype, device=x.device)
    d = x.unsqueeze(-1) + shifts
    s2 = (sigma**2).unsqueeze(-1)
    w = torch.softmax(-(d**2) / (2 * s2), dim=-1)
    return (w * d).sum(-1) / s2.squeeze(-1)


def sigma_norm(sigmas: np.ndarray, n_grid: int = 4001) -> np.ndarray:
    """E[score(sigma * eps)^2] for eps ~ N(0, 1) at each sigma, by quadrature (deterministic, no Monte Carlo).

    Dividing the coordinate target by its square root gives it unit scale at every noise level.
    """
    eps = np.linspace(-7.0, 7.0, n_grid)
    w = np.exp(-0.5 * eps**2)
    w /= w.sum()
    sig = torch.as_tensor(sigmas, dtype=torch.float64)[:, None]
    sc = wrapped_normal_score(sig * torch.as_tensor(eps)[None, :], sig.expand(-1, n_grid))
    return (sc**2 * torch.as_tensor(w)[None, :]).sum(-1).numpy()


class Schedules:
    """Every per-step constant of the joint diffusion, indexed by t = 0..T (t = 0 is the clean crystal)."""

    def __init__(self, timesteps: int, sigma_begin: float = 0.005, sigma_end: float = 0.5):
        T = int(timesteps)
        betas = np.concatenate([[0.0], cosine_betas(T)])
        alphas = 1 - betas
        abar = np.cumprod(alphas)
        # posterior std of the lattice DDPM step t -> t-1
        post = np.zeros(T + 1)
        post[1:] = betas[1:] * (1 - abar[:-1]) / (1 - abar[1:])
        sig = np.concatenate([[0.0], np.exp(np.linspace(np.log(sigma_begin), np.log(sigma_end), T))])
        norm = np.ones(T + 1)
        norm[1:] = sigma_norm(sig[1:])
        f = torch.float32
        self.T = T
        self.sigma_begin = sigma_begin
        self.alphas = torch.as_tensor(alphas, dtype=f)
        self.abar = torch.as_tensor(abar, dtype=f)
        self.lat_sigma = torch.as_tensor(np.sqrt(post), dtype=f)
        self.sigmas = torch.as_tensor(sig, dtype=f)
        self.sigma_norm = torch.as_tensor(norm, dtype=f)


# --------------------------------------------------------------------------- the denoiser


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the diffusion time ``t`` in [0, 1] (scaled to 0..1000 as in DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half - 1, 1))
    arg = (t.float() * 1000.0)[:, None] * freqs[None, :]
    return torch.cat([arg.sin(), arg.cos()], dim=-1)


def fourier_frac(d: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """sin/cos(2 pi k d), k = 1..n_freqs, of fractional differences: periodic, so images are the same edge."""
    k = torch.arange(1, n_freqs + 1, dtype=d.dtype, device=d.device) * (2 * math.pi)
    a = (d.unsqueeze(-1) * k).flatten(-2)
    return torch.cat([a.sin(), a.cos()], dim=-1)


class CSPLayer(nn.Module):
    """One round of message passing over all atom pairs of each crystal (pre-norm, residual).

    The edge MLP's first layer acts on [h_i, h_j, L L^T, fourier(f_j - f_i)]; it is split into one linear
    map per part so the node parts are computed once per atom rather than once per pair (same function).
    """

    def __init__(self, hidden: int, n_freqs: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.e_src = nn.Linear(hidden, hidden, bias=False)
        self.e_dst = nn.Linear(hidden, hidden, bias=False)
        self.e_lat = nn.Linear(9, hidden)
        self.e_frac = nn.Linear(6 * n_freqs, hidden, bias=False)
        self.e_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.node = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())

    def forward(self, h, ips, fe, mask):
        x = self.norm(h)
        e = self.e_src(x)[:, :, None] + self.e_dst(x)[:, None, :] + self.e_lat(ips)[:, None, None] + self.e_frac(fe)
        e = self.e_out(e) * mask[:, None, :, None]
        agg = e.sum(2) / mask.sum(1).clamp(min=1)[:, None, None]  # mean over the atoms j of the crystal
        return h + self.node(torch.cat([x, agg], dim=-1))


class CSPNet(nn.Module):
    """E(3)-invariant, periodic denoiser: per-atom coordinate score and lattice noise (equivariant via L).

    Inputs it sees are atom types, the time, L L^T (rotation invariant) and fourier features of f_j - f_i
    (translation invariant and periodic), so the coordinate output is invariant to rotating the lattice and
    to shifting every atom; the lattice output is an invariant 3x3 matrix times L, so it rotates with L.
    """

    def __init__(self, hidden: int = 128, layers: int = 4, n_freqs: int = 10):
        super().__init__()
        self.hidden = hidden
        self.n_freqs = n_freqs
        self.embed = nn.Embedding(MAX_Z + 1, hidden)
        self.inp = nn.Linear(2 * hidden, hidden)
        self.layers = nn.ModuleList(CSPLayer(hidden, n_freqs) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.coord_out = nn.Linear(hidden, 3, bias=False)
        self.lat_out = nn.Linear(hidden, 9, bias=False)

    def forward(self, t, numbers, frac, lattice, mask):
        B, N = numbers.shape
        m = mask.to(frac.dtype)
        ips = (lattice @ lattice.transpose(-1, -2)).reshape(B, 9)
        fe = fourier_frac(frac[:, None, :, :] - frac[:, :, None, :], self.n_freqs)  # [b, i, j] = f_j - f_i
        temb = time_embedding(t, self.hidden)
        h = self.inp(torch.cat([self.embed(numbers), temb[:, None, :].expand(B, N, -1)], dim=-1))
        for layer in self.layers:
            h = layer(h, ips, fe, m)
        h = self.norm(h)
        coord = self.coord_out(h) * m[..., None]
        g = (h * m[..., None]).sum(1) / m.sum(1).clamp(min=1)[:, None]
        lat = self.lat_out(g).reshape(B, 3, 3) @ lattice
        return coord, lat
