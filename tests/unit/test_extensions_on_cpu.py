"""``hpt.imports``: user modules imported in the driver and, through verl's plugin loader, in every process."""

import os
import subprocess
import sys
import textwrap

import pytest
from hydra import compose, initialize_config_module

from hpt import extensions
from hpt.config import resolvers
from hpt.core.gates import GATES, build_gate
from hpt.main import CPU_OVERLAY, ConfigError, run

GATE_FILE = textwrap.dedent(
    """
    from hpt.core.gates import RL_ROUTE, register_gate

    @register_gate("{name}")
    def user_gate(outcome, config):
        return RL_ROUTE
    """
)


def _gate_file(tmp_path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(GATE_FILE.format(name=name))
    return path


def _config(*overrides: str):
    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        return compose(CPU_OVERLAY, overrides=list(overrides))


def test_a_file_is_imported_once_and_its_gate_is_found_by_name(tmp_path):
    path = _gate_file(tmp_path, "ext_gate_file")
    extensions.import_all([str(path)])
    extensions.import_all([str(path)])  # a second import would raise "already registered"
    assert build_gate("ext_gate_file") is GATES["ext_gate_file"]


def test_a_dotted_module_is_imported(tmp_path, monkeypatch):
    (tmp_path / "ext_pkg").mkdir()
    (tmp_path / "ext_pkg" / "__init__.py").write_text("")
    (tmp_path / "ext_pkg" / "gates.py").write_text(GATE_FILE.format(name="ext_gate_module"))
    monkeypatch.syspath_prepend(str(tmp_path))
    extensions.import_all(["ext_pkg.gates"])
    assert "ext_gate_module" in GATES


def test_a_missing_file_or_module_is_a_clear_error(tmp_path):
    with pytest.raises(extensions.ExtensionImportError, match="does not exist; fix the path"):
        extensions.import_all([str(tmp_path / "nope.py")])
    with pytest.raises(extensions.ExtensionImportError, match="no module named 'no_such_pkg.gates'; install it"):
        extensions.import_all(["no_such_pkg.gates"])


def test_a_module_that_raises_names_the_module_and_the_error(tmp_path):
    path = tmp_path / "broken_ext.py"
    path.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(extensions.ExtensionImportError, match=r"broken_ext.py' failed: RuntimeError: boom"):
        extensions.import_all([str(path)])


def test_entries_round_trip_through_the_environment_variable(tmp_path, monkeypatch):
    entries = ["ext_pkg.gates", str(tmp_path / "a.py")]
    monkeypatch.setenv(extensions.ENV_VAR, extensions.encode(entries))
    assert extensions.from_env() == entries


def test_startup_refuses_a_missing_extension(tmp_path, monkeypatch):
    monkeypatch.setenv(extensions.ENV_VAR, "")
    monkeypatch.setenv(extensions.PATHS_ENV_VAR, "")
    with pytest.raises(ConfigError, match="hpt.imports: file .* does not exist"):
        run(_config(f"hpt.imports=[{tmp_path / 'missing.py'}]"))


def test_startup_imports_extensions_before_checking_the_strategy_name(tmp_path, monkeypatch):
    monkeypatch.setenv(extensions.ENV_VAR, "")  # restored after the test: run() publishes the list here
    monkeypatch.setenv(extensions.PATHS_ENV_VAR, "")
    path = _gate_file(tmp_path, "ext_gate_startup")
    # without the import, the strategy name is unknown
    with pytest.raises(ConfigError, match="unknown trainer.unify_strategy='ext_gate_startup'"):
        run(_config("trainer.unify_strategy=ext_gate_startup"))
    # with it, the strategy passes and the next check (micro-batches: 4 prompts x n=2 rows) is the one that fails
    config = _config(f"hpt.imports=[{path}]", "trainer.unify_strategy=ext_gate_startup",
                     "actor_rollout_ref.actor.ppo_mini_batch_size=4", "actor_rollout_ref.rollout.n=2")
    with pytest.raises(ConfigError, match="micro_batch_size_per_gpu"):
        run(config)
    assert os.environ[extensions.ENV_VAR] == str(path)
    assert config.ray_kwargs.ray_init.runtime_env.env_vars[extensions.ENV_VAR] == str(path)


def test_verl_plugin_loader_imports_the_published_extensions_in_a_new_process(tmp_path):
    """What every Ray worker does: ``import verl`` runs ``hpt.plugin``, which imports ``HPT_IMPORTS``."""
    path = _gate_file(tmp_path, "ext_gate_worker")
    env = dict(os.environ, VERL_PLATFORM="cpu", **{extensions.ENV_VAR: str(path)})
    code = "import verl; from hpt.core.gates import GATES; print('ext_gate_worker' in GATES)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr[-2000:]


def test_a_module_found_through_the_drivers_directory_is_found_in_a_worker(tmp_path, monkeypatch):
    """Ray workers do not run in the driver's directory: the package's directory travels in HPT_IMPORT_PATHS."""
    project = tmp_path / "project"
    (project / "ext_pkg2").mkdir(parents=True)
    (project / "ext_pkg2" / "__init__.py").write_text("")
    (project / "ext_pkg2" / "gates.py").write_text(GATE_FILE.format(name="ext_gate_pkg_worker"))
    monkeypatch.syspath_prepend(str(project))  # what `python -m hpt.main` run from the project directory gives
    extensions.import_all(["ext_pkg2.gates"])
    assert extensions.search_paths(["ext_pkg2.gates"]) == [str(project.resolve())]
    env = dict(os.environ, VERL_PLATFORM="cpu", **{extensions.ENV_VAR: "ext_pkg2.gates",
                                                   extensions.PATHS_ENV_VAR: str(project.resolve())})
    code = "import verl; from hpt.core.gates import GATES; print('ext_gate_pkg_worker' in GATES)"
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr[-2000:]
