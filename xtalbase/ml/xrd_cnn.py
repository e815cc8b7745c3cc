"""A small 1-D convolutional classifier (torch) for XRD profiles on a fixed 2θ grid, with the scikit-learn API.

The input is one profile per row, e.g. a ``profile_aug`` feature row (picked peaks drawn on a 10-90° grid,
maximum 1). The network is a stack of ``Conv1d → ReLU → MaxPool1d`` blocks, an adaptive average pool to
``positions`` bins (so absolute 2θ, which carries the d-spacings, survives), and a two-layer head. It takes
any number of grid points, so scikit-learn's shared checks run it on their small tables too. A constant
*coordinate channel* (the grid position, -1 to 1) goes in beside the profile: the convolutions are then not
blind to where on the grid a peak sits.

Inputs are shifted and scaled by one scalar each (the training rows' mean and standard deviation over all
entries), which keeps the convolution's shift structure. Training is AdamW on the cross-entropy with early
stopping on the validation loss: ``eval_set`` given to :meth:`~ProfileCNNClassifier.fit` (``xtalbase train
xrd`` passes the split's val fold), else a seeded ``validation_fraction`` of the rows; the best epoch's
weights are kept. Seeds are set per call in a forked torch RNG state, so fitting leaves the caller's RNG
alone.

The artifact (:func:`to_bytes`) is ``torch.save`` of plain tensors and JSON text, read with
``weights_only=True`` (no pickle code runs); identical fitted networks give identical bytes.

>>> import numpy as np
>>> rng = np.random.default_rng(0); X = rng.random((120, 64)); y = np.where(X[:, :32].sum(1) > X[:, 32:].sum(1), "a", "b")
>>> model = ProfileCNNClassifier(channels=(4, 8), max_epochs=5).fit(X, y)
>>> model.predict_proba(X[:3]).shape, from_bytes(to_bytes(model)).predict(X[:3]).tolist() == model.predict(X[:3]).tolist()
((3, 2), True)
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from xtalbase.ml.torch_artifacts import TorchPickleMixin, load_payload, network_from_state, save_payload, state_dict_of

__all__ = ["ARTIFACT_FORMAT", "ProfileCNNClassifier", "from_bytes", "to_bytes"]

#: ``models.artifact_format`` of these networks, and the tag inside the artifact.
ARTIFACT_FORMAT = "torch-cnn"
_FORMAT_TAG = "xtalbase-xrd-cnn-classifier/1"
DTYPES = ("float32", "float64")


class ProfileCNNClassifier(TorchPickleMixin, ClassifierMixin, BaseEstimator):
    """1-D CNN classifier on profiles sampled on a fixed grid (e.g. crystal system from an XRD profile).

    Parameters
    ----------
    task : {"classification"}
        Present so that :func:`xtalbase.ml.algorithms.make_estimator` builds it like the other algorithms;
        any other task is refused in ``fit``.
    channels : sequence of int or str
        Output channels of the convolution blocks, e.g. ``(8, 16, 32)`` or ``"8,16,32"``.
    kernel_size : int
        Width (grid points) of every convolution; odd, so a peak stays centred.
    pool : int
        Max-pooling factor after each block.
    positions : int
        Bins of the adaptive average pool before the head (coarse 2θ positions the head sees).
    hidden : int
        Units of the head's hidden layer.
    dropout : float
        Dropout before each head layer while training.
    learning_rate, weight_decay : float
        AdamW step size and decoupled weight decay.
    batch_size, max_epochs, patience : int
        Rows per step; at most ``max_epochs`` passes; stop after ``patience`` epochs without a lower validation loss.
    validation_fraction : float
        Share of the rows held out for early stopping when ``fit`` gets no ``eval_set`` (none below 10 rows, or
        with 0: all ``max_epochs`` run and the last weights are kept).
    random_state : int
        Seed of the weights, the validation rows, dropout and the batch order.
    device : str
        Torch device, ``"cpu"`` (default) or e.g. ``"cuda"``.
    dtype : {"float32", "float64"}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int — grid points per row
    network_ : torch.nn.Module
    architecture_ : dict — ``n_features``, ``n_classes``, ``channels``, ``kernel_size``, ``pool``, ``positions``, ``hidden``
    x_offset_, x_scale_ : float — the input's shift and scale
    history_ : list of dict — per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_accuracy``
    best_epoch_, n_iter_ : int
    stop_reason_ : str
    """

    def __init__(self, task: str = "classification", channels: Sequence[int] | str = (8, 16, 32), kernel_size: int = 9,
                 pool: int = 3, positions: int = 16, hidden: int = 64, dropout: float = 0.3, learning_rate: float = 2e-3,
                 weight_decay: float = 1e-4, batch_size: int = 64, max_epochs: int = 20, patience: int = 4,
                 validation_fraction: float = 0.1, random_state: int = 0, device: str = "cpu", dtype: str = "float32") -> None:
        self.task = task
        self.channels = channels
        self.kernel_size = kernel_size
        self.pool = pool
        self.positions = positions
        self.hidden = hidden
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.dtype = dtype

    def _build_network(self) -> Any:
        return _build(self.architecture_, self.dropout)

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any, eval_set: tuple[Any, Any] | None = None,
            on_epoch: Callable[[dict[str, float]], None] | None = None) -> "ProfileCNNClassifier":
        """Fit on ``X`` (n_samples, n_points) and labels ``y`` (n_samples,); ``eval_set=(X_val, y_val)`` early-stops on it.

        ``on_epoch`` receives each epoch's ``{"epoch", "train_loss"[, "val_loss", "val_accuracy"]}``.
        """
        import torch
        from sklearn.utils.multiclass import check_classification_targets

        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        X_fit, c_fit, X_val, c_val = self._validation_rows(X, codes, eval_set)
        self.x_offset_ = float(np.mean(X_fit))
        self.x_scale_ = float(np.std(X_fit)) or 1.0
        self.architecture_ = {"n_features": int(X.shape[1]), "n_classes": len(self.classes_), "channels": _channels(self.channels),
                              "kernel_size": int(self.kernel_size), "pool": int(self.pool), "positions": int(self.positions),
                              "hidden": int(self.hidden)}
        device = torch.device(self.device)
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.random_state)
            self.network_ = _build(self.architecture_, self.dropout).to(device=device, dtype=getattr(torch, self.dtype))
            self._train(self._tensor(X_fit), self._codes(c_fit), None if X_val is None else self._tensor(X_val),
                        None if c_val is None else self._codes(c_val), on_epoch)
        self.network_.eval()
        return self

    def _check_params(self) -> None:
        if self.task != "classification":
            raise ValueError(f"ProfileCNNClassifier is a classifier: task must be 'classification', got {self.task!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if min(self.batch_size, self.max_epochs, self.patience, self.pool, self.positions, self.hidden) < 1:
            raise ValueError("batch_size, max_epochs, patience, pool, positions and hidden must be at least 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {self.kernel_size!r}")
        _channels(self.channels)

    def _validation_rows(self, X: np.ndarray, codes: np.ndarray, eval_set: tuple[Any, Any] | None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        if eval_set is not None:
            X_val = validate_data(self, eval_set[0], dtype=np.float64, reset=False)
            y_val = np.asarray(eval_set[1]).ravel()
            if len(X_val) != len(y_val) or not len(y_val):
                raise ValueError(f"eval_set has {len(X_val)} rows and {len(y_val)} labels")
            known = np.isin(y_val, self.classes_)  # a class absent from training cannot be predicted: not a loss term
            return X, codes, X_val[known], np.searchsorted(self.classes_, y_val[known])
        n_val = int(round(self.validation_fraction * len(codes)))
        if len(codes) < 10 or n_val < 1:
            return X, codes, None, None
        order = np.random.default_rng(self.random_state).permutation(len(codes))
        val, fit = np.sort(order[:n_val]), np.sort(order[n_val:])
        return X[fit], codes[fit], X[val], codes[val]

    def _train(self, X: Any, c: Any, X_val: Any, c_val: Any, on_epoch: Callable[[dict[str, float]], None] | None) -> None:
        import torch

        net = self.network_
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(self.random_state)
        use_val = X_val is not None and len(c_val) > 0
        best, best_loss, since, history = None, float("inf"), 0, []
        self.best_epoch_ = 0
        self.stop_reason_ = "max_epochs"
        for epoch in range(1, self.max_epochs + 1):
            net.train()
            order = torch.randperm(len(c), generator=generator).to(X.device)
            total = 0.0
            for start in range(0, len(c), self.batch_size):
                idx = order[start:start + self.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(net(X[idx]), c[idx])
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
            row = {"epoch": epoch, "train_loss": total / len(c)}
            if use_val:
                net.eval()
                with torch.no_grad():
                    logits = torch.cat([net(X_val[i:i + 1024]) for i in range(0, len(c_val), 1024)])
                    row["val_loss"] = float(loss_fn(logits, c_val))
                    row["val_accuracy"] = float((logits.argmax(1) == c_val).double().mean())
                if row["val_loss"] < best_loss:
                    best_loss, since, self.best_epoch_ = row["val_loss"], 0, epoch
                    best = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    since += 1
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            if use_val and since >= self.patience:
                self.stop_reason_ = f"no lower validation loss in {self.patience} epochs"
                break
        if best is not None:
            net.load_state_dict(best)
        else:
            self.best_epoch_ = len(history)
        self.history_ = history
        self.n_iter_ = len(history)

    # ------------------------------------------------------------------ predict
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes) float64, columns in the order of ``classes_``."""
        import torch

        check_is_fitted(self, "network_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        net = self.network_
        net.eval()
        with torch.no_grad():
            t = self._tensor(X)
            logits = torch.cat([net(t[i:i + 1024]) for i in range(0, len(t), 1024)]) if len(t) else net(t)
            proba = torch.softmax(logits.double(), dim=1)
        return proba.cpu().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row, (n_samples,)."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError on an unfitted model
        return self.classes_[np.argmax(proba, axis=1)]

    # ------------------------------------------------------------------ tensors
    def _tensor(self, X: np.ndarray) -> Any:
        import torch

        return torch.as_tensor((X - self.x_offset_) / self.x_scale_, dtype=getattr(torch, self.dtype), device=torch.device(self.device))

    def _codes(self, codes: np.ndarray) -> Any:
        import torch

        return torch.as_tensor(np.asarray(codes, dtype=np.int64), device=torch.device(self.device))


# ---------------------------------------------------------------------- network
def _channels(channels: Sequence[int] | str) -> list[int]:
    """``(8, 16)`` or ``"8,16"`` as a list of positive ints."""
    if isinstance(channels, str):
        channels = [s for s in channels.replace("-", ",").replace(" ", ",").split(",") if s]
    try:
        out = [int(s) for s in channels]
    except (TypeError, ValueError):
        raise ValueError(f"channels must be integers, got {channels!r}") from None
    if not out or min(out) < 1:
        raise ValueError(f"channels needs at least one block of at least one channel, got {channels!r}")
    return out


def _build(architecture: dict[str, Any], dropout: float = 0.0) -> Any:
    import torch
    import torch.nn as nn

    class ProfileCNN(nn.Module):
        """``features`` (Conv1d → ReLU → MaxPool1d blocks, adaptive average pool) then a two-layer ``head``."""

        def __init__(self) -> None:
            super().__init__()
            k, pool = architecture["kernel_size"], architecture["pool"]
            layers: list[nn.Module] = []
            width = 2  # the profile and its coordinate channel
            for units in architecture["channels"]:
                layers += [nn.Conv1d(width, units, k, padding=k // 2), nn.ReLU(), nn.MaxPool1d(pool, ceil_mode=True)]
                width = units
            layers.append(nn.AdaptiveAvgPool1d(architecture["positions"]))
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * architecture["positions"], architecture["hidden"]),
                                      nn.ReLU(), nn.Dropout(dropout), nn.Linear(architecture["hidden"], architecture["n_classes"]))

        def forward(self, x: Any) -> Any:
            coord = torch.linspace(-1.0, 1.0, x.shape[1], device=x.device, dtype=x.dtype).expand(x.shape[0], -1)
            return self.head(self.features(torch.stack([x, coord], dim=1)))

    return ProfileCNN()


# ---------------------------------------------------------------------- artifact
def to_bytes(model: ProfileCNNClassifier) -> bytes:
    """The artifact of a fitted network: weights, input scaling, classes, architecture and parameters (byte-stable)."""
    import torch

    check_is_fitted(model, "network_")
    params = model.get_params()
    params["channels"] = list(model.architecture_["channels"])
    payload = {
        "format": _FORMAT_TAG,
        "architecture": json.dumps(model.architecture_, sort_keys=True),
        "params": json.dumps(params, sort_keys=True),
        # labels as JSON with their type: crystal systems are text, space groups numbers
        "classes": json.dumps([c.item() if hasattr(c, "item") else c for c in model.classes_]),
        "history": json.dumps({"best_epoch": int(model.best_epoch_), "n_iter": int(model.n_iter_), "stop_reason": model.stop_reason_}),
        "x": torch.as_tensor(np.array([model.x_offset_, model.x_scale_], dtype=np.float64)),
        "state_dict": state_dict_of(model.network_),
    }
    return save_payload(payload)


def from_bytes(blob: bytes, *, device: str = "cpu") -> ProfileCNNClassifier:
    """The fitted :class:`ProfileCNNClassifier` of an artifact (read with ``weights_only=True``; nothing executes)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ValueError(f"a CNN artifact is bytes, got {type(blob).__name__}")
    data = load_payload(blob, _FORMAT_TAG, "an XRD CNN")
    params = dict(json.loads(data["params"]), device=device)
    model = ProfileCNNClassifier(**{k: v for k, v in params.items() if k in ProfileCNNClassifier().get_params()})
    model.architecture_ = json.loads(data["architecture"])
    model.n_features_in_ = int(model.architecture_["n_features"])
    model.classes_ = np.asarray(json.loads(data["classes"]))
    x = data["x"].numpy()
    model.x_offset_, model.x_scale_ = float(x[0]), float(x[1])
    history = json.loads(data["history"])
    model.best_epoch_, model.n_iter_, model.stop_reason_ = history["best_epoch"], history["n_iter"], history["stop_reason"]
    model.history_ = []
    model.network_ = network_from_state(lambda: _build(model.architecture_, model.dropout), data["state_dict"], device, model.dtype)
    return model
