"""The built-in flavor catalog: Nova's names and classic ids, and the default for anything else."""

from __future__ import annotations

import pytest

from floe import flavors


@pytest.mark.parametrize(("key", "vcpus", "ram"), [
    ("m1.tiny", 1, 512), ("1", 1, 512), ("m1.small", 1, 2048), ("m1.medium", 2, 4096), ("3", 2, 4096),
    ("m1.large", 4, 8192), ("m1.xlarge", 8, 16384), ("5", 8, 16384),
])
def test_catalog(key: str, vcpus: int, ram: int) -> None:
    found = flavors.size_of(key)
    assert (found.vcpus, found.ram) == (vcpus, ram)
    assert flavors.find(key) is found


@pytest.mark.parametrize("key", [None, "", "m1.huge", "M1.SMALL", "6", "ds512M"])
def test_unknown_or_missing_counts_as_the_default(key: str | None) -> None:
    assert flavors.find(key) is None
    assert flavors.size_of(key) is flavors.DEFAULT
    assert (flavors.DEFAULT.name, flavors.DEFAULT.vcpus, flavors.DEFAULT.ram) == ("m1.small", 1, 2048)
