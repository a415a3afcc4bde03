"""The demo media set that `make run` serves."""
