"""The local stack: the whole service on loopback with no AWS account and no Docker (see README)."""
