"""Trivial SLURM tasks for benchmarks/bench_slurm_overhead.py (importable by the jobs)."""

import luigi

from hipsluigi.execution import SlurmTask


class TrivialJob(SlurmTask):
    """Writes one small file; a SLURM job under ``[execution] executor = slurm``."""

    root = luigi.Parameter()
    k = luigi.IntParameter()

    def output(self):
        return luigi.LocalTarget(f"{self.root}/trivial/{self.k}.done")

    def work(self) -> None:
        with self.output().open("w") as f:
            f.write("done\n")


class TrivialJobs(luigi.WrapperTask):
    root = luigi.Parameter()
    n = luigi.IntParameter(default=200)

    def requires(self):
        return [TrivialJob(root=self.root, k=k) for k in range(self.n)]
