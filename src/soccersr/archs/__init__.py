"""Network architectures, one plain ``nn.Module`` per file, with official parameter names.

Each generator file also defines the ``ArchSpec`` that describes it (detection, scale, size
multiple, memory, ncnn graph); ``GENERATORS`` lists them. Adding a generator means adding its
file and one entry here. The discriminator is a plain module: nothing loads or tiles it.
"""

from soccersr.archs.discriminator import UNetDiscriminatorSN
from soccersr.archs.rrdbnet import RRDBNET, RRDBNet
from soccersr.archs.spec import ArchError, ArchKwargs, ArchSpec
from soccersr.archs.srvgg import SRVGG_COMPACT, SRVGGNetCompact

GENERATORS: tuple[ArchSpec, ...] = (RRDBNET, SRVGG_COMPACT)
"""Every generator a weights file can hold, in detection order."""


def generator_spec(name: str) -> ArchSpec:
    """The generator called ``name`` in files and configs (``"RRDBNet"``, ...).

    Raises:
        ArchError: no such generator.
    """
    for spec in GENERATORS:
        if spec.name == name:
            return spec
    raise ArchError(f"unknown architecture {name!r}: expected one of {sorted(s.name for s in GENERATORS)}")


__all__ = [
    "GENERATORS",
    "RRDBNET",
    "SRVGG_COMPACT",
    "ArchError",
    "ArchKwargs",
    "ArchSpec",
    "RRDBNet",
    "SRVGGNetCompact",
    "UNetDiscriminatorSN",
    "generator_spec",
]
