"""Atheris harnesses for every parser that reads outside input; run them with ``make fuzz``."""
