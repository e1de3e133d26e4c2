"""qbo_sandbox: a local QuickBooks Online Accounting API v3 (see sandbox-dist/README.md)."""

__version__ = "0.1.0"
