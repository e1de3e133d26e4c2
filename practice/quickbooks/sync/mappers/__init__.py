"""Pure functions: app object -> QBO JSON body. No database access, no HTTP."""
