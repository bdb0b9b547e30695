"""Options shared by the commands that can run on a distributed engine (embed, index): ``--engine local|ray``
and where/how wide the Ray engine runs. The commands only dispatch on ``--engine``; the engine lives in
``clipforge.distributed``."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from clipforge.distributed.ray import RayOptions
from clipforge.errors import InputError


class EngineName(str, Enum):
    local = "local"
    ray = "ray"


Engine = Annotated[
    EngineName,
    typer.Option("--engine", help="local: this process; ray: Ray Data workers (pip install 'clipforge[ray]')."),
]
Address = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster address (e.g. ray://head:10001 or head:6379); default: $RAY_ADDRESS or a "
        "local Ray instance. --engine ray only.",
    ),
]
Workers = Annotated[
    int | None,
    typer.Option("--workers", help="Ray workers, each holding one model (default: cluster CPUs / --cpus-per-worker)."),
]
CpusPerWorker = Annotated[
    int, typer.Option("--cpus-per-worker", help="CPUs per Ray worker = onnxruntime intra-op threads.")
]


def ray_options(address: str | None, workers: int | None, cpus_per_worker: int, batch_size: int):
    """The Ray engine's options; importing the engine needs no Ray (it is imported when a run starts)."""

    return RayOptions(address=address, workers=workers, cpus_per_worker=cpus_per_worker, batch_size=batch_size)


def check_local(engine: EngineName, address: str | None, workers: int | None, cpus_per_worker: int) -> None:
    """Ray-only options given with the local engine are an error, not silently ignored."""

    if engine == EngineName.local and (address or workers or cpus_per_worker != 1):
        raise InputError("--address, --workers and --cpus-per-worker need --engine ray; add it or drop them")


def check_ray(**given) -> None:
    """Options the Ray engine does not take (workers are CPU-only; --cpus-per-worker sets their threads)."""

    wrong = [f"--{name.replace('_', '-')}" for name, bad in given.items() if bad]
    if wrong:
        raise InputError(
            f"{', '.join(wrong)} cannot be used with --engine ray (CPU workers; set their threads "
            "with --cpus-per-worker); drop it or use the local engine"
        )
