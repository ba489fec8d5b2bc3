"""hipsluigi: whole-sky HiPS maps from survey images, as a Luigi task graph.

``luigi --module hipsluigi AllSkyPNGs`` builds the map that ``luigi.cfg`` describes;
``luigi --module hipsluigi AllMaps --maps W1,W2`` builds several in one graph.
"""

from hipsluigi.execution import (
    SlurmTask,
    install_indexed_scheduler,
    ready_task_processes,
    thread_pools,
)
from hipsluigi.pipeline.colour import ColourPNGs
from hipsluigi.pipeline.report import QAReport
from hipsluigi.pipeline.settings import hips, install_command_line_checks, synthetic
from hipsluigi.pipeline.tasks import (
    AllMaps,
    AllSkyFITS,
    AllSkyPNGs,
    BackgroundModel,
    CorrectPlate,
    HiPSMetadata,
    HipsTask,
    Histogram,
    OverlapFit,
    PlateHistogram,
    PlateList,
    PlateMosaic,
    PlatePNGs,
    PlateTable,
    PlateTask,
    PlateTiles,
    Setup,
    ShrinkPlate,
    SurveyIndex,
)

install_indexed_scheduler()  # --local-scheduler runs of any size: see hipsluigi.execution
install_command_line_checks()  # bad names and settings: one line, before any task runs
thread_pools()  # found once, here, for every task process the Luigi worker forks
ready_task_processes()  # ... which start with BLAS at one thread and keep freed memory

__version__ = "0.10.0"

__all__ = [
    "AllMaps", "AllSkyFITS", "AllSkyPNGs", "BackgroundModel", "ColourPNGs", "CorrectPlate",
    "HiPSMetadata", "HipsTask", "Histogram", "OverlapFit", "PlateHistogram", "PlateList",
    "PlateMosaic", "PlatePNGs", "PlateTable", "PlateTask", "PlateTiles", "QAReport", "Setup",
    "ShrinkPlate", "SlurmTask", "SurveyIndex", "hips", "synthetic",
]
