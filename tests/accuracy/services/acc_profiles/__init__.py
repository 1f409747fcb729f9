"""A small profiles service (ASGI, served by uvicorn) for the accuracy suite."""
