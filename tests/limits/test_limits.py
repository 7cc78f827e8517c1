"""How the open-files limit is shared out (fastlb.limits): pure arithmetic, checked by its promises."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from fastlb import config, limits


@pytest.mark.parametrize("nofile", [256, 1024, 4096, 65536, 524288, 1048576])
@pytest.mark.parametrize("workers", [1, 2, 16])
def test_the_data_plane_fits_in_its_share_and_leaves_the_reserve(nofile: int, workers: int) -> None:
    b = limits.budget(nofile, workers, pipe_max=1024, pool_max=10000)
    assert b.fd_max < nofile  # the admin API, health checks and Marathon keep a reserve
    # every connection's two sockets, every pipe's two ends and every pooled connection fit in fd_max
    # (where the workers' own descriptors leave room for them: not 16 workers under 256)
    own = limits.PER_WORKER * workers
    assert own > b.fd_max // 2 or 2 * b.maxconn + 2 * b.pipe_max + b.pool_max + own <= b.fd_max
    assert b.maxconn >= 1 and b.pipe_max <= 1024 and b.pool_max <= 10000


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """fastlb's log lines (its logger does not propagate once ``logs.setup`` ran)."""
    logger = logging.getLogger("fastlb")
    propagate, logger.propagate = logger.propagate, True
    try:
        with caplog.at_level(logging.INFO, logger="fastlb"):
            yield caplog
    finally:
        logger.propagate = propagate


def test_the_default_maxconn_is_what_fits_up_to_100000(logged: pytest.LogCaptureFixture) -> None:
    small = limits.fit_engine(config.EngineSettings(), 2, limit=1024)
    assert small["maxconn"] == limits.budget(1024, 2, 1024, 10000).maxconn < 1024 // 2
    big = limits.fit_engine(config.EngineSettings(), 2, limit=1048576)
    assert big["maxconn"] == 100000 and big["pipe_max"] == 1024 and big["pool_max"] == 10000
    assert "workers" not in big and big["fd_max"] == limits.budget(1048576, 2, 1024, 10000).fd_max
    assert "maxconn_over_limit" not in logged.text and "engine_sized nofile=1048576 maxconn=100000" in logged.text


def test_an_explicit_maxconn_above_what_fits_is_kept_with_a_warning(logged: pytest.LogCaptureFixture) -> None:
    got = limits.fit_engine(config.EngineSettings(maxconn=5000), 2, limit=1024)
    assert got["maxconn"] == 5000
    fits = limits.budget(1024, 2, 1024, 10000).maxconn
    assert f"maxconn_over_limit maxconn=5000 fits={fits} nofile=1024" in logged.text
