"""What each runtime needs, in one place per runtime, shared by exporters, runners and quantizers.

A backend module holds the lazy import of its runtime, its version and availability, the
checks of its files (:func:`edgeslim.backends.openvino.check_ir`) and its logger. It
imports nothing from ``exporters``, ``targets`` or ``quantizers``: they all import it, so
a runner never reaches back into an exporter for a helper.

Example::

    from edgeslim.backends.tensorrt import tensorrt_status
    ok, why = tensorrt_status()   # (False, "tensorrt is not installed") without TensorRT
"""
