"""HTTP adapters: the ASGI application that ``penny serve`` runs."""
