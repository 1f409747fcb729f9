"""A small ledger service (WSGI, served by gunicorn) for the accuracy suite."""
