from tests.fake_targets import WRONG as TARGET  # noqa: F401
