from .checkpoint import (UnsafeCheckpointError, install_safe_globals, load_checkpoint_file,
                         safe_globals)
from .misc import default_device, unwrap_model
from .setup_env import register_all_modules
from .version_check import check_versions

__all__ = [
    'register_all_modules', 'check_versions', 'install_safe_globals', 'load_checkpoint_file',
    'safe_globals', 'UnsafeCheckpointError', 'unwrap_model', 'default_device'
]
from .runtime import (adapt_cfg_to_machine, default_work_dir, init_cpu_distributed,  # noqa
                      set_local_rank_env)

__all__ += ['adapt_cfg_to_machine', 'default_work_dir', 'set_local_rank_env',
            'init_cpu_distributed']
from .sam_free import sam_free_message, strip_sam_for_eval  # noqa

__all__ += ['strip_sam_for_eval', 'sam_free_message']
