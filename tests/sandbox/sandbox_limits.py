"""Limits the sandbox tests run under (short, so that the hostile corpus stays fast)."""

TIMEOUT_S = 1.5
"""Per-call wall-clock limit in these tests."""

MEMORY_MB = 512
"""Address-space limit of the test workers, in MiB."""
