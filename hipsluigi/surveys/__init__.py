"""Surveys: where the frames of a map come from (``[hips] survey``)."""

from __future__ import annotations

from hipsluigi.config import MapSpec
from hipsluigi.surveys.base import Survey


def open_survey(spec: MapSpec) -> Survey:
    """The survey ``spec`` names; raises ``ValueError`` for one this version cannot read."""
    if spec.survey == "synthetic":
        from hipsluigi.surveys.synthetic import survey_for

        return survey_for(spec)
    raise ValueError(f"[hips] survey = {spec.survey} is not available yet; use synthetic")
