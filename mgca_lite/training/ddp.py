"""Process-group setup for `torchrun` (one process per GPU, or several CPU processes with gloo)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0          # global rank
    world_size: int = 1    # number of processes
    local_rank: int = 0    # rank on this node: selects the GPU
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """The one place the course chooses a device: CUDA when asked or available, else CPU."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda was requested but no CUDA device is visible")
    return torch.device("cuda", local_rank)


def init_distributed(requested_device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a single process.

    Backend: NCCL between GPUs, gloo on CPU. Multi-node runs need nothing more than torchrun's
    `--nnodes/--node_rank/--rdzv_endpoint` flags: rank and world size come from the environment.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistInfo(device=pick_device(requested_device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def ranks_agree(module: torch.nn.Module) -> bool:
    """True when every process holds the same parameters (a cheap checksum, all-gathered)."""
    if not (dist.is_available() and dist.is_initialized()):
        return True
    with torch.no_grad():
        local = torch.stack([p.detach().double().sum() for p in module.parameters()]).sum().reshape(1)
    local = local.to(next(module.parameters()).device)
    gathered = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return all(torch.equal(g, gathered[0]) for g in gathered)
