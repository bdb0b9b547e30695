"""Build pipeline: export -> optimise -> quantise -> compile, with parity vs fp32 recorded per stage."""

from clipforge.builder.composite import BuildResult, build_composite
from clipforge.builder.config import BuildConfig

__all__ = ["BuildConfig", "BuildResult", "build_composite"]
