"""A Ray cluster address is checked before Ray is asked (Ray retries an unreachable one for
minutes): malformed addresses are refused at once, and one where nothing listens within a few
seconds too. Only loopback addresses are contacted."""

from __future__ import annotations

import socket
import time

import pytest

from gdsolver.errors import GdsolverError
from gdsolver.train.executor import check_ray_address


@pytest.mark.parametrize("address", ["h:-1", "127.0.0.1:0", "127.0.0.1:99999", "no-port", ":6379", "127.0.0.1:abc"])
def test_malformed_addresses_are_refused(address):
    with pytest.raises(GdsolverError, match="HOST:PORT"):
        check_ray_address(address)


def test_an_address_where_nothing_listens_is_refused_quickly():
    with socket.socket() as s:  # a loopback port that was free a moment ago: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.perf_counter()
    with pytest.raises(GdsolverError, match="nothing answers"):
        check_ray_address(f"127.0.0.1:{port}", timeout=2.0)
    assert time.perf_counter() - t < 2.5


def test_an_address_that_answers_passes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        check_ray_address(f"127.0.0.1:{s.getsockname()[1]}")
        check_ray_address(f"ray://127.0.0.1:{s.getsockname()[1]}")
    check_ray_address("auto")


def test_cli_refuses_a_bad_address_in_one_line(tmp_path):
    from clirun import assert_user_error, run

    assert_user_error(run("train", "--dataset", "polynomial", "--epochs", "1", "--portfolio", "2", "--ray-address",
                          "h:-1", cwd=tmp_path), "--ray-address")
