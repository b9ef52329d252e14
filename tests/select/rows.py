"""Hand-made results rows for the selection tests (the fields decide() and pareto read)."""


def row(cand, lat, nbytes, acc, *, target="cpu", status="ok", ref=0.95, fmt="onnx", prec="int8",
        reason=""):
    return {"candidate": cand, "variant": "compressed", "format": fmt, "precision": prec,
            "target": target, "status": status, "reason": reason, "bytes": nbytes,
            "latency_ms": None if lat is None else {"p50": lat, "p90": lat * 1.2, "p99": lat * 1.5},
            "accuracy": acc, "reference_accuracy": ref, "label": f"{cand}/{fmt}/{prec}"}
