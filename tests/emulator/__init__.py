"""Local GCS JSON-API emulator (server modules) and its test client (client.py)."""
