"""The conversation store: one DynamoDB table (see docs/table-design.md for keys and access patterns)."""
