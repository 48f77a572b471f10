"""Choosing the backend: a local run never imports Ray; `--backend ray` without Ray is one
line and exit code 2. Runs with or without Ray installed (the Ray backend's own tests are
test_ray_backend.py and test_ray_cluster.py)."""

import subprocess
import sys

LOCAL_RUN = """
import sys
from coordinator.config import flat_config
from coordinator.run import execute_run
summary = execute_run(flat_config(problem="rastrigin:dim=5", islands=2, generations=3,
                                out=sys.argv[1], quiet=True))
assert summary["stopped_by"] == "generations", summary
print("ray" in sys.modules)
"""

WITHOUT_RAY = """
import sys
sys.modules["ray"] = None  # `import ray` raises ImportError, as where Ray is not installed
from coordinator.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_local_run_does_not_import_ray(tmp_path):
    done = subprocess.run([sys.executable, "-c", LOCAL_RUN, str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_backend_ray_without_ray_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-c", WITHOUT_RAY, "run", "rastrigin:dim=5",
                           "--generations", "2", "--backend", "ray", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("--backend ray needs the ray package: pip install 'islands[ray]'")
    assert not (tmp_path / "r").exists()
