"""scikit-learn-API estimators for XRD models: Extremely Randomized Trees and gradient-boosted trees (XGBoost).

Both wrap a library estimator so that training is deterministic for a given ``random_state`` (fixed
``n_jobs``/``nthread``) and classes may be any labels (strings such as ``"cubic"`` or space-group numbers):
XGBoost only accepts ``0..K-1``, so labels are encoded in ``fit`` and decoded in ``predict``.

>>> import numpy as np
>>> X = np.arange(40, dtype=float).reshape(20, 2); y = np.array(["lo"] * 10 + ["hi"] * 10)
>>> ExtraTreesModel(n_estimators=10).fit(X, y).predict([[1.0, 2.0]]).tolist()
['lo']
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

TASKS = ("classification", "regression")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def _as_2d_float(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    return X


class ExtraTreesModel(BaseEstimator):
    """Extremely Randomized Trees (the XRD crystal-system study's method) for classification or regression.

    Parameters
    ----------
    task : {"classification", "regression"}
    n_estimators, max_depth, min_samples_leaf, max_features :
        As in :class:`sklearn.ensemble.ExtraTreesClassifier`; ``max_features=None`` uses every feature
        at each split (sklearn's regression default; the study's setting).
    random_state : int
        Seed; with ``n_jobs`` fixed the fitted trees are identical run to run.
    n_jobs : int
        Worker threads (results do not depend on it).

    Attributes
    ----------
    estimator_ : ExtraTreesClassifier or ExtraTreesRegressor
    classes_ : ndarray of shape (n_classes,)  (classification only)
    n_features_in_ : int
    """

    def __init__(self, task: str = "classification", n_estimators: int = 100, max_depth: int | None = None,
                 min_samples_leaf: int = 1, max_features: float | int | str | None = None,
                 random_state: int = 0, n_jobs: int = 1) -> None:
        self.task = task
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _library_params(self) -> dict[str, Any]:
        return dict(n_estimators=self.n_estimators, max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
                    max_features=self.max_features, random_state=self.random_state, n_jobs=self.n_jobs)

    def fit(self, X: Any, y: Any) -> "ExtraTreesModel":
        """Fit on ``X`` (n_samples, n_features) and ``y`` (n_samples,) labels or (n_samples[, n_outputs]) values."""
        from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

        _check_task(self.task)
        X = _as_2d_float(X)
        y = np.asarray(y)
        if self.task == "classification":
            self.estimator_ = ExtraTreesClassifier(**self._library_params()).fit(X, y)
            self.classes_ = self.estimator_.classes_
        else:
            self.estimator_ = ExtraTreesRegressor(**self._library_params()).fit(X, y.astype(np.float64))
        self.n_features_in_ = X.shape[1]
        return self

    @classmethod
    def from_library(cls, estimator: Any) -> "ExtraTreesModel":
        """Wrap an already fitted sklearn ExtraTrees estimator (as loaded from an artifact)."""
        from sklearn.base import is_classifier

        params = {k: v for k, v in estimator.get_params().items() if k in cls().get_params()}
        model = cls(task="classification" if is_classifier(estimator) else "regression", **params)
        model.estimator_ = estimator
        model.n_features_in_ = estimator.n_features_in_
        if model.task == "classification":
            model.classes_ = estimator.classes_
        return model

    def predict(self, X: Any) -> np.ndarray:
        """Labels (n_samples,) or values (n_samples[, n_outputs])."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(_as_2d_float(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self, "classes_")
        return self.estimator_.predict_proba(_as_2d_float(X))

    @property
    def feature_importances_(self) -> np.ndarray:
        """Mean decrease in impurity per feature (n_features,)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.feature_importances_


class XGBoostModel(BaseEstimator):
    """Gradient-boosted trees (XGBoost ``hist``) with deterministic settings, any class labels.

    Parameters
    ----------
    task : {"classification", "regression"}
    n_estimators, max_depth, learning_rate, subsample, colsample_bytree, min_child_weight, reg_lambda :
        As in :class:`xgboost.XGBClassifier`.
    random_state : int
        Seed of row/column subsampling.
    n_jobs : int
        ``nthread``; fixed so the fitted booster (and its UBJSON bytes) are identical run to run.

    Attributes
    ----------
    booster_ : xgboost.Booster
    classes_ : ndarray of shape (n_classes,)  (classification only)
    n_features_in_ : int
    n_outputs_ : int  (regression only)
    """

    def __init__(self, task: str = "classification", n_estimators: int = 300, max_depth: int = 8,
                 learning_rate: float = 0.1, subsample: float = 0.8, colsample_bytree: float = 1.0,
                 min_child_weight: float = 1.0, reg_lambda: float = 1.0, random_state: int = 0, n_jobs: int = 1) -> None:
        self.task = task
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _booster_params(self, n_classes: int | None, n_outputs: int = 1) -> dict[str, Any]:
        params = dict(max_depth=self.max_depth, eta=self.learning_rate, subsample=self.subsample,
                      colsample_bytree=self.colsample_bytree, min_child_weight=self.min_child_weight,
                      reg_lambda=self.reg_lambda, seed=self.random_state, nthread=self.n_jobs,
                      tree_method="hist", deterministic_histogram=True, verbosity=0)
        if n_classes is None:
            params["objective"] = "reg:squarederror"
        elif n_classes == 2:
            params["objective"] = "binary:logistic"
        else:
            params.update(objective="multi:softprob", num_class=n_classes)
        return params

    def fit(self, X: Any, y: Any) -> "XGBoostModel":
        """Fit on ``X`` (n_samples, n_features) and ``y`` (n_samples,) labels or (n_samples[, n_outputs]) values."""
        import xgboost as xgb

        _check_task(self.task)
        X = _as_2d_float(X)
        y = np.asarray(y)
        if self.task == "classification":
            self.classes_, codes = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                raise ValueError(f"classification needs at least two classes, got {self.classes_.tolist()}")
            dtrain = xgb.DMatrix(X, label=codes.astype(np.float32), nthread=self.n_jobs)
            params = self._booster_params(len(self.classes_))
        else:
            values = y.astype(np.float32)
            self.n_outputs_ = 1 if values.ndim == 1 else values.shape[1]
            dtrain = xgb.DMatrix(X, label=values, nthread=self.n_jobs)
            params = self._booster_params(None, self.n_outputs_)
        self.booster_ = xgb.train(params, dtrain, num_boost_round=self.n_estimators)
        self.n_features_in_ = X.shape[1]
        self._store_meta()
        return self

    def _store_meta(self) -> None:
        """Keep what ``predict`` needs inside the booster, so its UBJSON bytes are a complete model."""
        import json

        meta = {"task": self.task, "params": self.get_params(), "n_features_in": int(self.n_features_in_)}
        if self.task == "classification":
            meta["classes"] = [c.item() if hasattr(c, "item") else c for c in self.classes_]
        else:
            meta["n_outputs"] = int(self.n_outputs_)
        self.booster_.set_attr(xtalbase_meta=json.dumps(meta, sort_keys=True))

    @classmethod
    def from_booster(cls, booster: Any) -> "XGBoostModel":
        """Rebuild a fitted model from a booster written by :meth:`fit` (as loaded from UBJSON)."""
        import json

        raw = booster.attr("xtalbase_meta")
        if raw is None:
            raise ValueError("booster has no xtalbase_meta attribute: not written by XGBoostModel")
        meta = json.loads(raw)
        model = cls(**meta["params"])
        model.booster_ = booster
        model.n_features_in_ = meta["n_features_in"]
        if meta["task"] == "classification":
            model.classes_ = np.asarray(meta["classes"])
        else:
            model.n_outputs_ = meta["n_outputs"]
        return model

    def _raw_predict(self, X: Any) -> np.ndarray:
        import xgboost as xgb

        check_is_fitted(self, "booster_")
        return self.booster_.predict(xgb.DMatrix(_as_2d_float(X), nthread=self.n_jobs))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self, "classes_")
        raw = self._raw_predict(X)
        if len(self.classes_) == 2:
            raw = np.column_stack([1.0 - raw, raw])
        return raw

    def predict(self, X: Any) -> np.ndarray:
        """Labels (n_samples,) or values (n_samples[, n_outputs])."""
        check_is_fitted(self, "booster_")
        if self.task == "classification":
            return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        return self._raw_predict(X)

    @property
    def feature_importances_(self) -> np.ndarray:
        """Total gain per feature, normalised to sum 1 (n_features,)."""
        check_is_fitted(self, "booster_")
        gain = self.booster_.get_score(importance_type="total_gain")
        values = np.array([gain.get(f"f{i}", 0.0) for i in range(self.n_features_in_)])
        return values / values.sum() if values.sum() > 0 else values
