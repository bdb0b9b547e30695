"""Built-in model families. ``clipforge.registry`` (the layer above) registers ``BUILTIN``; the families never
import the registry."""

from clipforge.families.clip import ClipFamily
from clipforge.families.metaclip2 import MetaClip2Family
from clipforge.families.openclip import OpenClipFamily
from clipforge.families.siglip import SiglipFamily
from clipforge.families.siglip2 import Siglip2Family

# registration order: clip, openclip, siglip, metaclip2, siglip2
BUILTIN = (ClipFamily, OpenClipFamily, SiglipFamily, MetaClip2Family, Siglip2Family)
