"""Environment set-up: register every mmssis module and set the default scope."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register all mmssis (and mmdet) modules into their registries; nothing else.

    Importing the sub-packages runs their ``@REGISTRY.register_module()`` decorators (into
    mmssis' child registries only). Safe checkpoint loading is a separate, explicit step
    that the tools take: :func:`mmssis.utils.install_safe_globals`.

    Args:
        init_default_scope: If True, make ``mmssis`` the default scope so that configs
            without a scope prefix find mmssis types first (then mmdet's, then mmengine's).
    """
    from mmdet.utils import register_all_modules as mmdet_register_all_modules
    mmdet_register_all_modules(init_default_scope=False)

    import mmssis.datasets  # noqa: F401,F811
    import mmssis.engine  # noqa: F401,F811
    import mmssis.evaluation  # noqa: F401,F811
    import mmssis.models  # noqa: F401,F811
    import mmssis.sam  # noqa: F401,F811
    import mmssis.visualization  # noqa: F401,F811

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('mmssis', scope_name='mmssis')
    elif current.scope_name != 'mmssis':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "mmssis"; '
                      '`register_all_modules` will force the current default scope to be '
                      '"mmssis". If this is not expected, call it with '
                      '`init_default_scope=False`.')
        # A new instance name keeps the old one reachable for whoever created it.
        new_name = f'mmssis-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_name, scope_name='mmssis')
