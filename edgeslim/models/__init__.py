"""The edgeslim model zoo: small, prunable reference architectures.

Example::

    from edgeslim.models import create_model, list_models

    for name in list_models():
        print(name)
    net = create_model("resnet20", num_classes=10)
"""

from edgeslim.models.zoo import (
    MODELS,
    ModelEntry,
    create_model,
    get_model_entry,
    list_models,
    register_model,
)

__all__ = [
    "MODELS",
    "ModelEntry",
    "create_model",
    "get_model_entry",
    "list_models",
    "register_model",
]

# Imported last, for their side effect: each family module registers its entry points.
from edgeslim.models import mobilenet_v2, resnet, resnet_cifar, small, vgg  # noqa: E402,F401
