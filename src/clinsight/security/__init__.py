"""Authentication and authorization: Argon2id passwords, tokens, the access policy."""
