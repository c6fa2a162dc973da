import pytest
from hellolb.config import ConfigError, Env, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("250ms", 0.25), ("10s", 10.0), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0)],
)
def test_parse_duration_accepts_number_and_unit(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "10", "-1s", "1.s", "s", "10 s", "1d", "ten", "1e3s", "inf", "\u0661s"]
)
def test_parse_duration_refuses_everything_else(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0.0, 0.25, 10.0, 1.5])
def test_format_duration_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


def test_unset_and_empty_variables_mean_default():
    env = Env({"EMPTY": "  "})
    assert env.integer("MISSING", 7) == 7
    assert env.integer("EMPTY", 7) == 7
    assert env.optional_duration("EMPTY") is None


def test_integer_out_of_range_names_the_variable_and_the_range():
    with pytest.raises(ConfigError) as caught:
        Env({"N": "0"}).integer("N", 1, minimum=1, maximum=5)
    assert (caught.value.variable, caught.value.value) == ("N", "0")
    assert caught.value.expected == "a whole number from 1 to 5"


@pytest.mark.parametrize("value", ["ten", "1.5", "0x10", "1_000"])
def test_integer_refuses_non_numbers(value):
    with pytest.raises(ConfigError, match="whole number"):
        Env({"N": value}).integer("N", 3)


def test_duration_below_minimum_is_refused():
    with pytest.raises(ConfigError, match="at least 1ms"):
        Env({"T": "0"}).duration("T", 5.0, minimum=0.001)


def test_choice_is_case_insensitive_and_lists_options():
    assert Env({"P": "Round_Robin"}).choice("P", "x", ("round_robin", "pick_first")) == (
        "round_robin"
    )
    with pytest.raises(ConfigError) as caught:
        Env({"P": "random"}).choice("P", "x", ("round_robin", "pick_first"))
    assert caught.value.expected == "one of round_robin, pick_first"


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("0", False), ("Off", False)])
def test_boolean_words(value, expected):
    assert Env({"B": value}).boolean("B", not expected) is expected


def test_boolean_refuses_other_words():
    with pytest.raises(ConfigError, match="true or false"):
        Env({"B": "maybe"}).boolean("B", True)


def test_string_refuses_control_characters():
    with pytest.raises(ConfigError, match="printable"):
        Env({"S": "a\x1bb"}).string("S", "")


def test_first_takes_the_first_set_variable():
    env = Env({"POD_NAME": "pod-1"})
    assert env.first(("SERVER_ID", "POD_NAME"), "host") == "pod-1"
    assert Env({}).first(("SERVER_ID", "POD_NAME"), "host") == "host"


@pytest.mark.parametrize(
    ("value", "number"), [("0", 0.0), ("0.25", 0.25), ("1", 1.0), ("1.0", 1.0)]
)
def test_number_takes_plain_decimals(value, number):
    assert Env({"R": value}).number("R", 0.5, minimum=0, maximum=1) == number


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "1e-1", ".5", "25%", "0,5", "inf"])
def test_number_refuses_other_text_and_values_out_of_range(value):
    with pytest.raises(ConfigError) as caught:
        Env({"R": value}).number("R", 0.5, minimum=0, maximum=1)
    assert caught.value.expected == "a number from 0 to 1, such as 0.25"


def test_duration_above_maximum_is_refused():
    env = Env({"T": "2h"})
    with pytest.raises(ConfigError) as caught:
        env.duration("T", 1.0, minimum=0.01, maximum=3600)
    assert caught.value.expected.endswith("at least 10ms, at most 3600s")
    assert Env({"T": "1h"}).duration("T", 1.0, maximum=3600) == 3600
