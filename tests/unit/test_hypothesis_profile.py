"""The suite's hypothesis profile (tests/conftest.py) is in force, also under a test's own
@settings: no example fails for taking longer than 200 ms on a loaded machine."""

from hypothesis import settings

from tests.conftest import PROFILE


def test_the_suite_profile_is_loaded_without_a_deadline():
    assert settings._current_profile == PROFILE
    assert settings.default.deadline is None


def test_a_tests_own_settings_inherit_the_profiles_deadline():
    # As test_reader.py's `@settings(max_examples=300)`: built after conftest loaded the profile.
    assert settings(max_examples=300).deadline is None
