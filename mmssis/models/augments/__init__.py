from .instance_mixer import ARPInstanceMixer, ARPNoOpWarning, PasteResult, paste_instances

__all__ = ['ARPInstanceMixer', 'ARPNoOpWarning', 'PasteResult', 'paste_instances']
