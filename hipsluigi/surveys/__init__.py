"""Surveys: where the images of a map come from (``[hips] survey``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from astropy.table import Table

from hipsluigi.spec import MapSpec
from hipsluigi.surveys.base import Survey


def open_survey(spec: MapSpec, index: Table | None = None,
                download_dirs: Sequence[Path] = ()) -> Survey:
    """The survey ``spec`` names.

    Parameters
    ----------
    spec : the map.
    index : for ``survey = fits`` and ``wise``, the survey index (``SurveyIndex``'s table).
    download_dirs : for ``survey = wise``, the download cache's folder on each storage unit.

    Returns
    -------
    Survey
        For ``healpix``, a :class:`~hipsluigi.surveys.healpix_map.HealpixMapSurvey`, which
        makes plate mosaics itself (``plate_mosaic``) instead of handing out images.

    Raises
    ------
    ValueError
        For a survey without the index it needs, or a HEALPix file that cannot be read.
    """
    if spec.survey == "synthetic":
        from hipsluigi.surveys.synthetic import survey_for

        return survey_for(spec)
    if spec.survey == "healpix":
        from hipsluigi.surveys.healpix_map import HealpixMapSurvey

        return HealpixMapSurvey.open(spec.survey_path, spec.healpix_column, spec.healpix_frame)
    if index is None:
        raise ValueError(f"survey = {spec.survey} needs its index (the SurveyIndex task "
                         "writes it)")
    if spec.survey == "fits":
        from hipsluigi.surveys.fits_folder import FitsFolderSurvey

        return FitsFolderSurvey(index, spec.frame)
    from hipsluigi.surveys.downloads import DownloadCache
    from hipsluigi.surveys.wise import WiseSurvey

    return WiseSurvey(index, spec.frame, DownloadCache(list(download_dirs)))
