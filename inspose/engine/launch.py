"""Starting one process per device, through detectron2's ``launch`` wherever it can.

- With CUDA: detectron2's ``launch``, unchanged (NCCL, one GPU per process).
- Without CUDA: detectron2 v0.6's ``launch`` asserts CUDA, so this module starts the processes
  itself, as current upstream detectron2 does: ``--num-gpus N`` means N processes per machine,
  joined in one gloo process group. torch.distributed does all communication; this module only
  starts the processes, initialises the group and sets detectron2's local (per-machine) group.

Ranks: global rank = machine_rank * processes_per_machine + local_rank, on every machine that runs
``launch`` with the same ``dist_url`` and ``num_machines``. Each CPU process gets
cores / processes_per_machine threads unless ``OMP_NUM_THREADS`` is set (set it to 1 when several
"machines" share one host).
"""
import logging
import os
import socket
from datetime import timedelta
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch as detectron2_launch
from detectron2.utils import comm

__all__ = ["launch", "launch_cpu", "find_free_port", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = timedelta(minutes=30)
logger = logging.getLogger(__name__)


def launch(
    main_func: Callable,
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: Optional[str] = None,
    args: Sequence = (),
    timeout: timedelta = DEFAULT_TIMEOUT,
):
    """Run ``main_func(*args)`` in ``num_machines * num_gpus_per_machine`` processes.

    Call it on every machine of the job. Each machine starts ``num_gpus_per_machine`` processes
    (GPUs with CUDA, CPU processes without). ``dist_url``: "tcp://HOST:PORT" of machine 0, or
    "auto" (one machine only) for a free port on 127.0.0.1. One process in all runs ``main_func``
    in this process, without a process group.
    """
    if torch.cuda.is_available():
        return detectron2_launch(
            main_func,
            num_gpus_per_machine,
            num_machines=num_machines,
            machine_rank=machine_rank,
            dist_url=dist_url,
            args=args,
            timeout=timeout,
        )
    return launch_cpu(
        main_func, num_gpus_per_machine, num_machines, machine_rank, dist_url, args, timeout
    )


def launch_cpu(
    main_func: Callable,
    processes_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: Optional[str] = None,
    args: Sequence = (),
    timeout: timedelta = DEFAULT_TIMEOUT,
):
    """``launch`` without CUDA: ``processes_per_machine`` CPU processes here, one gloo group in all.

    Each process joins the group as rank ``machine_rank * processes_per_machine + local_rank``,
    sets ``detectron2.utils.comm._LOCAL_PROCESS_GROUP`` (``comm.get_local_rank`` needs it), gets
    its share of the machine's cores, and runs ``main_func(*args)``. An exception in any process is
    raised here (torch.multiprocessing stops the others on this machine). With one process per
    machine (several machines) this process joins the group itself.
    """
    if num_machines * processes_per_machine == 1:
        return main_func(*args)
    dist_url = _resolve_dist_url(dist_url, num_machines)
    layout = (processes_per_machine, num_machines, machine_rank)
    if processes_per_machine == 1:  # this process is the machine's only one: no spawn
        return _cpu_worker(0, main_func, layout, dist_url, tuple(args), timeout)
    mp.spawn(
        _cpu_worker,
        nprocs=processes_per_machine,
        args=(main_func, layout, dist_url, tuple(args), timeout),
        daemon=False,
    )


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 free at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _resolve_dist_url(dist_url: Optional[str], num_machines: int) -> str:
    if not dist_url:
        raise ValueError("a multi-process run needs --dist-url (tcp://HOST:PORT or auto)")
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError(
                "--dist-url auto works on one machine only: give tcp://HOST:PORT of machine 0"
            )
        return f"tcp://127.0.0.1:{find_free_port()}"
    return dist_url


def _cpu_worker(
    local_rank: int,
    main_func: Callable,
    layout: Tuple[int, int, int],
    dist_url: str,
    args: tuple,
    timeout: timedelta,
) -> None:
    """One CPU process: join the gloo group, set the local group, run ``main_func``.

    ``layout``: (processes_per_machine, num_machines, machine_rank).
    """
    per_machine, num_machines, machine_rank = layout
    _share_cpu_threads(per_machine)
    try:
        dist.init_process_group(
            "gloo",
            init_method=dist_url,
            world_size=num_machines * per_machine,
            rank=machine_rank * per_machine + local_rank,
            timeout=timeout,
        )
    except Exception:
        logger.error("Process group URL: %s", dist_url)
        raise
    comm._LOCAL_PROCESS_GROUP = _local_process_group(machine_rank, per_machine, num_machines)
    comm.synchronize()
    main_func(*args)
    comm.synchronize()  # no process leaves while another still talks to the group
    dist.destroy_process_group()
    comm._LOCAL_PROCESS_GROUP = None


def _local_process_group(machine_rank: int, per_machine: int, num_machines: int):
    """The group of this machine's processes; every process creates every machine's group."""
    local = None
    for machine in range(num_machines):
        first = machine * per_machine
        group = dist.new_group(list(range(first, first + per_machine)))
        if machine == machine_rank:
            local = group
    return local


def _share_cpu_threads(per_machine: int) -> None:
    """Split the machine's cores between its processes (unless OMP_NUM_THREADS says otherwise)."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores // per_machine))
