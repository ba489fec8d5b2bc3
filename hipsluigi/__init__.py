"""hipsluigi: whole-sky HiPS maps from survey images, as a Luigi task graph.

``luigi --module hipsluigi AllSkyPNGs`` builds the map that ``luigi.cfg`` describes.
"""

from hipsluigi.config import hips, synthetic
from hipsluigi.pipeline.tasks import (
    AllSkyFITS,
    AllSkyPNGs,
    BackgroundModel,
    CorrectPlate,
    HiPSMetadata,
    Histogram,
    OverlapFit,
    PlateHistogram,
    PlateList,
    PlateMosaic,
    PlatePNGs,
    PlateTable,
    PlateTiles,
    Setup,
    ShrinkPlate,
    SurveyIndex,
)
from hipsluigi.scheduling import use_for_local_runs
from hipsluigi.slurm import slurm

use_for_local_runs()  # --local-scheduler runs of any size: see hipsluigi.scheduling

__version__ = "0.1.0"

__all__ = [
    "AllSkyFITS", "AllSkyPNGs", "BackgroundModel", "CorrectPlate", "HiPSMetadata", "Histogram",
    "OverlapFit", "PlateHistogram", "PlateList", "PlateMosaic", "PlatePNGs", "PlateTable",
    "PlateTiles", "Setup", "ShrinkPlate", "SurveyIndex", "hips", "slurm", "synthetic",
]
