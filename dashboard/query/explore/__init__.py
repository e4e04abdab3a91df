"""Self-serve exploration: the curated models, the SQL tab's checks, as-of comparison and saved views."""
