"""The attack table (printed at the end of a run, tests/conftest.py): each test here
replays one hostile input against a real `edgeshield serve` and asserts a clean answer, no
poisoned entry and no dropped connection."""
