"""Base models shared by the domain apps."""

from __future__ import annotations

from django.db import models


class TimeStampedModel(models.Model):
    """Adds created/updated timestamps."""

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class FirmScopedModel(TimeStampedModel):
    """A row that belongs to one firm (the tenant). Selectors always filter on `firm`."""

    firm = models.ForeignKey("firms.Firm", on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True


class WorkerHeartbeat(models.Model):
    """A background worker's sign of life, written by `run_worker` every few seconds.

    db_worker has no lease on the tasks it runs. With heartbeats the reaper can tell a killed
    worker's task (heartbeat stopped: requeue it within a minute) from a long task on a live
    worker (leave it alone, however long it takes), instead of guessing from the task's age.
    """

    worker_id = models.CharField(primary_key=True, max_length=64)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.worker_id} ({self.hostname}:{self.pid})"
