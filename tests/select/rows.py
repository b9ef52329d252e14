"""Hand-made results rows for the selection tests (the fields decide() and pareto read)."""


def row(cand, lat, nbytes, acc, *, target="cpu", status="ok", ref=0.95, fmt="onnx", prec="int8",
        reason=""):
    return {"candidate": cand, "variant": "compressed", "format": fmt, "precision": prec,
            "target": target, "status": status, "reason": reason, "bytes": nbytes,
            "latency_ms": None if lat is None else {"p50": lat, "p90": lat * 1.2, "p99": lat * 1.5},
            "accuracy": acc, "reference_accuracy": ref, "label": f"{cand}/{fmt}/{prec}"}


def seeded(cand, lat, nbytes, accs, *, first_seed=0, **kw):
    """The rows of one artifact run at seeds first_seed, first_seed+1, ... with accuracies
    ``accs``: each seed's artifact its own, a little slower than the last (as a re-export
    re-measured would be), so a test can tell whose latency and files a folded row keeps."""
    out = []
    for k, acc in enumerate(accs):
        r = row(cand, lat * (1 + 0.01 * k), nbytes, acc, **kw)
        r.update(seed=first_seed + k, artifact=f"candidates/{cand}-seed{first_seed + k}/model.onnx")
        out.append(r)
    return out
