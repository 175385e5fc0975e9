"""The ``cpu`` platform for verl 0.9.1, selected with ``VERL_PLATFORM=cpu``.

verl has no CPU platform: it falls back to ``nvidia`` and then fails on NCCL and CUDA calls.
Importing this module registers one with verl's ``PlatformRegistry`` and applies the two small
adaptations verl's training path needs on CPU (gloo process group, FSDP engine lookup).

Keep this module import-light. ``hpt.plugin`` imports it first, while ``import verl`` is still
running, and several verl modules cache the platform when they are imported; so nothing imported
here may trigger platform detection before the registration below has run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import types
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

PLATFORM_NAME = "cpu"


class _CPUDeviceModule(types.ModuleType):
    """``get_torch_device()`` on CPU: ``torch.cpu`` plus the ``torch.cuda`` calls verl makes on it.

    verl calls memory statistics, cache and RNG functions on the device module unconditionally;
    ``torch.cpu`` lacks them. Memory statistics report zero (CPU tensors are not tracked by a caching
    allocator), ``mem_get_info`` reports host memory, and the RNG is torch's default CPU generator.
    Anything else is delegated to ``torch.cpu``.
    """

    def __init__(self) -> None:
        super().__init__("hpt_cpu_device")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)

    @staticmethod
    def current_device() -> str:
        return "cpu"

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        return "CPU"

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
        return None

    @staticmethod
    def reset_peak_memory_stats(device: Any = None) -> None:
        return None

    @staticmethod
    def reset_accumulated_memory_stats(device: Any = None) -> None:
        return None

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        return 0

    @staticmethod
    def memory_reserved(device: Any = None) -> int:
        return 0

    @staticmethod
    def max_memory_allocated(device: Any = None) -> int:
        return 0

    @staticmethod
    def max_memory_reserved(device: Any = None) -> int:
        return 0

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        memory = psutil.virtual_memory()
        return memory.available, memory.total

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    @staticmethod
    def manual_seed_all(seed: int) -> None:
        torch.manual_seed(seed)


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """verl's platform interface for plain CPU processes: one "device" per process, gloo, no profiler."""

    _device_module = _CPUDeviceModule()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return self._device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Never auto-detected: CPU is always "available", so only an explicit VERL_PLATFORM=cpu selects it.
        return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME

    def current_device(self) -> str:
        # A string, not 0: verl passes this to torch (``model.to(device=...)``, FSDP ``device_id``), and
        # torch reads an integer as an accelerator index and fails on a host without one.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str) -> Iterator[None]:
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        # Each trainer worker still asks Ray for one "GPU": start Ray with as many fake GPUs as workers
        # (``+ray_kwargs.ray_init.num_gpus=N``) and verl's placement-group code runs unchanged.
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> None:
        return None


def _default_to_gloo(init_process_group: Callable[..., None]) -> Callable[..., None]:
    """Make ``backend=None`` mean plain gloo.

    verl's default backend string is ``f"cpu:gloo,{device}:{backend}"``, which on this platform is
    ``"cpu:gloo,cpu:gloo"``; torch rejects the duplicate device type. An explicit backend is kept.
    """

    @functools.wraps(init_process_group)
    def init_with_gloo(timeout_second: int | None = None, backend: str | None = None) -> None:
        return init_process_group(timeout_second=timeout_second, backend=backend or "gloo")

    return init_with_gloo


def _patch_process_group_init() -> None:
    """Install the gloo default before verl's workers import the function by name.

    ``verl.workers.engine_workers`` does ``from verl.utils.distributed import
    initialize_global_process_group_ray`` at import, so patching has to happen now, during
    ``import verl``. Importing ``verl.utils.distributed`` is safe here: it pulls in only Ray and
    ``verl.utils.device``, which ``import verl`` has already loaded, and detects no platform.
    """
    import verl.utils.distributed as verl_distributed

    verl_distributed.initialize_global_process_group_ray = _default_to_gloo(
        verl_distributed.initialize_global_process_group_ray
    )


_patch_process_group_init()

# verl registers its FSDP engines for devices "cuda" and "npu" only and looks them up by the platform's
# device name. Registering them for "cpu" too would need the engine classes, but this module runs before
# verl's engine module may be imported (that module reads the platform at import, so it must come after
# the registration above, and this module must stay import-light). verl's lookup honours
# VERL_ENGINE_DEVICE instead (verl/workers/engine/base.py), and the FSDP engines work on CPU once the
# platform supplies device "cpu" and gloo. An explicit setting wins.
os.environ.setdefault("VERL_ENGINE_DEVICE", "cuda")
