"""The test suite. It reads no dotenv file: a developer's `.env` (the key-rotation recipe in
docs/operations.md writes one) must not change what the tests' own settings say. Set
here, before any test module imports the settings."""

import os

os.environ["SMSREG_ENV_FILE"] = ""
