"""Connection to a QBO company (realm): tokens, health, setup choices."""
__all__: list[str] = []
