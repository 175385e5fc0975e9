"""The ``verl.plugins`` entry point: verl imports this module in every process during ``import verl``.

Order matters (verl caches the platform at import time in several modules): the CPU platform is
registered first, and only when ``VERL_PLATFORM=cpu``; then the ``hf`` rollout; then the FSDP
engine that counts the hybrid loss's normalisers and the fix of verl's VLM forward on image-free
micro-batches; then hpt's RL policy losses; last the user's
extension modules that the driver published in ``HPT_IMPORTS`` (``hpt.imports``, see
``hpt.extensions``). verl swallows plugin import errors, so ``check_registrations`` is called at
start-up to fail loudly instead, and a failing extension import is logged as an error here.
"""

import logging
import os

if os.environ.get("VERL_PLATFORM") == "cpu":
    import hpt.cpu.platform  # noqa: F401  (registers the platform; must be the first hpt import)

import hpt.cpu.hf_rollout  # noqa: E402,F401  (registers rollout name "hf")
from hpt.cpu import images_only_video  # noqa: E402  (torchvision-free VLM processors load by name)
import hpt.trainer.engine  # noqa: E402,F401  (counting FSDP engine for the hybrid loss)
import hpt.trainer.vl_forward  # noqa: E402,F401  (verl's Qwen2.5-VL forward on image-free micro-batches)
import hpt.trainer.policy_losses  # noqa: E402,F401  (registers loss_mode "unclipped")
from hpt import extensions  # noqa: E402

images_only_video.register()

try:
    extensions.import_from_env()
except extensions.ExtensionImportError:  # verl would hide it; check_registrations raises it again
    logging.getLogger(__name__).exception("hpt: importing the user's extension modules (%s) failed", extensions.ENV_VAR)


def check_registrations() -> None:
    """Raise if verl did not load this plugin (verl hides plugin import errors at DEBUG level)."""
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    from hpt.trainer.engine import installed as engine_installed

    extensions.import_from_env()  # raises the clear ExtensionImportError in this process, if any
    problems = []
    if not engine_installed():
        problems.append("the FSDP engine is not hpt's counting engine (hybrid loss normalisers missing)")
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    from hpt.trainer.policy_losses import UNCLIPPED

    if UNCLIPPED not in POLICY_LOSS_REGISTRY:
        problems.append(f"policy loss {UNCLIPPED!r} is not in verl's policy-loss registry")
    if ("hf", "async") not in _ROLLOUT_REGISTRY:
        problems.append("rollout 'hf' is not in verl's rollout registry")
    try:
        RolloutReplicaRegistry.get("hf")
    except Exception as exc:  # verl raises different types across versions
        problems.append(f"rollout replica 'hf' is not registered ({exc})")
    if os.environ.get("VERL_PLATFORM") == "cpu":
        from verl.utils.device import get_device_name

        if get_device_name() != "cpu":
            problems.append(f"VERL_PLATFORM=cpu but verl selected device {get_device_name()!r}")
    if problems:
        raise RuntimeError(
            "hpt's verl plugin is not active: "
            + "; ".join(problems)
            + ". Check that hpt is installed in this environment (pip install -e .) and that "
            "VERL_USE_EXTERNAL_PLUGINS is not set to 'none'; run "
            "`python -c 'import hpt.plugin'` to see the import error verl hid."
        )
