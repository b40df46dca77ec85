"""Run an optbench matrix on a Slurm cluster through dask-jobqueue (not run in CI).

    pip install 'optbench[dask]' dask-jobqueue
    python examples/slurm_dask.py            # prints the scheduler address, keeps it up
    optbench run --preset standard --executor dask --address tcp://<address printed> \\
        --out results/standard-slurm

Each Slurm job is one Dask worker process that trains whole cells (a cell is the unit of
distribution); only the `optbench run` process on the login node writes the results folder.
Adjust the queue, account and resources to your cluster.
"""
import time

from dask_jobqueue import SLURMCluster

cluster = SLURMCluster(
    queue="gpu",                   # your partition
    account="my-project",          # your account, if the cluster wants one
    cores=8, processes=1,          # one worker process per job: JAX uses the cores itself
    memory="32GB",
    walltime="02:00:00",
    job_extra_directives=["--gres=gpu:1"],  # drop for CPU-only nodes
    job_script_prologue=["source /path/to/optbench/.venv/bin/activate"],
)
cluster.scale(jobs=4)  # four workers; or cluster.adapt(minimum_jobs=1, maximum_jobs=16)
print(f"scheduler: {cluster.scheduler_address}  (Ctrl-C stops it and its jobs)")
try:
    while True:
        time.sleep(60)
except KeyboardInterrupt:
    cluster.close()
