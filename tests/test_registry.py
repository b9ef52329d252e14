import pytest

from edgeslim.errors import EdgeslimError
from edgeslim.registry import Registry


def test_register_get_list_and_suggest():
    reg = Registry("thing")
    reg.register("resnet20", 1)

    @reg.register("resnet56")
    def f():
        return 2

    assert reg.get("resnet20") == 1 and reg.get("resnet56") is f
    assert reg.names("resnet*") == ["resnet20", "resnet56"]
    assert reg.names("vgg*") == []
    with pytest.raises(EdgeslimError, match="did you mean 'resnet20'"):
        reg.get("resnet2")
    with pytest.raises(ValueError, match="twice"):
        reg.register("resnet20", 3)


def test_every_registry_lists_what_it_holds():
    from edgeslim.compress import METHODS
    from edgeslim.exporters import EXPORTERS
    from edgeslim.models import MODELS
    from edgeslim.quantizers import QUANTIZERS
    from edgeslim.targets import TARGETS

    assert {"l1", "l2"} <= set(METHODS.names())
    assert "onnx" in EXPORTERS and "onnx-int8" in QUANTIZERS and "onnx-fp16" in QUANTIZERS
    assert "cpu" in TARGETS
    assert {"resnet20", "resnet56", "resnet18", "resnet50", "vgg11_bn", "vgg16_bn", "mobilenet_v2"} <= set(MODELS.names())
