"""Per-record sync state (SyncLink) and attempt history (SyncAttempt)."""
__all__: list[str] = []
