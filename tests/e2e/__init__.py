"""End-to-end tests: the local stack started as a subprocess and driven over HTTP."""
