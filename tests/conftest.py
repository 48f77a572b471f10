"""Shared pytest set-up: hypothesis profiles (CI runs the fuzzing at full size), paths, `when`
(poll until a condition holds), and
the run history kept in a temporary file (ISLANDS_HISTORY) so no test writes the user's."""

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parent.parent
ITC2007_DIR = REPO_ROOT.parent / "shared" / "itc2007"

settings.register_profile(
    "ci", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def when(predicate, timeout: float = 60.0) -> bool:
    """Whether `predicate()` becomes true within `timeout` seconds (polled every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def install_plugin(tmp_path, monkeypatch):
    """Install a real problem plugin: a module plus a dist-info with an `islands.problems`
    entry point, on sys.path (spawned islands inherit it). Returns a function
    `install(module_name, source, entry_name, attribute)`."""

    def install(module_name: str, source: str, entry_name: str, attribute: str) -> None:
        plugin_dir = tmp_path / "plugin"
        info = plugin_dir / f"{module_name}-1.0.dist-info"
        info.mkdir(parents=True)
        (plugin_dir / f"{module_name}.py").write_text(source)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {module_name.replace('_', '-')}\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text(
            f"[islands.problems]\n{entry_name} = {module_name}:{attribute}\n"
        )
        monkeypatch.syspath_prepend(str(plugin_dir))

    return install


@pytest.fixture
def gate(monkeypatch):
    """A fresh `threaded_parts.Gate`; its problem spec is `gate.spec`. Released at the end."""
    import uuid

    from threaded_parts import GATES, Gate

    from islands.problem import BUILTIN_PROBLEMS

    monkeypatch.setitem(BUILTIN_PROBLEMS, "gated", "threaded_parts:Gated")
    key = "k" + uuid.uuid4().hex[:8]  # not a number: spec values are parsed
    GATES[key] = made = Gate(spec=f"gated:key={key}")
    yield made
    made.release.set()
    GATES.pop(key, None)


@pytest.fixture(autouse=True, scope="session")
def history_in_tmp(tmp_path_factory):
    """Runs in tests record their history in a temporary file, never the user's data dir
    (ISLANDS_HISTORY is the default `coordinator.history.history_path` honours). Session
    scope: module-scoped fixtures that run a whole run are set up after it."""
    path = tmp_path_factory.mktemp("history") / "history.sqlite"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ISLANDS_HISTORY", str(path))
        yield path
