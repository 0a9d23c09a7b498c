"""`tgm`: one entry point for operators (issue 12)."""
