from tests.fake_targets import WRONG_TFLITE as TARGET  # noqa: F401
