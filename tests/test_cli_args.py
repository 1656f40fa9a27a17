"""soccersr.commands.args: the argparse value types every subcommand shares (one home for each rule)."""

from __future__ import annotations

import argparse

import pytest

from soccersr.commands.args import auto_or_int, int_in, non_negative_float, pixel_count, positive


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (int_in(1, 100), "1", 1),
        (int_in(1, 100), "100", 100),
        (positive(float), "0.5", 0.5),
        (positive(int), "3", 3),
        (non_negative_float, "0", 0.0),
        (pixel_count, "40M", 40_000_000),
        (pixel_count, "4e7", 40_000_000),
        (pixel_count, "0", None),  # no limit
        (auto_or_int(0), "auto", "auto"),
        (auto_or_int(0), "0", 0),
    ],
)
def test_accepted_values(parse, text: str, expected) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (int_in(1, 100), "0", "must be in 1..100, got 0"),
        (int_in(1, 100), "9.5", "expected an integer, got '9.5'"),
        (positive(float), "0", "must be positive, got 0"),
        (positive(float), "-1", "must be positive, got -1"),
        (positive(float), "nan", "must be a finite number, got nan"),
        (positive(float), "inf", "must be a finite number, got inf"),
        (positive(float), "x", "expected a number, got 'x'"),
        (positive(int), "2.5", "expected an integer, got '2.5'"),
        (non_negative_float, "-0.5", "must not be negative, got -0.5"),
        (non_negative_float, "inf", "must be a finite number, got inf"),
        (pixel_count, "lots", "expected a pixel count like 40M or 40000000, got 'lots'"),
        (pixel_count, "infM", "expected a pixel count like 40M or 40000000, got 'infM'"),  # was an OverflowError
        (pixel_count, "-1M", "must not be negative, got -1M"),
    ],
)
def test_rejected_values_say_why(parse, text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as error:
        parse(text)
    assert str(error.value) == message
