"""Surveys: where the frames of a map come from (``[hips] survey``)."""

from __future__ import annotations

from hipsluigi.config import MapSpec
from hipsluigi.surveys.base import Survey


def open_survey(spec: MapSpec) -> Survey:
    """The survey ``spec`` names; raises ``ValueError`` for one this version cannot read."""
    if spec.survey == "synthetic":
        from hipsluigi.surveys.synthetic import survey_for

        return survey_for(spec)
    if spec.survey == "fits":
        from astropy.table import Table

        from hipsluigi.surveys.fits_folder import FitsFolderSurvey

        path = spec.layout.survey_index
        if not path.exists():
            raise ValueError(f"{path}: the survey index is missing (the SurveyIndex task "
                             "writes it)")
        return FitsFolderSurvey(Table.read(str(path), format="ascii.ipac"), spec.frame)
    raise ValueError(f"[hips] survey = {spec.survey} is not available yet; use synthetic or "
                     "fits")
