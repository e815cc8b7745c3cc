"""DiffCSP: joint equivariant diffusion of lattice and fractional coordinates for a fixed composition.

Our own small torch implementation of the idea of Jiao et al., "Crystal Structure Prediction by Joint
Equivariant Diffusion" (NeurIPS 2023):

* the lattice L (rows are lattice vectors) follows a DDPM with a cosine schedule; the network predicts its
  noise, as an invariant 3x3 matrix times L so the prediction rotates with the cell;
* fractional coordinates follow a variance-exploding diffusion on the torus (wrapped normal, geometric
  sigmas); the network predicts the wrapped-normal score, scaled by ``sigma_norm`` to unit size;
* the denoiser (CSPNet, :mod:`._diffcsp_net`) passes messages over all atom pairs of a crystal using only
  atom types, L L^T and Fourier features of f_j - f_i, so it is invariant to rotations and to periodic
  translations, and permutation equivariant;
* sampling is predictor-corrector (a Langevin corrector on the coordinates, then the reverse step).

Lattices are learned in units of ``lattice_scale_ * n_atoms ** (1/3)`` Å (one scale fitted on the training
cells), so a clean lattice has entries of order one, like the N(0, 1) prior it is diffused towards.
torch is imported only inside methods, so importing this module is cheap.
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Any, Sequence

import numpy as np

from xtalbase.csp.models.base import CspModel, CspModelError, register_model
from xtalbase.platform.convert import StructureArrays

#: Largest atomic number with an embedding (kept equal to ``_diffcsp_net.MAX_Z``; checked without torch).
_MAX_Z = 100
#: Atom pairs per sampling batch (bounds the (B, N, N, hidden) edge tensors; ~160 five-atom cells). Timed on one
#: core, 80..5000 cells per batch differ by < 20 %, so this only caps memory.
_CHUNK_PAIRS = 1 << 12


def _check_numbers(numbers: np.ndarray, max_atoms: int, what: str) -> np.ndarray:
    z = np.asarray(numbers, dtype=np.int64).reshape(-1)
    if z.size == 0:
        raise CspModelError(f"{what} has no atoms")
    if z.min() < 1 or z.max() > _MAX_Z:
        bad = int(z.max()) if z.max() > _MAX_Z else int(z.min())
        raise CspModelError(f"{what} has atomic number {bad}; DiffCSP embeds elements 1..{_MAX_Z} only")
    if z.size > max_atoms:
        raise CspModelError(f"{what} has {z.size} atoms, more than max_atoms={max_atoms}; raise max_atoms to use it")
    return z


@register_model
class DiffCSP(CspModel):
    """Joint lattice / fractional-coordinate diffusion (DiffCSP) with a small periodic message-passing denoiser.

    Parameters: ``hidden`` width and ``layers`` message-passing rounds of the denoiser; ``timesteps`` of the
    diffusion (training and sampling); ``epochs``, ``batch_size`` and peak ``lr`` (Adam, cosine decay);
    ``step_lr`` the Langevin corrector's step (0 skips the corrector and halves sampling time);
    ``n_freqs`` Fourier frequencies per fractional axis; ``max_atoms`` the largest cell accepted;
    ``device``, ``num_threads`` (torch CPU threads while fitting/sampling), ``random_state``, ``verbose``.
    """

    name = "diffcsp"
    summary = "DiffCSP: joint equivariant diffusion of lattice and fractional coordinates (torch, CPU-sized)"
    artifact_format = "diffcsp-torch"

    def __init__(self, hidden: int = 128, layers: int = 4, timesteps: int = 1000, epochs: int = 600, batch_size: int = 32,
                 lr: float = 1e-3, step_lr: float = 5e-7, n_freqs: int = 10, max_atoms: int = 64, device: str = "cpu",
                 num_threads: int = 1, random_state: int = 0, verbose: bool = False):
        self.hidden = hidden
        self.layers = layers
        self.timesteps = timesteps
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.step_lr = step_lr
        self.n_freqs = n_freqs
        self.max_atoms = max_atoms
        self.device = device
        self.num_threads = num_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers

    def _log(self, msg: str) -> None:
        if self.verbose:
            print(f"[diffcsp] {msg}", file=sys.stderr, flush=True)

    def _new_net(self):
        from xtalbase.csp.models._diffcsp_net import CSPNet

        return CSPNet(hidden=int(self.hidden), layers=int(self.layers), n_freqs=int(self.n_freqs))

    def _schedules(self):
        from xtalbase.csp.models._diffcsp_net import Schedules

        sched = getattr(self, "_sched", None)
        if sched is None or sched.T != int(self.timesteps):
            sched = self._sched = Schedules(int(self.timesteps))
        return sched

    def _pack(self, structures: Sequence[StructureArrays], what: str):
        """Padded tensors (numbers, frac, normalised lattice, mask) for a list of structures."""
        import torch

        n = np.array([len(s.numbers) for s in structures])
        N = int(n.max())
        z = np.zeros((len(structures), N), dtype=np.int64)
        f = np.zeros((len(structures), N, 3), dtype=np.float32)
        lat = np.zeros((len(structures), 3, 3), dtype=np.float32)
        for i, s in enumerate(structures):
            z[i, : n[i]] = _check_numbers(s.numbers, int(self.max_atoms), f"{what} structure {i}")
            f[i, : n[i]] = np.mod(np.asarray(s.frac_coords, dtype=np.float64), 1.0)
            lat[i] = np.asarray(s.cell, dtype=np.float64) / (self.lattice_scale_ * n[i] ** (1 / 3))
        return torch.as_tensor(z), torch.as_tensor(f), torch.as_tensor(lat), torch.as_tensor(z > 0)

    def _loss(self, net, sched, z, f, lat, mask, gen):
        """Denoising loss of one batch at random times: lattice noise MSE + normalised coordinate-score MSE."""
        import torch

        from xtalbase.csp.models._diffcsp_net import wrapped_normal_score

        B = z.shape[0]
        t = torch.randint(1, sched.T + 1, (B,), generator=gen)
        eps_l = torch.randn(B, 3, 3, generator=gen)
        eps_x = torch.randn(f.shape, generator=gen)
        ab = sched.abar[t][:, None, None]
        lat_t = ab.sqrt() * lat + (1 - ab).sqrt() * eps_l
        sig = sched.sigmas[t][:, None, None].expand_as(eps_x)
        f_t = torch.remainder(f + sig * eps_x, 1.0)
        target = wrapped_normal_score(sig * eps_x, sig) / sched.sigma_norm[t].sqrt()[:, None, None]
        pred_x, pred_l = net(t.float() / sched.T, z, f_t, lat_t, mask)
        m = mask[..., None].float()
        loss_x = (((pred_x - target) ** 2) * m).sum() / (3 * m.sum())
        loss_l = ((pred_l - eps_l) ** 2).mean()
        return loss_l + loss_x

    # ------------------------------------------------------------------ fit

    def fit(self, train: Sequence[StructureArrays], val: Sequence[StructureArrays] | None = None) -> "DiffCSP":
        """Train the denoiser on ``train``; ``val`` (optional) only picks the epoch with the lowest loss."""
        import torch

        if len(train) == 0:
            raise CspModelError("DiffCSP.fit needs at least one training structure")
        old_threads = torch.get_num_threads()
        torch.set_num_threads(int(self.num_threads))
        try:
            return self._fit(train, val)
        finally:
            torch.set_num_threads(old_threads)

    def _fit(self, train, val):
        import copy

        import torch

        vol = np.array([abs(np.linalg.det(np.asarray(s.cell, dtype=np.float64))) / len(s.numbers) for s in train])
        self.lattice_scale_ = float(np.mean(vol ** (1 / 3)))
        sched = self._schedules()
        z, f, lat, mask = self._pack(train, "training")
        val_t = self._pack(val, "validation") if val else None
        with torch.random.fork_rng(devices=[]):  # deterministic init without touching the caller's RNG
            torch.manual_seed(int(self.random_state))
            net = self._new_net()
        dev = torch.device(self.device)
        net.to(dev)
        gen = torch.Generator().manual_seed(int(self.random_state))
        S, bs = len(train), max(1, int(self.batch_size))
        steps = max(1, int(self.epochs)) * ((S + bs - 1) // bs)
        opt = torch.optim.Adam(net.parameters(), lr=float(self.lr))
        # cosine decay to 5 % of the peak: a fixed budget ends on small steps instead of noise-level jitter
        sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(k, steps) / steps)))
        self.history_: list[dict[str, Any]] = []
        best, best_state, t0 = np.inf, None, time.perf_counter()
        for epoch in range(int(self.epochs)):
            net.train()
            perm = torch.randperm(S, generator=gen)
            tot = 0.0
            for i in range(0, S, bs):
                idx = perm[i : i + bs]
                nb = int(mask[idx].sum(1).max())
                batch = (z[idx, :nb], f[idx, :nb], lat[idx], mask[idx, :nb])
                loss = self._loss(net, sched, *(x.to(dev) for x in batch), gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                sch.step()
                tot += float(loss.detach()) * len(idx)
            rec: dict[str, Any] = {"epoch": epoch + 1, "train_loss": tot / S}
            if val_t is not None:
                rec["val_loss"] = self._eval_loss(net, sched, val_t, dev)
                if rec["val_loss"] < best:
                    best, best_state = rec["val_loss"], copy.deepcopy(net.state_dict())
            self.history_.append(rec)
            self._log(f"epoch {epoch + 1}/{self.epochs} train {rec['train_loss']:.4f}"
                      + (f" val {rec['val_loss']:.4f}" if "val_loss" in rec else "") + f" ({time.perf_counter() - t0:.0f} s)")
        if best_state is not None:
            net.load_state_dict(best_state)
            self.best_epoch_ = int(min(self.history_, key=lambda r: r["val_loss"])["epoch"])
        else:
            self.best_epoch_ = int(self.epochs)
        self.net_ = net.eval()
        self.n_parameters_ = int(sum(p.numel() for p in net.parameters()))
        return self

    def _eval_loss(self, net, sched, packed, dev) -> float:
        """Validation loss with a fixed generator: the same times and noise every epoch, so epochs compare."""
        import torch

        z, f, lat, mask = packed
        gen = torch.Generator().manual_seed(int(self.random_state) + 1)
        net.eval()
        tot, S, bs = 0.0, len(z), 512
        with torch.no_grad():
            for _ in range(2):  # two draws of (t, noise) per crystal to steady the estimate
                for i in range(0, S, bs):
                    sl = slice(i, i + bs)
                    nb = int(mask[sl].sum(1).max())
                    batch = (z[sl, :nb], f[sl, :nb], lat[sl], mask[sl, :nb])
                    tot += float(self._loss(net, sched, *(x.to(dev) for x in batch), gen)) * len(z[sl])
        return tot / (2 * S)

    # ------------------------------------------------------------------ sample

    def sample(self, compositions: Sequence[np.ndarray], k: int, seed: int) -> list[list[StructureArrays]]:
        """``k`` structures per composition, atoms in the requested order; all crystals of one size per batch."""
        import torch

        if getattr(self, "net_", None) is None:
            raise CspModelError("this DiffCSP model is not fitted: call fit() or load an artifact first")
        comps = [_check_numbers(c, int(self.max_atoms), f"composition {i}") for i, c in enumerate(compositions)]
        k = int(k)
        out: list[list[StructureArrays | None]] = [[None] * k for _ in comps]
        if k <= 0 or not comps:
            return [[] for _ in comps]
        old_threads = torch.get_num_threads()
        torch.set_num_threads(int(self.num_threads))
        try:
            gen = torch.Generator().manual_seed(int(seed))
            # every (composition, draw) pair, grouped by atom count so batches need no padding
            jobs = sorted(((len(c), i, j) for i, c in enumerate(comps) for j in range(k)))
            start = 0
            while start < len(jobs):
                n = jobs[start][0]
                cap = max(1, _CHUNK_PAIRS // (n * n))
                stop = start
                while stop < len(jobs) and jobs[stop][0] == n and stop - start < cap:
                    stop += 1
                chunk = jobs[start:stop]
                z = torch.as_tensor(np.stack([comps[i] for _, i, _ in chunk]))
                lat, frac = self._sample_batch(z, gen)
                for (_, i, j), L, x in zip(chunk, lat, frac):
                    out[i][j] = self._to_structure(L, x, comps[i])
                start = stop
        finally:
            torch.set_num_threads(old_threads)
        return out  # type: ignore[return-value]

    def _sample_batch(self, z, gen):
        """Predictor-corrector reverse diffusion for a batch of same-size crystals; returns numpy arrays."""
        import torch

        sched = self._schedules()
        net, dev = self.net_, torch.device(self.device)
        B, N = z.shape
        mask = torch.ones(B, N, dtype=torch.bool)
        z, mask = z.to(dev), mask.to(dev)
        x = torch.rand(B, N, 3, generator=gen).to(dev)
        L = torch.randn(B, 3, 3, generator=gen).to(dev)
        step_lr = float(self.step_lr)
        with torch.inference_mode():
            for t in range(sched.T, 0, -1):
                tt = torch.full((B,), t / sched.T, device=dev)
                sig, sig_prev = float(sched.sigmas[t]), float(sched.sigmas[t - 1])
                norm = float(sched.sigma_norm[t]) ** 0.5
                last = t == 1
                if step_lr > 0:  # corrector: one Langevin step on the coordinates at the current noise level
                    step = step_lr * (sig / sched.sigma_begin) ** 2
                    px, _ = net(tt, z, x, L, mask)
                    noise = torch.randn(B, N, 3, generator=gen).to(dev)
                    x = torch.remainder(x - step * norm * px + (2 * step) ** 0.5 * noise, 1.0)
                # predictor: reverse VE step on the torus, ancestral DDPM step on the lattice
                px, pl = net(tt, z, x, L, mask)
                step = sig**2 - sig_prev**2
                std = (sig_prev**2 * step / sig**2) ** 0.5
                nx = torch.randn(B, N, 3, generator=gen).to(dev)
                nl = torch.randn(B, 3, 3, generator=gen).to(dev)
                a, ab = float(sched.alphas[t]), float(sched.abar[t])
                x = torch.remainder(x - step * norm * px + (0.0 if last else std) * nx, 1.0)
                L = (L - (1 - a) / (1 - ab) ** 0.5 * pl) / a**0.5 + (0.0 if last else float(sched.lat_sigma[t])) * nl
        return L.cpu().double().numpy(), x.cpu().double().numpy()

    def _to_structure(self, L: np.ndarray, x: np.ndarray, numbers: np.ndarray) -> StructureArrays:
        cell = L * self.lattice_scale_ * len(numbers) ** (1 / 3)
        frac = np.mod(x, 1.0)
        if np.linalg.det(cell) < 0:  # -L with -f is the same crystal, right-handed
            cell, frac = -cell, np.mod(-frac, 1.0)
        frac[frac >= 1.0] = 0.0
        return StructureArrays(cell, numbers.copy(), frac)

    # ------------------------------------------------------------------ artifacts

    def to_bytes(self) -> bytes:
        """torch.save of the format tag, JSON parameters, the state dict and the lattice scale."""
        import torch

        if getattr(self, "net_", None) is None:
            raise CspModelError("this DiffCSP model is not fitted: nothing to save")
        params = self.get_params()
        state = {k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        payload = {
            "format": self.artifact_format,
            "params": json.dumps(params, sort_keys=True),
            "state_dict": state,
            "lattice_scale": float(self.lattice_scale_),
            "history": json.dumps(getattr(self, "history_", []), sort_keys=True),
            "best_epoch": int(getattr(self, "best_epoch_", 0)),
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "cpu") -> "DiffCSP":
        """The model written by :meth:`to_bytes` (loaded with ``weights_only=True``: no code runs)."""
        import torch

        try:
            payload = torch.load(io.BytesIO(data), weights_only=True, map_location=device)
        except Exception as exc:  # noqa: BLE001 - any unreadable payload is a bad artifact
            raise CspModelError(f"not a {cls.artifact_format} artifact: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != cls.artifact_format:
            got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise CspModelError(f"artifact format {got!r} is not {cls.artifact_format!r}")
        params = json.loads(payload["params"])
        params["device"] = device
        model = cls(**params)
        net = model._new_net()
        net.load_state_dict(payload["state_dict"])
        model.net_ = net.to(torch.device(device)).eval()
        model.lattice_scale_ = float(payload["lattice_scale"])
        model.history_ = json.loads(payload.get("history", "[]"))
        model.best_epoch_ = int(payload.get("best_epoch", 0))
        model.n_parameters_ = int(sum(p.numel() for p in net.parameters()))
        return model
