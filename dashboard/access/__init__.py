"""Who is signing in: local accounts, lockout, sessions and single sign-on mapping."""
