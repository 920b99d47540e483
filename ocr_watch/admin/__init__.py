"""What an operator runs beside the daemon: `status` and `retry`. Neither takes the daemon's
lock nor writes its journal, so both work whether or not it runs (see each module)."""
