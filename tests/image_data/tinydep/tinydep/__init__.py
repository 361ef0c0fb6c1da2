"""Stands for a runtime dependency wheel in the image payload tests."""

ANSWER = 42
