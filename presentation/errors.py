"""The API's error contract: a failed request is answered with one line of text/plain, the whole
message (a 400 names the argument and why; a 404 names what does not exist). Shared by the
handlers and the live socket, which refuses a handshake with the same text as the REST call."""

import tornado.web


class APIError(tornado.web.HTTPError):
    """A client-facing error whose message is the whole response body."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(status, reason=None)
        self.message = message
        self.headers = headers or {}


def sentence(message: str) -> str:
    """A store message as a response line: first letter up, the rest (names, statuses) kept."""
    return message[:1].upper() + message[1:]


def error_message(handler: tornado.web.RequestHandler, exc: BaseException | None) -> str:
    """The text answer for `exc`, with its status and headers set on `handler`: an APIError's
    message, a too-large number as a 400, a Tornado HTTPError's message, else the status's
    reason. Store errors are the caller's to answer (it knows its store)."""
    if isinstance(exc, APIError):
        for name, value in exc.headers.items():
            handler.set_header(name, value)
        return exc.message
    if isinstance(exc, OverflowError):
        handler.set_status(400)
        return "A number in the request is too large"
    if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
        return exc.log_message % exc.args if exc.args else exc.log_message
    return handler._reason


def write_text_error(handler: tornado.web.RequestHandler, message: str) -> None:
    """Finish `handler`'s failed request with `message` as its one-line text/plain body."""
    handler.set_header("Content-Type", "text/plain; charset=UTF-8")
    handler.finish(message.rstrip() + "\n")
