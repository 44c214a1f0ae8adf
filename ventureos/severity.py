"""Severity classes of violations: ``willful``, ``repeat``, ``serious``, ``other``, one vocabulary for
every agency, so totals can separate egregious violations from paperwork (docs/serving.md has the table).

A pure Polars expression over silver's ``agency`` and ``violation_type``: gold groups by it and the
API names the same classes.

- OSHA citations carry the class themselves (``viol_type`` W/R/S/O). A severe-injury report (an
  amputation, a loss of an eye or an in-patient hospitalization) is serious physical harm by
  definition: ``serious``.
- FAA: revoking a certificate is the sanction for conduct showing the holder unfit (deliberate
  falsification, intentional violations): ``willful``; suspensions and civil penalties (imposed,
  compromised, hazmat, by consent order) are sanctions: ``serious``; anything else (e.g. an
  administrative action) ``other``.
- EPA: both datasets hold formal enforcement cases that ended in a penalty or a settlement
  (``environmental_penalty``, ``{law}_enforcement_case``): ``serious``. Neither marks repeat or willful
  conduct, so EPA never counts there.
- Any other agency or type, and a null type: ``other``.
"""

from __future__ import annotations

import polars as pl

SEVERITIES = ("willful", "repeat", "serious", "other")
OTHER = "other"

OSHA_CLASSES = {"willful": "willful", "repeat": "repeat", "serious": "serious"}
OSHA_SERIOUS_HARM = ("severe_injury", "amputation", "loss_of_eye", "hospitalization")
FAA_CLASSES = {
    "certificate_revocation": "willful",
    "certificate_suspension": "serious",
    "civil_penalty": "serious",
    "civil_penalty_compromise": "serious",
    "hazmat_civil_penalty": "serious",
    "consent_order": "serious",
}
EPA_SERIOUS_TYPES = ("environmental_penalty",)
EPA_CASE_SUFFIX = "_enforcement_case"


def severity_expr(agency: str = "agency", violation_type: str = "violation_type") -> pl.Expr:
    """The severity class of each row, never null."""
    kind = pl.col(violation_type)
    osha = kind.replace_strict(OSHA_CLASSES, default=None, return_dtype=pl.String)
    osha = pl.when(kind.is_in(OSHA_SERIOUS_HARM)).then(pl.lit("serious")).otherwise(osha)
    faa = kind.replace_strict(FAA_CLASSES, default=None, return_dtype=pl.String)
    epa = pl.when(kind.is_in(EPA_SERIOUS_TYPES) | kind.str.ends_with(EPA_CASE_SUFFIX)).then(pl.lit("serious"))
    by_agency = (
        pl.when(pl.col(agency) == "osha")
        .then(osha)
        .when(pl.col(agency) == "faa")
        .then(faa)
        .when(pl.col(agency) == "epa")
        .then(epa)
    )
    return by_agency.fill_null(OTHER).alias("severity")


def severity_class(agency: str, violation_type: str | None) -> str:
    """The class of one violation (``severity_expr`` on one row)."""
    frame = pl.DataFrame(
        {"agency": [agency], "violation_type": [violation_type]},
        schema=dict.fromkeys(("agency", "violation_type"), pl.String),
    )
    return frame.select(severity_expr()).item()
