"""Fixtures shared by the data-layer tests."""

import pytest


@pytest.fixture(scope="session")
def write_synthetic(tmp_path_factory):
    """`write_synthetic(writer, **kwargs)`: the root of a fresh synthetic corpus."""

    def write(writer, **kwargs) -> str:
        root = str(tmp_path_factory.mktemp(writer.__name__.removeprefix("write_")))
        writer(root, **kwargs)
        return root

    return write
