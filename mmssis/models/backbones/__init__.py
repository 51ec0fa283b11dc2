from .efficientnet_lite import (EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD, EfficientNetLite,
                                find_pretrained_weights)

__all__ = [
    'EfficientNetLite', 'EFFICIENTNET_LITE_MEAN', 'EFFICIENTNET_LITE_STD',
    'find_pretrained_weights'
]
