"""Argument types shared by the command-line programs."""

import argparse


def int_in(low, high=None, what="an integer"):
    """An argparse type: an int in ``[low, high)`` (no upper bound when ``high`` is None)."""
    bounds = f">= {low}" if high is None else f"in [{low}, {high})"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value >= high):
            raise argparse.ArgumentTypeError(f"expected {what} {bounds}; got {text}")
        return value

    return parse


positive_int = int_in(1)
non_negative_int = int_in(0)
seed = int_in(0, 2**32, what="a seed")
