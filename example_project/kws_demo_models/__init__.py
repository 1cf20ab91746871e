"""Model sources that are Python code; used at build time only (not shipped in the wheel)."""
