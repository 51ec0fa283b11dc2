"""Unlabelled images from a folder: no json needed for the unlabelled source of a semi config.

::

    unlabeled_dataset = dict(
        type='UnlabeledImageFolder',
        data_root='data/my_dataset/',
        data_prefix=dict(img='unlabeled/'),   # searched recursively
        metainfo=dict(classes=('cat', 'dog', 'bird')),   # the labelled set's classes
        pipeline=unsup_pipeline)

Files are found through ``mmengine.fileio`` (so ``backend_args`` storage works too), filtered
by extension, sorted, or read from ``file_list`` (one path per line, relative to the image
folder). Each image's size is read from its header when the data set loads: the
multi-source sampler groups images by aspect ratio, and an unreadable file is found and
named before training instead of crashing a data worker hours in. Unreadable files raise
:class:`~mmssis.datasets.CorruptImageError` naming them, or with ``unreadable='skip'`` are
dropped with one warning and counted in :attr:`check_report`, the policy of
:class:`~mmssis.datasets.CheckedCocoDataset` for missing and corrupt images.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmdet.datasets import BaseDetDataset, CocoDataset
from mmengine.fileio import get_local_path, get_text, list_dir_or_file
from mmengine.logging import MMLogger

from mmssis.registry import DATASETS
from .checked_coco import CorruptImageError, _fmt_names, decoded_size

#: Extensions (lower case) of the files taken from a folder.
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(folder: str, extensions: Sequence[str] = IMG_EXTENSIONS,
                recursive: bool = True, backend_args: Optional[dict] = None) -> List[str]:
    """Sorted paths (``folder`` joined) of the files in ``folder`` whose names end in one
    of ``extensions`` (case-insensitive), through ``mmengine.fileio``."""
    extensions = tuple(e.lower() for e in extensions)
    names = list_dir_or_file(folder, list_dir=False, recursive=recursive,
                             backend_args=backend_args)
    return sorted(osp.join(folder, n) for n in names if n.lower().endswith(extensions))


@DATASETS.register_module()
class UnlabeledImageFolder(BaseDetDataset):
    """Every image of a folder, as unlabelled samples (no instances).

    Samples carry ``img_path``, ``img_id`` (index in sorted order), ``height`` /
    ``width`` (as decoded, EXIF orientation applied) and ``instances=[]``; use
    ``LoadEmptyAnnotations`` in the pipeline, like any unlabelled source.

    Args:
        *args: Forwarded to ``BaseDetDataset`` (``data_root``, ``data_prefix=dict(img=...)``,
            ``metainfo``, ``pipeline``, ``backend_args`` ...).
        extensions: File name endings taken (case-insensitive).
        recursive: Also search sub-folders.
        file_list: Optional text file listing the images to take (paths relative to the
            image folder, one per line; ``#`` comments and blank lines are ignored).
        unreadable: ``'error'`` or ``'skip'`` for files that are listed but cannot be
            read as images.
        **kwargs: Forwarded to ``BaseDetDataset``.
    """

    # The labelled COCO data set's defaults, so that the same user ``metainfo`` gives both
    # sources identical metainfo (``ConcatDataset`` requires it).
    METAINFO = CocoDataset.METAINFO

    def __init__(self, *args, extensions: Sequence[str] = IMG_EXTENSIONS,
                 recursive: bool = True, file_list: Optional[str] = None,
                 unreadable: str = 'error', **kwargs) -> None:
        if unreadable not in ('error', 'skip'):
            raise ValueError(f"unreadable must be 'error' or 'skip', got {unreadable!r}")
        self.extensions = tuple(e.lower() for e in extensions)
        self.recursive = recursive
        self.file_list = file_list
        self.unreadable = unreadable
        self.check_report: Dict[str, object] = {}
        kwargs.setdefault('filter_cfg', None)
        super().__init__(*args, **kwargs)

    def _files(self, folder: str) -> List[str]:
        if self.file_list is not None:
            path = self.file_list
            if not osp.isabs(path) and self.data_root and not osp.exists(path):
                path = osp.join(self.data_root, path)
            text = get_text(path, backend_args=self.backend_args)
            names = [line.strip() for line in text.splitlines()
                     if line.strip() and not line.strip().startswith('#')]
            return [osp.join(folder, n) for n in names]
        return list_images(folder, self.extensions, self.recursive, self.backend_args)

    def load_data_list(self) -> List[dict]:
        """Find the images and read their sizes.

        Raises:
            FileNotFoundError: The folder holds no image (naming it and the extensions).
            CorruptImageError: Unreadable files (``unreadable='error'``), named.
        """
        folder = self.data_prefix.get('img', '') or self.data_root
        files = self._files(folder)
        if not files:
            raise FileNotFoundError(f'UnlabeledImageFolder: no image ({", ".join(self.extensions)})'
                                    f' in {folder}' + (f' from {self.file_list}'
                                                       if self.file_list else ''))
        data_list, bad = [], []
        for path in files:
            try:
                with get_local_path(path, backend_args=self.backend_args) as local:
                    height, width = decoded_size(local)
            except (OSError, ValueError):
                bad.append(path)
                continue
            data_list.append(dict(img_path=path, img_id=len(data_list), height=height,
                                  width=width, instances=[]))
        self.check_report = dict(images=len(files), unreadable_files=bad)
        if bad and self.unreadable == 'error':
            raise CorruptImageError(f'UnlabeledImageFolder {folder}: {len(bad)} file(s) cannot '
                                    f"be read as images: {_fmt_names(bad)} (unreadable='skip' "
                                    'drops them)')
        if bad:
            MMLogger.get_current_instance().warning(
                f'UnlabeledImageFolder {folder}: skipping {len(bad)} unreadable file(s): '
                f'{_fmt_names(bad)}')
        return data_list
