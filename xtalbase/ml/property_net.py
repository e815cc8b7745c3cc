"""A torch multilayer-perceptron regressor for material properties, with pretraining, fine-tuning and freezing.

The network is a body (``Linear → SiLU`` blocks) and a one-unit linear head, kept as two modules so that
the body can be reused for another property: ``init_from`` starts from a stored network's weights (the
artifact bytes of :func:`to_bytes`), ``freeze="body"`` trains only a new head on the frozen body, and
:meth:`MLPPropertyRegressor.embed` gives the body's last-layer features (for a ridge on frozen features).

Inputs are standardised with the training rows' mean and standard deviation (NaN, e.g. a ``gmean`` of a
non-positive element property, becomes the mean, so 0 after scaling); so is the target. A network started
from another keeps the source's input scaling, which its body was trained on. Training is Adam(W) on the
mean squared error of the standardised target, with early stopping on the validation loss (``eval_set``
passed to :meth:`~MLPPropertyRegressor.fit`, else a seeded ``validation_fraction`` of the training rows);
the weights of the best epoch are kept.

The artifact is ``torch.save`` of plain tensors and JSON text, read back with ``weights_only=True`` (no
pickle code runs); identical fitted networks give identical bytes.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(200, 4)); y = X[:, 0] - 2 * X[:, 1]
>>> source = MLPPropertyRegressor(hidden_layer_sizes=(16,), max_epochs=50).fit(X, y)
>>> tuned = MLPPropertyRegressor(init_from=to_bytes(source), freeze="body", max_epochs=20).fit(X, 3 * y)
>>> tuned.predict(X[:2]).shape, tuned.embed(X[:2]).shape
((2,), (2, 16))
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from xtalbase.ml.torch_artifacts import TorchPickleMixin, load_payload, network_from_state, save_payload, state_dict_of

__all__ = ["ARTIFACT_FORMAT", "MLPPropertyRegressor", "from_bytes", "to_bytes"]

#: ``models.artifact_format`` of these networks, and the tag inside the artifact.
ARTIFACT_FORMAT = "torch-mlp"
_FORMAT_TAG = "xtalbase-mlp-regressor/1"
FREEZE = (None, "body")
DTYPES = ("float32", "float64")


class MLPPropertyRegressor(TorchPickleMixin, RegressorMixin, BaseEstimator):
    """Multilayer perceptron for one numeric property (e.g. formation energy in eV/atom, band gap in eV).

    Parameters
    ----------
    task : {"regression"}
        Present so that :func:`xtalbase.ml.algorithms.make_estimator` builds it like the other algorithms;
        a classification task is refused in ``fit``.
    hidden_layer_sizes : sequence of int or str
        Units of the body's layers, e.g. ``(256, 128, 64)`` or ``"256,128,64"``. Ignored with ``init_from``:
        the body is then the source network's.
    dropout : float
        Dropout after each body layer while training (not on a frozen body).
    learning_rate, weight_decay : float
        AdamW step size and decoupled weight decay.
    batch_size : int
        Rows per step (the last, smaller batch included).
    max_epochs, patience : int
        At most ``max_epochs`` passes; stop after ``patience`` epochs without a lower validation loss.
    validation_fraction : float
        Share of the training rows held out for early stopping when ``fit`` gets no ``eval_set`` (none below
        10 rows, or with 0: then all ``max_epochs`` run and the last weights are kept).
    init_from : bytes or None
        A fitted network's artifact (:func:`to_bytes`): start from its weights and input scaling.
    freeze : {None, "body"}
        ``"body"``: train only the head (with ``init_from``, a frozen pretrained feature extractor).
    reset_head : bool
        With ``init_from``: a new, seeded head and target scaling for the new target (``True``), or keep the
        source's head and target scaling (``False``, for the same quantity on new data).
    random_state : int
        Seed of the weights, the validation rows and the batch order.
    device : str
        Torch device, ``"cpu"`` (default) or e.g. ``"cuda"``.
    dtype : {"float32", "float64"}

    Attributes
    ----------
    network_ : torch.nn.Module with ``body`` and ``head``
    n_features_in_ : int
    architecture_ : dict — ``n_features``, ``hidden`` (list of int), ``activation``
    x_mean_, x_scale_ : ndarray of shape (n_features,)
    y_mean_, y_scale_ : float
    history_ : list of dict — per epoch: ``epoch``, ``train_loss``, ``val_loss`` (standardised MSE)
    best_epoch_ : int
    stop_reason_ : str
    """

    def __init__(self, task: str = "regression", hidden_layer_sizes: Sequence[int] | str = (256, 128, 64), dropout: float = 0.0,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-5, batch_size: int = 64, max_epochs: int = 200,
                 patience: int = 20, validation_fraction: float = 0.1, init_from: bytes | None = None, freeze: str | None = None,
                 reset_head: bool = True, random_state: int = 0, device: str = "cpu", dtype: str = "float32") -> None:
        self.task = task
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.init_from = init_from
        self.freeze = freeze
        self.reset_head = reset_head
        self.random_state = random_state
        self.device = device
        self.dtype = dtype

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN descriptor entries are imputed with the training mean
        return tags

    def _build_network(self) -> Any:
        return _build(self.architecture_, self.dropout)

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any, eval_set: tuple[Any, Any] | None = None,
            on_epoch: Callable[[dict[str, float]], None] | None = None) -> "MLPPropertyRegressor":
        """Fit on ``X`` (n_samples, n_features) and ``y`` (n_samples,); ``eval_set=(X_val, y_val)`` early-stops on it.

        ``on_epoch`` receives each epoch's ``{"epoch", "train_loss"[, "val_loss"]}``.
        """
        import torch

        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan", y_numeric=True)
        y = np.asarray(y, dtype=np.float64).ravel()
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity")
        source = _read_artifact(self.init_from) if self.init_from is not None else None
        if source is not None and source["architecture"]["n_features"] != X.shape[1]:
            raise ValueError(f"init_from network takes {source['architecture']['n_features']} features, X has {X.shape[1]}")
        X_fit, y_fit, X_val, y_val = self._validation_rows(X, y, eval_set)
        if source is not None:
            self.x_mean_, self.x_scale_ = source["x_mean"], source["x_scale"]
            self.architecture_ = dict(source["architecture"])
        else:
            self.x_mean_, self.x_scale_ = _column_scaling(X_fit)
            self.architecture_ = {"n_features": int(X.shape[1]), "hidden": _hidden(self.hidden_layer_sizes), "activation": "silu"}
        if source is not None and not self.reset_head:
            self.y_mean_, self.y_scale_ = source["y_mean"], source["y_scale"]
        else:
            self.y_mean_ = float(np.mean(y_fit))
            self.y_scale_ = float(np.std(y_fit)) or 1.0
        dtype = getattr(torch, self.dtype)
        device = torch.device(self.device)
        devices = [device.index or 0] if device.type == "cuda" else []
        # seeds are set per call inside a forked generator state: fitting leaves the caller's torch RNG untouched
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.random_state)
            net = _build(self.architecture_, self.dropout).to(device=device, dtype=dtype)
            if source is not None:
                state = {k: v for k, v in source["state_dict"].items() if self.reset_head is False or not k.startswith("head.")}
                net.load_state_dict(state, strict=False)
            self.network_ = net
            self._train(self._tensor(X_fit), self._target(y_fit), None if X_val is None else self._tensor(X_val),
                        None if y_val is None else self._target(y_val), on_epoch)
        self.network_.eval()
        return self

    def _check_params(self) -> None:
        if self.task != "regression":
            raise ValueError(f"MLPPropertyRegressor is a regressor: task must be 'regression', got {self.task!r}")
        if self.freeze not in FREEZE:
            raise ValueError(f"freeze must be one of {FREEZE}, got {self.freeze!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be at least 1")
        _hidden(self.hidden_layer_sizes)

    def _validation_rows(self, X: np.ndarray, y: np.ndarray, eval_set: tuple[Any, Any] | None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        if eval_set is not None:
            X_val = validate_data(self, eval_set[0], dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
            y_val = np.asarray(eval_set[1], dtype=np.float64).ravel()
            if len(X_val) != len(y_val) or not len(y_val):
                raise ValueError(f"eval_set has {len(X_val)} rows and {len(y_val)} targets")
            return X, y, X_val, y_val
        n_val = int(round(self.validation_fraction * len(y)))
        if len(y) < 10 or n_val < 1:
            return X, y, None, None
        order = np.random.default_rng(self.random_state).permutation(len(y))
        val, fit = np.sort(order[:n_val]), np.sort(order[n_val:])
        return X[fit], y[fit], X[val], y[val]

    def _train(self, X: Any, y: Any, X_val: Any, y_val: Any, on_epoch: Callable[[dict[str, float]], None] | None) -> None:
        import torch

        net = self.network_
        frozen = self.freeze == "body"
        for p in net.body.parameters():
            p.requires_grad_(not frozen)
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.random_state)
        best, best_loss, since, history = None, float("inf"), 0, []
        self.stop_reason_ = "max_epochs"
        for epoch in range(1, self.max_epochs + 1):
            net.train()
            if frozen:
                net.body.eval()  # no dropout inside a frozen feature extractor
            order = torch.randperm(len(y), generator=generator).to(X.device)
            total = 0.0
            for start in range(0, len(y), self.batch_size):
                idx = order[start:start + self.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = torch.mean((net(X[idx]).squeeze(-1) - y[idx]) ** 2)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
            row = {"epoch": epoch, "train_loss": total / len(y)}
            if X_val is not None:
                net.eval()
                with torch.no_grad():
                    row["val_loss"] = float(torch.mean((net(X_val).squeeze(-1) - y_val) ** 2))
                if row["val_loss"] < best_loss:
                    best_loss, since = row["val_loss"], 0
                    best = {k: v.detach().clone() for k, v in net.state_dict().items()}
                    self.best_epoch_ = epoch
                else:
                    since += 1
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            if X_val is not None and since >= self.patience:
                self.stop_reason_ = f"no lower validation loss in {self.patience} epochs"
                break
        if best is not None:
            net.load_state_dict(best)
        else:
            self.best_epoch_ = len(history)
        self.history_ = history
        self.n_iter_ = len(history)

    # ------------------------------------------------------------------ predict
    def predict(self, X: Any) -> np.ndarray:
        """Predicted values (n_samples,) in the target's units."""
        out = self._forward(X, embed=False)
        return out[:, 0] * self.y_scale_ + self.y_mean_

    def embed(self, X: Any) -> np.ndarray:
        """The body's last-layer activations (n_samples, hidden[-1]): the learned features of ``X``."""
        return self._forward(X, embed=True)

    def _forward(self, X: Any, embed: bool) -> np.ndarray:
        import torch

        check_is_fitted(self, "network_")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        net = self.network_
        net.eval()
        with torch.no_grad():
            t = self._tensor(X)
            out = net.body(t) if embed else net(t)
        return out.detach().cpu().numpy().astype(np.float64)

    # ------------------------------------------------------------------ tensors
    def _tensor(self, X: np.ndarray) -> Any:
        import torch

        scaled = (X - self.x_mean_) / self.x_scale_
        scaled = np.where(np.isnan(scaled), 0.0, scaled)  # a missing descriptor value sits at the training mean
        return torch.as_tensor(scaled, dtype=getattr(torch, self.dtype), device=torch.device(self.device))

    def _target(self, y: np.ndarray) -> Any:
        import torch

        return torch.as_tensor((y - self.y_mean_) / self.y_scale_, dtype=getattr(torch, self.dtype), device=torch.device(self.device))


# ---------------------------------------------------------------------- network
def _hidden(sizes: Sequence[int] | str) -> list[int]:
    """``(256, 128)`` or ``"256,128"`` as a list of positive ints."""
    if isinstance(sizes, str):
        sizes = [s for s in sizes.replace("-", ",").replace(" ", ",").split(",") if s]
    try:
        out = [int(s) for s in sizes]
    except (TypeError, ValueError):
        raise ValueError(f"hidden_layer_sizes must be integers, got {sizes!r}") from None
    if not out or min(out) < 1:
        raise ValueError(f"hidden_layer_sizes needs at least one layer of at least one unit, got {sizes!r}")
    return out


def _column_scaling(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation over the finite entries; constant or empty columns scale by 1."""
    finite = np.isfinite(X)
    count = finite.sum(axis=0)
    safe = np.where(finite, X, 0.0)
    mean = np.divide(safe.sum(axis=0), count, out=np.zeros(X.shape[1]), where=count > 0)
    var = np.divide((np.where(finite, X - mean, 0.0) ** 2).sum(axis=0), count, out=np.zeros(X.shape[1]), where=count > 0)
    scale = np.sqrt(var)
    return mean, np.where(scale > 1e-12, scale, 1.0)


def _build(architecture: dict[str, Any], dropout: float = 0.0) -> Any:
    import torch.nn as nn

    class PropertyNet(nn.Module):
        """``body`` (Linear → SiLU → Dropout blocks) then a one-unit linear ``head``."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = architecture["n_features"]
            for units in architecture["hidden"]:
                # Dropout(0) is the identity; always present so state-dict keys never depend on the dropout
                layers += [nn.Linear(width, units), nn.SiLU(), nn.Dropout(dropout)]
                width = units
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(width, 1)

        def forward(self, x: Any) -> Any:
            return self.head(self.body(x))

    return PropertyNet()


# ---------------------------------------------------------------------- artifact
def to_bytes(model: MLPPropertyRegressor) -> bytes:
    """The artifact of a fitted network: weights, scalings, architecture and parameters (byte-stable)."""
    import torch

    check_is_fitted(model, "network_")
    state = state_dict_of(model.network_)
    params = {k: v for k, v in model.get_params().items() if k != "init_from"}
    params["hidden_layer_sizes"] = list(model.architecture_["hidden"])
    payload = {
        "format": _FORMAT_TAG,
        "architecture": json.dumps(model.architecture_, sort_keys=True),
        "params": json.dumps(params, sort_keys=True, default=list),
        "history": json.dumps({"best_epoch": int(model.best_epoch_), "n_iter": int(model.n_iter_), "stop_reason": model.stop_reason_}),
        "x_mean": torch.as_tensor(np.asarray(model.x_mean_, dtype=np.float64)),
        "x_scale": torch.as_tensor(np.asarray(model.x_scale_, dtype=np.float64)),
        "y": torch.as_tensor(np.array([model.y_mean_, model.y_scale_], dtype=np.float64)),
        "state_dict": state,
    }
    return save_payload(payload)


def _read_artifact(blob: bytes) -> dict[str, Any]:
    """The artifact's contents as numpy scalings, the architecture dict and the state dict (``weights_only``)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ValueError(f"init_from must be artifact bytes (xtalbase.ml.property_net.to_bytes), got {type(blob).__name__}")
    data = load_payload(blob, _FORMAT_TAG, "an MLP property")
    y = data["y"].numpy()
    return {"architecture": json.loads(data["architecture"]), "params": json.loads(data["params"]),
            "history": json.loads(data["history"]), "x_mean": data["x_mean"].numpy(), "x_scale": data["x_scale"].numpy(),
            "y_mean": float(y[0]), "y_scale": float(y[1]), "state_dict": data["state_dict"]}


def from_bytes(blob: bytes, *, device: str = "cpu") -> MLPPropertyRegressor:
    """The fitted :class:`MLPPropertyRegressor` of an artifact (read with ``weights_only=True``; nothing executes)."""
    data = _read_artifact(blob)
    params = dict(data["params"], device=device)
    model = MLPPropertyRegressor(**{k: v for k, v in params.items() if k in MLPPropertyRegressor().get_params()})
    model.architecture_ = data["architecture"]
    model.n_features_in_ = int(data["architecture"]["n_features"])
    model.x_mean_, model.x_scale_ = data["x_mean"], data["x_scale"]
    model.y_mean_, model.y_scale_ = data["y_mean"], data["y_scale"]
    model.best_epoch_ = data["history"]["best_epoch"]
    model.n_iter_ = data["history"]["n_iter"]
    model.stop_reason_ = data["history"]["stop_reason"]
    model.history_ = []
    model.network_ = network_from_state(lambda: _build(model.architecture_, model.dropout), data["state_dict"], device, model.dtype)
    return model
