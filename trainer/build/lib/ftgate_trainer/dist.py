"""torch.distributed for the training loop: the process group torchrun describes in the
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), gloo on CPU and NCCL on GPUs.
Without WORLD_SIZE the trainer is one process and every call here is local."""

import datetime
import os

import torch
import torch.distributed as td

# Tokenisation happens before the process group exists; this bounds everything after it.
TIMEOUT = datetime.timedelta(minutes=30)


def env_rank():
    """This process's rank as torchrun set it (0 without torchrun)."""
    v = os.environ.get("RANK", "0")
    return int(v) if v.isdigit() else 0


class Dist:
    def __init__(self, device_env=None):
        self.rank = env_rank()
        self.world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
        self.is_main = self.rank == 0
        if device_env:
            self.device = torch.device(device_env)
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", self.local_rank % torch.cuda.device_count())
        else:
            self.device = torch.device("cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.active = self.world > 1
        if self.active:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            td.init_process_group(backend, timeout=TIMEOUT)
        # Collectives carry tensors on the backend's device.
        self.comm_device = self.device if self.device.type == "cuda" else torch.device("cpu")

    def sum(self, values):
        """Element-wise sum of a list of floats over all ranks."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.comm_device)
        td.all_reduce(t)
        return t.tolist()

    def all_gather_object(self, obj):
        if not self.active:
            return [obj]
        out = [None] * self.world
        td.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        """rank 0's obj, on every rank."""
        if not self.active:
            return obj
        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self):
        if self.active:
            td.barrier()

    def close(self):
        if self.active and td.is_initialized():
            td.destroy_process_group()
