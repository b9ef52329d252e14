"""The small helpers every package shares: sizes for people and file-name-safe target labels."""

from edgeslim.io import format_bytes, target_slug


def test_format_bytes_uses_kib_below_one_mib_and_mib_from_there():
    assert format_bytes(None) == "—"
    assert format_bytes(0) == "0.0 KiB"
    assert format_bytes(109_670) == "107.1 KiB"
    assert format_bytes(1024 * 1024 - 1) == "1,024.0 KiB"  # rounds, but the unit follows the value
    assert format_bytes(1024 * 1024) == "1.00 MiB"
    assert format_bytes(102_441_032) == "97.70 MiB"
    assert format_bytes(5 * 2**30) == "5,120.00 MiB"


def test_target_slug_keeps_only_file_name_characters():
    assert target_slug("cpu") == "cpu"
    assert target_slug("ssh://pi@host:22") == "ssh-pi-host-22"
    assert target_slug("gpu:0/trt_v10.1") == "gpu-0-trt_v10.1"
    assert target_slug("://") == "target"
