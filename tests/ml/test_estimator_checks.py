"""scikit-learn's shared estimator suite on both wrappers, as classifiers and as regressors.

Every check passes and none is listed in ``expected_failed_checks``, so a new failure shows. scikit-learn
itself skips its array-API checks unless ``SCIPY_ARRAY_API=1`` (the wrappers take NumPy input only).
"""

from __future__ import annotations

from sklearn.base import is_classifier, is_regressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from xtalbase.ml.estimators import ExtraTreesModel, XGBoostModel

ESTIMATORS = [
    ExtraTreesModel(n_estimators=5),
    ExtraTreesModel(task="regression", n_estimators=5),
    XGBoostModel(n_estimators=5),
    XGBoostModel(task="regression", n_estimators=5),
]


def expected_failed_checks(estimator) -> dict[str, str]:
    """Checks a wrapper is known to fail, with the reason; none today."""
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_task_decides_classifier_or_regressor():
    for cls in (ExtraTreesModel, XGBoostModel):
        assert is_classifier(cls()) and not is_regressor(cls())
        assert is_regressor(cls(task="regression")) and not is_classifier(cls(task="regression"))
        assert not hasattr(cls(task="regression"), "predict_proba") and hasattr(cls(), "predict_proba")
