"""What text the store keeps: no lone surrogates anywhere (MongoDB stores UTF-8, which cannot
carry one), no control characters in names, http(s) URLs only where a page links to them, and no
NUL where a command line is built (argv cannot carry one).

Pure functions: the handlers turn a problem into a 400 naming the field, the dashboard's
templates use `is_http_url` before rendering a stored URL as a link."""

import re

# A lone (unpaired) surrogate: what a JSON escape such as "\ud800" decodes to.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Control characters (Unicode category Cc: C0, DEL and C1).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# What a multi-line text (a description) may hold of them.
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# An absolute http(s) URL with a host, without spaces, controls or backslashes (browsers read
# `\` as `/`). One pattern for the check and the OpenAPI document.
HTTP_URL_PATTERN = (r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s\x00-\x1f\x7f-\x9f/?#\\@]+"
                    r"(?:[/?#][^\s\x00-\x1f\x7f-\x9f\\]*)?$")
_HTTP_URL = re.compile(HTTP_URL_PATTERN)


def escaped(text: str) -> str:
    """`text` with any lone surrogate written as its escape (\\ud800), so it can be sent."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in `text`, escaped (`\\ud800`), or None."""
    found = _SURROGATE.search(text)
    return None if found is None else f"\\u{ord(found.group()):04x}"


def control_character(text: str, multiline: bool = False) -> str | None:
    """Where `text` holds a control character ("'\\x00' at position 3"), or None. `multiline`
    allows tabs and line ends (CR, LF)."""
    found = (_TEXT_CONTROL if multiline else _CONTROL).search(text)
    if found is None:
        return None
    return f"{found.group()!r} at position {found.start()}"


def nul_character(text: str) -> bool:
    return "\x00" in text


def is_http_url(value) -> bool:
    """An absolute http:// or https:// URL with a host: safe to render as a link."""
    return isinstance(value, str) and _HTTP_URL.fullmatch(value) is not None
