"""The jobs' console: the lines that matter on the terminal, everything (Ray's, the libraries', C++ logs) in the log file."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from synpo.console import worth_showing

# Lines as a training and a pair job printed them before (Ray's worker prefix and colours included).
NOISE = [
    "\x1b[36m(PlacementGroupCleaner pid=5121)\x1b[0m Failed to query Ray Train Controller actor state. State API may be temporarily unavailable.",
    "\x1b[36m(RayTrainWorker pid=5849)\x1b[0m DeepSpeed deepspeed.ops.comm.deepspeed_shm_comm_op built successfully",
    "\x1b[36m(RayTrainWorker pid=5849)\x1b[0m [2026-11-30 06:29:10,578] [WARNING] [real_accelerator.py:213:get_accelerator] Setting accelerator to CPU.",
    "\x1b[36m(RayTrainWorker pid=5849)\x1b[0m /x/torch/distributed/c10d_logger.py:83: FutureWarning: `all_gather_into_tensor` is deprecated.",
    "2026-11-30 06:24:55,686\tINFO logging_progress.py:120 -- MapBatches(SampleStage): 2/4",
    "[2026-11-30 06:29:10,578 E 123 456] core_worker.cc:512: Actor with class name: 'PreemptionWatcher' has constructor arguments",
    "\x1b[36m(MapWorker(MapBatches(SampleStage)) pid=4693)\x1b[0m Loading weights: 100%|██████████| 58/58",
    "2026/11/30 06:24:57 INFO mlflow.store.db.utils: Creating initial MLflow database tables...",
]
SHOWN = {
    "\x1b[36m(RayTrainWorker pid=5849)\x1b[0m step 1 loss=-1.0578 rewards/margin=0.0913": "step 1 loss=-1.0578 rewards/margin=0.0913",
    "\x1b[36m(RayTrainWorker pid=5849, ip=10.0.0.2)\x1b[0m memory estimate per GPU: 13.3 MiB": "memory estimate per GPU: 13.3 MiB",
    "(RayTrainWorker pid=1) warning: non-finite loss at step 3": "warning: non-finite loss at step 3",
    "(RayTrainWorker pid=1) rank 0: resuming at epoch 1, step 3": "rank 0: resuming at epoch 1, step 3",
    "2026-11-30 06:30:08,564 synpo.pairgen.pipeline: 3 videos: 0 already done": "2026-11-30 06:30:08,564 synpo.pairgen.pipeline: 3 videos: 0 already done",
}


def test_the_filter_keeps_our_lines_without_ray_prefixes_and_drops_the_rest():
    assert [worth_showing(line) for line in NOISE] == [None] * len(NOISE)
    assert {line: worth_showing(line) for line in SHOWN} == SHOWN


JOB = textwrap.dedent(
    """
    import logging, os, sys
    import ray
    from synpo.console import job_console, say

    @ray.remote
    def worker():
        print("step 1 loss=0.5000", flush=True)
        print("DeepSpeed deepspeed.ops.comm.deepspeed_shm_comm_op built successfully", flush=True)
        return 1

    with job_console("demo", log_path=__import__("pathlib").Path(sys.argv[1])):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        ray.init(address="local", num_cpus=1, include_dashboard=False)
        assert ray.get(worker.remote()) == 1
        logging.getLogger("synpo.demo").info("3 videos to do")
        logging.getLogger("ray.data").info("Execution plan of Dataset: noise")
        os.write(2, b"[E core_worker.cc:1] C++ noise\\n")
        print("a library's stray print")
        say("done: 1 step")
    """
)


def test_a_job_with_its_own_ray_shows_only_what_matters_and_logs_everything(tmp_path):
    log = tmp_path / "job.log"
    result = subprocess.run([sys.executable, "-c", JOB, str(log)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"demo: full log in {log}") and lines[-1] == f"demo: full log in {log}"
    middle = [line.split(" ", 2)[-1] if "synpo.demo" in line else line for line in lines[1:-1]]
    assert middle == ["step 1 loss=0.5000", "synpo.demo: 3 videos to do", "done: 1 step"]
    assert result.stderr == ""
    text = log.read_text()
    for expected in ("DeepSpeed deepspeed.ops", "C++ noise", "a library's stray print", "Execution plan", "step 1 loss=0.5000", "done: 1 step"):
        assert expected in text


def test_verbose_leaves_the_output_alone(tmp_path):
    script = JOB.replace('log_path=__import__("pathlib").Path(sys.argv[1])', "verbose=True")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.log")], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "a library's stray print" in result.stdout and "full log" not in result.stdout and not (tmp_path / "x.log").exists()
