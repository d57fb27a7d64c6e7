"""Build step for the compiled chunker; the project's metadata lives in pyproject.toml.

`pip install -e .` and `pip install .` compile `atlas_tui/backup/_cdc.c` with the
system C compiler and the Python headers (Debian: gcc and python3-dev).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "atlas_tui.backup._cdc",
            sources=["atlas_tui/backup/_cdc.c"],
            extra_compile_args=["-O2", "-std=c99"],
        )
    ]
)
