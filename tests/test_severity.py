"""Severity classes: every agency's violation types mapped to willful / repeat / serious / other."""

from __future__ import annotations

import polars as pl

from normalizers.faa.enforcement import ACTION_TYPES
from normalizers.osha.enforcement import VIOLATION_TYPES
from normalizers.osha.severe_injury import SEVERITY_FLAGS
from ventureos.severity import SEVERITIES, severity_class, severity_expr


def test_osha_citations_keep_their_class_and_injury_reports_are_serious() -> None:
    assert {t: severity_class("osha", t) for t in VIOLATION_TYPES.values()} == {
        "serious": "serious",
        "willful": "willful",
        "repeat": "repeat",
        "other": "other",
    }
    injuries = ["severe_injury", *SEVERITY_FLAGS.values()]
    assert {severity_class("osha", t) for t in injuries} == {"serious"}
    assert severity_class("osha", None) == "other"  # an unknown citation type


def test_faa_and_epa_case_types_map_to_the_same_classes() -> None:
    assert {t: severity_class("faa", t) for t in ACTION_TYPES.values()} == {
        "certificate_revocation": "willful",
        "certificate_suspension": "serious",
        "hazmat_civil_penalty": "serious",
        "civil_penalty_compromise": "serious",
        "consent_order": "serious",
        "civil_penalty": "serious",
    }
    assert severity_class("faa", "warning_notice") == "other"
    assert severity_class("faa", "enforcement_action") == "other"
    assert severity_class("epa", "environmental_penalty") == "serious"
    assert severity_class("epa", "clean_air_act_enforcement_case") == "serious"
    assert severity_class("epa", "epa_enforcement_case") == "serious"
    # Another agency's types are not read as OSHA's.
    assert severity_class("faa", "willful") == "other"
    assert severity_class("dol", "willful") == "other"


def test_the_expression_classifies_a_frame_and_never_yields_null() -> None:
    frame = pl.DataFrame(
        {
            "agency": ["osha", "osha", "faa", "epa", "epa", None],
            "violation_type": ["repeat", None, "certificate_revocation", None, "cwa_enforcement_case", "x"],
        }
    )
    got = frame.select(severity_expr())["severity"].to_list()
    assert got == ["repeat", "other", "willful", "other", "serious", "other"]
    assert set(got) <= set(SEVERITIES)
