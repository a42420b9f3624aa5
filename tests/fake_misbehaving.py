from tests.fake_targets import MISBEHAVING as TARGET  # noqa: F401
