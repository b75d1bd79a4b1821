"""Membership inference: was this record in the training data?"""

from unmeasured.audits.membership.attack import MembershipAttack
from unmeasured.audits.membership.baselines import (
    ConfidenceAttack,
    EntropyAttack,
    LossAttack,
    ModifiedEntropyAttack,
)
from unmeasured.audits.membership.credibility import Credibility
from unmeasured.audits.membership.data_use import DataUse
from unmeasured.audits.membership.label_only import LabelOnlyGapAttack
from unmeasured.audits.membership.lira import LiRA
from unmeasured.audits.membership.one_run import OneRunAudit
from unmeasured.audits.membership.rmia import RMIA
from unmeasured.audits.membership.shadow import ShadowModelAttack
from unmeasured.audits.membership.subpopulation import Subpopulation
from unmeasured.audits.membership.user import UserLevel
from unmeasured.audits.membership.whitebox import WhiteBoxAttack

__all__ = [
    "RMIA",
    "ConfidenceAttack",
    "Credibility",
    "DataUse",
    "EntropyAttack",
    "LabelOnlyGapAttack",
    "LiRA",
    "LossAttack",
    "MembershipAttack",
    "ModifiedEntropyAttack",
    "OneRunAudit",
    "ShadowModelAttack",
    "Subpopulation",
    "UserLevel",
    "WhiteBoxAttack",
]
