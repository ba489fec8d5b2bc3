"""Surveys: where the images of a map come from (``[hips] survey``)."""

from __future__ import annotations

from astropy.table import Table

from hipsluigi.spec import MapSpec
from hipsluigi.surveys.base import Survey


def open_survey(spec: MapSpec, index: Table | None = None) -> Survey:
    """The survey ``spec`` names.

    Parameters
    ----------
    spec : the map.
    index : for ``survey = fits``, the survey index (``SurveyIndex``'s table).

    Raises
    ------
    ValueError
        For a survey this version cannot read, or a ``fits`` survey without its index.
    """
    if spec.survey == "synthetic":
        from hipsluigi.surveys.synthetic import survey_for

        return survey_for(spec)
    if spec.survey == "fits":
        from hipsluigi.surveys.fits_folder import FitsFolderSurvey

        if index is None:
            raise ValueError("survey = fits needs its index (the SurveyIndex task writes it)")
        return FitsFolderSurvey(index, spec.frame)
    raise ValueError(f"[hips] survey = {spec.survey} is not available yet; use synthetic or "
                     "fits")
