"""A trivial SLURM task for benchmarks/bench_slurm_overhead.py (importable by the jobs)."""

import luigi

from hipsluigi.pipeline.tasks import HipsTask


class TrivialJob(HipsTask):
    """Writes one small file; run as a SLURM job under ``executor = slurm``."""

    k = luigi.IntParameter()
    cluster_task = True

    def output(self):
        return luigi.LocalTarget(str(self.layout.base / "trivial" / f"{self.k}.done"))

    def work(self) -> None:
        with self.output().open("w") as f:
            f.write("done\n")


class TrivialJobs(luigi.WrapperTask):
    n = luigi.IntParameter(default=200)

    def requires(self):
        return [TrivialJob(k=k) for k in range(self.n)]
