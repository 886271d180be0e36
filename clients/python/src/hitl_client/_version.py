"""The package's version follows the API's: 1.x speaks /api/v1/."""

__version__ = "1.0.0"
