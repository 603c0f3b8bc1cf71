"""Errors a client may see. Each carries its HTTP status and a message saying what was expected."""

from __future__ import annotations


class InferenceError(Exception):
    """Base: rendered as `{"error": message}` with `status`."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(InferenceError):
    status = 400


class NotFound(InferenceError):
    status = 404


class PayloadTooLarge(InferenceError):
    status = 413


class Unavailable(InferenceError):
    status = 503


class TooManyRequests(InferenceError):
    status = 429
