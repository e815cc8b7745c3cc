"""Artifacts of the torch models (property MLP, XRD CNN): tensors and JSON text written with ``torch.save``, read back
with ``torch.load(weights_only=True)`` so that loading an artifact never runs code from it."""

from __future__ import annotations

import io
from typing import Any, Callable


def state_dict_of(net: Any) -> dict[str, Any]:
    """``net``'s weights as contiguous CPU tensors (byte-stable ``torch.save`` output)."""
    return {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}


def state_bytes(net: Any) -> bytes:
    """``torch.save`` of :func:`state_dict_of` ``net``."""
    return save_payload(state_dict_of(net))


def load_state(blob: bytes) -> dict[str, Any]:
    """A state dict written by :func:`state_bytes` (``weights_only``)."""
    import torch

    return torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")


def save_payload(payload: dict[str, Any]) -> bytes:
    """``torch.save`` of a dict of tensors and text."""
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def load_payload(blob: bytes, format_tag: str, what: str) -> dict[str, Any]:
    """The dict saved by :func:`save_payload` whose ``format`` is ``format_tag``; anything else is a ValueError saying
    it is ``not {what} artifact`` (``what`` with its article: "an MLP property")."""
    import torch

    try:
        data = torch.load(io.BytesIO(bytes(blob)), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - anything unreadable is refused with one message
        raise ValueError(f"not {what} artifact ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(data, dict) or data.get("format") != format_tag:
        raise ValueError(f"not {what} artifact (format tag {data.get('format') if isinstance(data, dict) else None!r})")
    return data


def network_from_state(build: Callable[[], Any], state: dict[str, Any], device: str, dtype: str) -> Any:
    """``build()`` holding ``state``, on ``device`` in ``dtype``, in eval mode."""
    import torch

    net = build()
    net.load_state_dict(state)
    return net.to(device=torch.device(device), dtype=getattr(torch, dtype)).eval()


class TorchPickleMixin:
    """Pickling (and deep copies) of an estimator with a fitted torch ``network_``: the network travels as weights-only
    state bytes, never as a module, and is rebuilt by the estimator's ``_build_network()`` on its device and dtype."""

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        if "network_" in state:
            state = dict(state, network_=state_bytes(state["network_"]))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.get("network_")
        super().__setstate__(dict(state, network_=None) if isinstance(blob, bytes) else state)  # type: ignore[misc]
        if isinstance(blob, bytes):
            self.network_ = network_from_state(self._build_network, load_state(blob), self.device, self.dtype)  # type: ignore[attr-defined]

    def _build_network(self) -> Any:
        raise NotImplementedError
