"""Pure parsing of one dump: bytes -> Dump, or DumpError with path, line and reason.

The grammar, its real variants and the time fallback chain are those of
``shared/spec/dump-format.md``; every rule has a case in ``shared/corpus/edge``.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from feedbridge.errors import DumpError
from feedbridge.model import Dump, Provenance

#: Times before this are placeholders (0, 1970...) rather than publication times.
MIN_TIME = datetime(1990, 1, 1, tzinfo=UTC)
#: Times after this are corrupt values, not future articles.
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SPACE = re.compile(r"\s+")
_EPOCH_LINE = re.compile(r"<!--\s*(.*?)\s*-->")
_RULE_LINE = re.compile(r"-{3,}")
_DATE_LINE = re.compile(r"日期\s*[：:]\s*(.*)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_BODY_I_DATE = re.compile(r"\s*<div>\s*<i>(.*?)</i>\s*</div>", re.IGNORECASE | re.DOTALL)
_TIME_TAG = re.compile(r"<time\b[^>]*?\bdatetime\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The common title line: the greedy title stops at the last ``](`` before an http(s) URL.
_PLAIN_TITLE_LINE = re.compile(r"\[(.*)\]\((https?://[^/?#\s()\[\]]+(?:[/?#]\S*)?)\)")
#: The header in the form nearly every real dump has: a 13-digit epoch, a title line whose URL
#: needs no encoding, a rule line.  ``plain_head`` reads it with this one match on the bytes of
#: a file.  The URL is matched only if it is already in URI form (the host and the rest drawn
#: from the characters ``_URI_SAFE`` lists); ASCII ``]`` and ``(`` never occur inside a UTF-8
#: sequence, so the title splits where it would in text.
_PLAIN_HEAD = re.compile(
    rb"(?:\xef\xbb\xbf)?<!--(1[0-9]{12})-->\r?\n"
    rb"\[(.*)\]\((https?://[0-9A-Za-z;:@&=+$,\-_.!~*'%]+"
    rb"(?:[/?#][0-9A-Za-z;/?:@&=+$,\-_.!~*'()%#\[\]]*)?)\)\r?\n"
    rb"-{3,}\r?\n"
)
_PLAIN_TITLE_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff&]")
#: URLs that are already their own id: lower-case host, no port, a path, no fragment.
_PLAIN_URL = re.compile(r"https?://[a-z0-9.\-]+/[^#]*")
#: What a URI may hold as it is (RFC 3986 reserved and unreserved characters, and ``%``).
_URI_SAFE = ";/?:@&=+$,-_.!~*'()%#[]"
_URI_UNSAFE = re.compile(r"[^0-9A-Za-z;/?:@&=+$,\-_.!~*'()%#\[\]]")
#: Epoch values that are certainly usable (13 digits, 2001-2286): the fast path.
_EPOCH_OK = re.compile(r"1[0-9]{12}")
#: How far into the body a date marker may stand.
_BODY_DATE_WINDOW = 2048


def strip_forbidden(text: str) -> str:
    """Remove the characters XML 1.0 forbids (C0 controls but tab, LF, CR; U+FFFE, U+FFFF)."""
    return _FORBIDDEN.sub("", text)


def collapse(text: str) -> str:
    """Collapse runs of whitespace to one space and trim."""
    return _SPACE.sub(" ", text).strip()


def header_end(data: bytes) -> int:
    """Offset just past the fourth line: a header is at most four lines (epoch, title, rule,
    date line); what follows is the body."""
    end = -1
    for _ in range(4):
        end = data.find(b"\n", end + 1)
        if end < 0:
            return len(data)
    return end + 1


def _strict(data: bytes, start: int, stop: int, path: str, *, cut: bool) -> str:
    """``data[start:stop]`` as text; a NUL byte or invalid UTF-8 is a DumpError naming its
    line in ``data``.  With ``cut``, a multi-byte character cut at the end is left out."""
    chunk = data[start:stop]
    nul = chunk.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, start + nul) + 1
        raise DumpError(path, line, "NUL byte: a binary file, not a dump")
    try:
        return decode_head(chunk) if cut else chunk.decode("utf-8")
    except UnicodeDecodeError as e:
        at = start + e.start
        line = data.count(b"\n", 0, at) + 1
        raise DumpError(path, line, f"not UTF-8 (byte 0x{data[at]:02x} at offset {at})") from e


def decode(data: bytes, path: str, *, complete: bool = True) -> str:
    """Bytes -> text without the BOM; NUL bytes and invalid UTF-8 are DumpErrors.

    The header lines are judged first, then the body.  With ``complete=False`` the data is
    the head of a longer file and only its header lines are judged: the body is judged when
    the dump is read whole (for a feed, or by ``check``), so a scan never pays for decoding
    bodies; here it is decoded leniently, for the date fallback only.  XML-forbidden
    characters are left for the caller to strip from what it uses (``strip_forbidden``).
    """
    split = header_end(data)
    head = _strict(data, 0, split, path, cut=not complete and split == len(data))
    if complete:
        text = head + _strict(data, split, len(data), path, cut=False)
    else:
        text = head + data[split:].decode("utf-8", "replace")
    return text[1:] if text.startswith("\ufeff") else text


def decode_head(data: bytes) -> str:
    """Decode the head of a file, leaving out a multi-byte character cut by the read."""
    end = len(data)
    lead = end - 1
    while lead >= 0 and end - lead < 4 and data[lead] & 0xC0 == 0x80:
        lead -= 1
    if lead >= 0 and data[lead] >= 0xC0:
        need = 2 if data[lead] < 0xE0 else 3 if data[lead] < 0xF0 else 4
        if end - lead < need:
            data = data[:lead]
    return data.decode("utf-8")


def normalize_url(url: str) -> str:
    """The entry id of a URL: scheme and host lower-cased, default port, text fragment and
    ``utm_*`` parameters dropped.  Everything else stays exactly as written."""
    if _PLAIN_URL.fullmatch(url) and "utm_" not in url.lower():
        return url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    userinfo, _, hostport = netloc.rpartition("@")
    host, port = hostport, ""
    if hostport.startswith("["):  # IPv6 literal
        end = hostport.find("]")
        host, port = hostport[: end + 1], hostport[end + 2 :] if end >= 0 else ""
    elif ":" in hostport:
        host, _, port = hostport.partition(":")
    if port and port.isdigit() and int(port) == _DEFAULT_PORTS.get(scheme):
        port = ""
    elif port == "":
        pass
    netloc = (userinfo + "@" if userinfo else "") + host.lower() + (":" + port if port else "")
    path = parts.path or "/"
    query = "&".join(
        p for p in parts.query.split("&") if p and not p.split("=", 1)[0].lower().startswith("utm_")
    )
    fragment = parts.fragment
    directive = fragment.find(":~:")
    if directive >= 0:
        fragment = fragment[:directive]
    out = f"{scheme}://{netloc}{path}"
    if query:
        out += "?" + query
    if fragment:
        out += "#" + fragment
    return out


def to_uri(url: str) -> str:
    """The URI form of a URL as written (RFC 3987 section 3.1): characters a URI cannot hold
    (spaces, non-ASCII, ``|`` ...) are percent-encoded as UTF-8 and a non-ASCII host becomes
    IDNA.  Everything a URI can hold stays exactly as written, existing ``%XX`` included, so a
    mangled ``®ion=`` stays mangled -- it is only written the way feeds must write it."""
    url = url.strip()
    if url.isascii() and not _URI_UNSAFE.search(url):
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return quote(url, safe=_URI_SAFE)
    netloc, slash, tail = rest.partition("/")
    head, q, tail2 = netloc.partition("?")
    netloc, tail = (head, q + tail2 + slash + tail) if q else (netloc, slash + tail)
    userinfo, at, hostport = netloc.rpartition("@")
    host, colon, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            host = quote(host, safe="")
    netloc = quote(userinfo, safe=_URI_SAFE) + at + host + colon + port
    return f"{scheme}://{netloc}{quote(tail, safe=_URI_SAFE)}"


def parse_title_line(line: str, path: str, lineno: int) -> tuple[str, str]:
    """``[title](url)`` -> (title, url), split at the last ``](`` that is followed by a URL."""
    if m := _PLAIN_TITLE_LINE.fullmatch(line):
        title_raw, url = m.group(1), to_uri(m.group(2))
        if "&" in title_raw:
            title_raw = strip_forbidden(html.unescape(title_raw))
        title = " ".join(title_raw.split())
        if title:
            return title, url
    if not (line.startswith("[") and line.endswith(")") and "](" in line):
        raise DumpError(path, lineno, "expected the title line '[title](url)'")
    end = len(line)
    last_url = None
    while (pos := line.rfind("](", 0, end)) > 0:
        candidate = line[pos + 2 : -1].strip()
        if last_url is None:
            last_url = candidate
        if _SCHEME.match(candidate):
            title_raw, url = line[1:pos], to_uri(candidate)
            break
        end = pos
    else:
        if not last_url:
            raise DumpError(path, lineno, "the title line has no URL")
        raise DumpError(path, lineno, f"URL {last_url!r} is not an absolute http(s) URL")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise DumpError(path, lineno, f"URL scheme {parts.scheme!r} is not http or https")
    if not parts.netloc:
        raise DumpError(path, lineno, f"URL {url!r} has no host")
    if "&" in title_raw:
        title_raw = strip_forbidden(html.unescape(title_raw))
    title = " ".join(title_raw.split())
    if not title:
        raise DumpError(path, lineno, "the title is empty")
    return title, url


def epoch_time(raw: str) -> datetime:
    """The value of an epoch comment -> aware UTC datetime, or ValueError saying why not."""
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(f"epoch {raw!r} is not a number")
    value = int(raw)
    digits = len(str(value))
    if digits > 11:
        seconds = value // 1000
    elif digits >= 9:
        seconds = value
    else:
        raise ValueError(f"epoch {raw!r} is too small to be a date")
    try:
        when = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"epoch {raw!r} is out of range") from None
    if not MIN_TIME <= when < MAX_TIME:
        raise ValueError(f"epoch {raw!r} ({when:%Y-%m-%d}) is not a plausible date")
    return when


def zoned_time(text: str) -> datetime | None:
    """An RFC 822 or ISO 8601 date with an explicit zone -> aware UTC, else None."""
    text = collapse(text)
    if not text:
        return None
    from email.utils import parsedate_to_datetime  # only fallbacks need it: not at start-up

    when: datetime | None = None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return None
    if when.tzinfo is None:
        return None
    when = when.astimezone(UTC).replace(microsecond=0)
    return when if MIN_TIME <= when < MAX_TIME else None


def body_time(body: str) -> datetime | None:
    """A date marker with an explicit zone near the start of the body (spec 2.4)."""
    head = body[:_BODY_DATE_WINDOW]
    m = _BODY_I_DATE.match(head)
    if m:
        text = _TAG.sub(" ", _BR.split(m.group(1))[-1])
        when = zoned_time(html.unescape(text))
        if when is not None:
            return when
    for m in _TIME_TAG.finditer(head):
        when = zoned_time(html.unescape(m.group(1)))
        if when is not None:
            return when
    return None


def resolve_time(
    *,
    path: str,
    epoch: str | None,
    date_line: tuple[int, str] | None,
    body: str,
    body_line: int,
    mtime: datetime,
) -> tuple[datetime, Provenance, tuple[str, ...]]:
    """The fallback chain of spec section 3: epoch -> 日期 line -> body date -> mtime.

    Returns the time, where it came from, and a warning for every step that failed.
    """
    warnings: list[str] = []
    if epoch is None:
        warnings.append(f"{path}:1: no epoch comment")
    else:
        try:
            return epoch_time(epoch), Provenance.EPOCH, ()
        except ValueError as e:
            warnings.append(f"{path}:1: {e}")
    if date_line is not None:
        lineno, value = date_line
        when = zoned_time(value)
        if when is not None:
            warnings.append(f"{path}:{lineno}: time taken from the 日期 line")
            return when, Provenance.DATE_LINE, tuple(warnings)
        warnings.append(f"{path}:{lineno}: unreadable date line {value!r}")
    when = body_time(body)
    if when is not None:
        warnings.append(f"{path}:{body_line}: time taken from a date in the body")
        return when, Provenance.BODY, tuple(warnings)
    warnings.append(f"{path}:1: no usable date: time taken from the file's modification time")
    return mtime.astimezone(UTC).replace(microsecond=0), Provenance.MTIME, tuple(warnings)


def _line(parts: list[str], idx: int) -> str:
    return strip_forbidden(parts[idx]).strip() if idx < len(parts) else ""


def plain_head(data: bytes, *, complete: bool) -> tuple[str, str, str, int] | None:
    """(id, URL, title, epoch seconds) of a dump whose header is in the common form, or None.

    A fast path for scanning, matched on the bytes: it answers only when ``parse_dump`` would
    give the same id, URL, title and time with no warning, and leaves every other case
    (entities, control characters, URLs that need encoding, fallbacks, NUL bytes or bad UTF-8
    where ``parse_dump`` judges them, anything unusual) to ``parse_dump``.  ``complete`` says
    whether ``data`` is the whole file or only its head (see ``decode``).
    """
    m = _PLAIN_HEAD.match(data)
    if m is None:
        return None
    if complete:
        judged = data
    else:
        # parse_dump also judges the fourth line (a date line, or the blank line after the rule).
        end = data.find(b"\n", m.end())
        if end < 0:
            return None
        judged = data[m.end() : end]
    if b"\0" in judged:
        return None
    epoch, title_bytes, url = m.groups()
    try:
        judged.decode("utf-8")
        title = title_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _PLAIN_TITLE_UNSAFE.search(title):
        return None
    title = " ".join(title.split())
    if not title:
        return None
    link = url.decode("ascii")
    return normalize_url(link), link, title, int(epoch) // 1000


def parse_dump(data: bytes, *, path: str, mtime: datetime, complete: bool = True) -> Dump:
    """Parse one dump.

    ``mtime`` is the file's modification time, the last fallback for the publication time.
    With ``complete=False`` ``data`` is only the head of the file: the header is parsed and
    ``body`` is None (the caller re-reads the whole file when the time needs it).
    """
    if not data or data.isspace():
        raise DumpError(path, 1, "empty file")
    text = decode(data, path, complete=complete)
    # The header is at most four lines (epoch, title, rule, date); the rest is the body.
    parts = text.split("\n", 4)
    idx = 0
    epoch_raw: str | None = None
    if m := _EPOCH_LINE.fullmatch(_line(parts, 0)):
        epoch_raw = m.group(1)
        idx = 1
    title_line = _line(parts, idx)
    if not title_line:
        raise DumpError(path, idx + 1, "expected the title line '[title](url)'")
    title, url = parse_title_line(title_line, path, idx + 1)
    idx += 1
    if not _RULE_LINE.fullmatch(_line(parts, idx)):
        raise DumpError(path, idx + 1, "expected a rule line of dashes ('------')")
    idx += 1
    date_line: tuple[int, str] | None = None
    if idx < 4 and (m := _DATE_LINE.fullmatch(_line(parts, idx))):
        date_line = (idx + 1, m.group(1))
        idx += 1
    body: str | None = None
    rest = "\n".join(parts[idx:]) if complete or idx < 4 else parts[4]
    if complete:
        body = strip_forbidden(rest.replace("\r\n", "\n")).strip()
    warnings: tuple[str, ...] = ()
    if epoch_raw is not None and _EPOCH_OK.fullmatch(epoch_raw):
        published, provenance = epoch_time(epoch_raw), Provenance.EPOCH
    else:
        skipped = rest[: len(rest) - len(rest.lstrip())].count("\n")
        published, provenance, warnings = resolve_time(
            path=path,
            epoch=epoch_raw,
            date_line=date_line,
            body=body if body is not None else strip_forbidden(rest[:_BODY_DATE_WINDOW]).strip(),
            body_line=idx + 1 + skipped,
            mtime=mtime,
        )
    return Dump(
        path=path,
        id=normalize_url(url),
        url=url,
        title=title,
        published=published,
        provenance=provenance,
        body=body,
        warnings=warnings,
    )
