"""Record kinds, one module each (customers now; items, invoices, payments, refunds next).

Importing this package registers every built-in kind with the engine, in the order each
declares; `QuickbooksConfig.ready()` imports it, so the engine itself never imports a kind.
"""

from practice.quickbooks.sync.kinds import customers  # noqa: F401, I001  (registers "customer")
from practice.quickbooks.sync.kinds import services  # noqa: F401  (registers "service")
from practice.quickbooks.sync.kinds import invoices  # noqa: F401  (registers "invoice")
from practice.quickbooks.sync.kinds import payments  # noqa: F401  (registers "payment")
from practice.quickbooks.sync.kinds import refunds  # noqa: F401  (registers "refund" and "fee")
