"""SQLAlchemy 2.0 models of the xtalbase database and its Alembic migration chain.

Importing this package registers every table on :data:`Base.metadata`.
"""

from xtalbase.schema.base import Base
from xtalbase.schema.calculations import Calculation
from xtalbase.schema.csp import CspEvaluation, CspPairResult, CspRun, CspSample
from xtalbase.schema.descriptors import DescriptorRecipe, DescriptorValue
from xtalbase.schema.ml import Dataset, DatasetMember, Model, Prediction, Split, SplitMember
from xtalbase.schema.notes import StructureNote
from xtalbase.schema.runs import Direction, LinkKind, Quarantine, Run, RunLink, RunNote, RunStatus
from xtalbase.schema.structures import Source, SourceProperty, Structure, StructureElement
from xtalbase.schema.xrd import XrdFailure, XrdPattern, XrdPeak, XrdPeakIndex, XrdRecipe

__all__ = [
    "Base",
    "Calculation",
    "CspEvaluation",
    "CspPairResult",
    "CspRun",
    "CspSample",
    "Dataset",
    "DatasetMember",
    "DescriptorRecipe",
    "DescriptorValue",
    "Direction",
    "LinkKind",
    "Model",
    "Prediction",
    "Quarantine",
    "Run",
    "RunLink",
    "RunNote",
    "RunStatus",
    "Source",
    "SourceProperty",
    "Split",
    "SplitMember",
    "Structure",
    "StructureElement",
    "StructureNote",
    "XrdFailure",
    "XrdPattern",
    "XrdPeak",
    "XrdPeakIndex",
    "XrdRecipe",
]
