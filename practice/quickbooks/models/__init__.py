"""QuickBooks models, one module per concern (connection vs. per-record sync state)."""

from practice.quickbooks.models.changes import *  # noqa: F403
from practice.quickbooks.models.connection import *  # noqa: F403
from practice.quickbooks.models.sync import *  # noqa: F403
