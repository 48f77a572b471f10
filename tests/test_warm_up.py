"""A problem's one-time warm-up (JIT compilation on a fresh install) runs in the
coordinator before islands start, and does not count against the run's time limit."""

from __future__ import annotations

import pytest

from coordinator.config import flat_config
from coordinator.run import start_run

SLOW_WARM_UP_MODULE = '''
import time
from islands.problems.functions import Sphere


class SlowStart(Sphere):
    """Sphere whose warm_up takes as long as a cold numba compilation might."""

    name = "slowstart"

    def warm_up(self):
        time.sleep(3.0)
'''


@pytest.fixture
def slow_start_plugin(install_plugin):
    install_plugin("slow_start", SLOW_WARM_UP_MODULE, "slowstart", "SlowStart")
    return "slowstart:dim=8"


def test_a_warm_up_longer_than_the_time_limit_still_leaves_a_full_search(tmp_path,
                                                                           slow_start_plugin):
    config = flat_config(problem=slow_start_plugin, islands=1, population=8, time_limit=2.0,
                       seed=3, out=str(tmp_path / "run"), quiet=True)
    summary = start_run(config).execute()
    assert summary["stopped_by"] == "time_limit"
    assert summary["best_fitness"] is not None and summary["generations"] > 0
    assert summary["elapsed_s"] < 3.0 + 2.0  # the warm-up is not part of the run's clock
