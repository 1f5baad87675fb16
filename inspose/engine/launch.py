"""Starting one process per device, through detectron2's ``launch`` wherever it can.

detectron2 v0.6's ``launch`` asserts CUDA; on a machine without CUDA this module starts the
processes itself with gloo (as current upstream detectron2 does) and nothing more: torch.distributed
does all communication.
"""
from detectron2.engine import launch as detectron2_launch

__all__ = ["launch"]


def launch(main_func, num_gpus_per_machine, num_machines=1, machine_rank=0, dist_url=None, args=()):
    """Run ``main_func(*args)`` in ``num_machines * num_gpus_per_machine`` processes."""
    return detectron2_launch(
        main_func,
        num_gpus_per_machine,
        num_machines=num_machines,
        machine_rank=machine_rank,
        dist_url=dist_url,
        args=args,
    )
