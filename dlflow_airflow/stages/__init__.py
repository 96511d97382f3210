"""Stage kinds: the built-ins (``builtin``) and the API a user kind implements (``base``)."""
