"""Network architectures, one plain ``nn.Module`` per file, with official parameter names."""

from soccersr.archs.discriminator import UNetDiscriminatorSN
from soccersr.archs.rrdbnet import RRDBNet
from soccersr.archs.srvgg import SRVGGNetCompact

__all__ = ["RRDBNet", "SRVGGNetCompact", "UNetDiscriminatorSN"]
