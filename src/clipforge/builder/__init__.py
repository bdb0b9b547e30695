"""Build pipeline: export -> optimise -> quantise -> compile, with parity vs fp32 recorded per stage."""

from clipforge.builder.build_config import BuildConfig
from clipforge.builder.composite import BuildResult, build_composite

__all__ = ["BuildConfig", "BuildResult", "build_composite"]
