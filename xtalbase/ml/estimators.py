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
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

TASKS = ("classification", "regression")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def _is_classifier(model: Any) -> bool:
    return model.task == "classification"


class _TaskModel(BaseEstimator):
    """What both wrappers share: a classifier or a regressor to scikit-learn according to ``task``.

    One class serves both tasks (as stored models and ``make_estimator`` expect), so the estimator
    type is an instance tag: ``is_classifier(ExtraTreesModel())`` and
    ``is_regressor(ExtraTreesModel(task="regression"))`` both hold, and ``score`` is accuracy or R².
    """

    task: str

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags, RegressorTags

        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # both libraries treat NaN as a missing value
        tags.target_tags.required = True
        if self.task == "regression":
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
            tags.target_tags.multi_output = True
        else:
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags()
        return tags

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy (classification) or R² (regression) of ``predict(X)`` against ``y``."""
        from sklearn.metrics import accuracy_score, r2_score

        metric = r2_score if self.task == "regression" else accuracy_score
        return float(metric(y, self.predict(X), sample_weight=sample_weight))

    def _fit_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """X (n_samples, n_features) float32 and y checked for the task; sets ``n_features_in_``."""
        _check_task(self.task)
        if self.task == "classification":
            from sklearn.utils.multiclass import check_classification_targets

            X, y = validate_data(self, X, y, dtype=np.float32, ensure_all_finite="allow-nan")
            check_classification_targets(y)
        else:
            X, y = validate_data(self, X, y, dtype=np.float32, ensure_all_finite="allow-nan", multi_output=True,
                                 y_numeric=True)
        return X, np.asarray(y)

    def _predict_data(self, X: Any) -> np.ndarray:
        return validate_data(self, X, dtype=np.float32, ensure_all_finite="allow-nan", reset=False)


class ExtraTreesModel(_TaskModel):
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

    #: The wrapped scikit-learn classes (module, classifier, regressor); a subclass may wrap another forest.
    library = ("sklearn.ensemble", "ExtraTreesClassifier", "ExtraTreesRegressor")

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

    def _library_class(self, task: str) -> type:
        import importlib

        module, classifier, regressor = self.library
        return getattr(importlib.import_module(module), classifier if task == "classification" else regressor)

    def fit(self, X: Any, y: Any) -> "ExtraTreesModel":
        """Fit on ``X`` (n_samples, n_features) and ``y`` (n_samples,) labels or (n_samples[, n_outputs]) values."""
        X, y = self._fit_data(X, y)
        if self.task == "classification":
            self.estimator_ = self._library_class("classification")(**self._library_params()).fit(X, y)
            self.classes_ = self.estimator_.classes_
        else:
            self.estimator_ = self._library_class("regression")(**self._library_params()).fit(X, y.astype(np.float64))
        return self

    @classmethod
    def from_library(cls, estimator: Any) -> "ExtraTreesModel":
        """Wrap an already fitted sklearn forest (as loaded from an artifact)."""
        from sklearn.base import is_classifier

        if type(estimator).__name__ not in cls.library[1:]:
            raise ValueError(f"{cls.__name__} wraps {' or '.join(cls.library[1:])}, not {type(estimator).__name__}")
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
        return self.estimator_.predict(self._predict_data(X))

    @available_if(_is_classifier)  # a regressor has no probabilities, so scikit-learn must not see the method
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self, "classes_")
        return self.estimator_.predict_proba(self._predict_data(X))

    @property
    def feature_importances_(self) -> np.ndarray:
        """Mean decrease in impurity per feature (n_features,)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.feature_importances_


class XGBoostModel(_TaskModel):
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

        X, y = self._fit_data(X, y)
        if self.task == "classification":
            self.classes_, codes = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                raise ValueError(f"classification needs at least two classes, got one class: {self.classes_.tolist()}")
            dtrain = xgb.DMatrix(X, label=codes.astype(np.float32), nthread=self.n_jobs)
            params = self._booster_params(len(self.classes_))
        else:
            values = y.astype(np.float32)
            self.n_outputs_ = 1 if values.ndim == 1 else values.shape[1]
            dtrain = xgb.DMatrix(X, label=values, nthread=self.n_jobs)
            params = self._booster_params(None, self.n_outputs_)
        self.booster_ = xgb.train(params, dtrain, num_boost_round=self.n_estimators)
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
        return self.booster_.predict(xgb.DMatrix(self._predict_data(X), nthread=self.n_jobs))

    @available_if(_is_classifier)  # a regressor has no probabilities, so scikit-learn must not see the method
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
        return self._raw_predict(X).astype(np.float64)  # exact widening: scikit-learn expects float64 values

    @property
    def feature_importances_(self) -> np.ndarray:
        """Total gain per feature, normalised to sum 1 (n_features,)."""
        check_is_fitted(self, "booster_")
        gain = self.booster_.get_score(importance_type="total_gain")
        values = np.array([gain.get(f"f{i}", 0.0) for i in range(self.n_features_in_)])
        return values / values.sum() if values.sum() > 0 else values
