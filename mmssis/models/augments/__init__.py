from .instance_mixer import (ARPInstanceMixer, ARPLayoutError, PasteResult, check_arp_layout,
                             paste_instances)
from .photometric import StudentPhotometricAugment

__all__ = ['ARPInstanceMixer', 'ARPLayoutError', 'PasteResult', 'check_arp_layout',
           'paste_instances',
           'StudentPhotometricAugment']
