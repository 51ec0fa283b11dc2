from .instance_mixer import ARPInstanceMixer, ARPNoOpWarning, PasteResult, paste_instances
from .photometric import StudentPhotometricAugment

__all__ = ['ARPInstanceMixer', 'ARPNoOpWarning', 'PasteResult', 'paste_instances',
           'StudentPhotometricAugment']
