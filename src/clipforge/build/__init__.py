"""Build pipeline: export -> optimise -> quantise -> compile, with parity vs fp32 recorded per stage."""

from clipforge.build.composite import BuildResult, build_composite
from clipforge.build.config import BuildConfig

__all__ = ["BuildConfig", "BuildResult", "build_composite"]
