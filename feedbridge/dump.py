"""Pure parsing of one dump: bytes -> Dump, or DumpError with path, line and reason.

The grammar, its real variants and the time fallback chain are those of
``shared/spec/dump-format.md``; every rule has a case in ``shared/corpus/edge``.

Every step is linear in the input: lines are cut with string methods, and the few patterns
left have no nested or adjacent quantifiers over overlapping classes, so no input can make
them backtrack (``tests/test_dump_hostile.py`` parses ``max_bytes`` of the worst cases).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

from feedbridge.errors import DumpError
from feedbridge.model import Dump, Provenance
from feedbridge.urls import normalize_url, valid_host, web_url

#: Times before this are placeholders (0, 1970...) rather than publication times.
MIN_TIME = datetime(1990, 1, 1, tzinfo=UTC)
#: Times after this are corrupt values, not future articles.
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
#: A URI scheme after optional white space (the two classes are disjoint: no backtracking).
_SCHEME_AT = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.\-]*:")
#: The feedx date marker.  Anchored, and read within the first 2,048 characters of a body;
#: ``.*?`` stops at the first ``</i>`` followed by white space and ``</div>``: linear.
_BODY_I_DATE = re.compile(r"\s*<div>\s*<i>(.*?)</i>\s*</div>", re.IGNORECASE | re.DOTALL)
_BODY_I_OPEN = re.compile(r"\s*<div>\s*<i>", re.IGNORECASE)
_TIME_OPEN = re.compile(r"<time\b", re.IGNORECASE)
#: The ``datetime`` attribute inside one ``<time ...>`` tag (searched up to the tag's ``>``).
_DATETIME_ATTR = re.compile(r"\bdatetime\s*=\s*[\"']([^\"'>]+)[\"']", re.IGNORECASE)
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
#: A tag; used only on text before its last ``>`` (``_strip_tags``), so it never scans in vain.
_TAG = re.compile(r"<[^>]*>")
#: A numeric character reference, whose digits ``html.unescape`` would hand to ``int``.
_CHARREF = re.compile(r"&#(?:[xX][0-9a-fA-F]+|[0-9]+)")
#: The host of a title-line URL as the common form writes it (stops before ``]``).
_TITLE_HOST = re.compile(r"[^/?#\s()\[\]]+")
_SPACE_CHAR = re.compile(r"\s")
#: The header in the form nearly every real dump has, on bytes: a 13-digit epoch, a title
#: line, a rule line.  Linear: ``[^\n]*`` gives back at most the one line it took.
_PLAIN_HEAD = re.compile(rb"(?:\xef\xbb\xbf)?<!--(1[0-9]{12})-->\r?\n(\[[^\n]*\))\r?\n-{3,}\r?\n")
_PLAIN_TITLE_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff&]")
#: A URL already in URI form whose host needs no IDNA (no userinfo; a port at most), on bytes.
#: Each step's class is disjoint from the next one's, so the match never backtracks.
_PLAIN_URL_B = re.compile(
    rb"https?://([0-9A-Za-z.\-]+)(?::([0-9]{1,5}))?(?:[/?#][0-9A-Za-z;/?:@&=+$,\-_.!~*'()%#\[\]]*)?"
)
#: Epoch values that are certainly usable (13 digits, 2001-2286): the fast path.
_EPOCH_OK = re.compile(r"1[0-9]{12}")
#: How far into the body a date marker may stand.
_BODY_DATE_WINDOW = 2048
#: How much of a bad value an error message shows.
_SHOWN = 80


def strip_forbidden(text: str) -> str:
    """Remove the characters XML 1.0 forbids (C0 controls but tab, LF, CR; U+FFFE, U+FFFF)."""
    return _FORBIDDEN.sub("", text)


def collapse(text: str) -> str:
    """Collapse runs of whitespace to one space and trim (``str.split``'s whitespace is the
    regex ``\\s``, Unicode's; splitting is several times faster than substituting)."""
    return " ".join(text.split())


def _shown(value: str) -> str:
    """A value as an error message quotes it: repr, cut to a readable length."""
    return repr(value if len(value) <= _SHOWN else value[: _SHOWN - 3] + "...")


def _huge_charref(m: re.Match[str]) -> str:
    digits = m.group(0)[2:]
    hexa = digits[:1] in ("x", "X")
    significant = (digits[1:] if hexa else digits).lstrip("0")
    # Beyond U+10FFFF html.unescape gives U+FFFD; say so without making int() read 5 MB.
    return "&#1114112" if len(significant) > 7 else m.group(0)


def unescape(text: str) -> str:
    """``html.unescape``, safe for numeric references of any length (``int`` refuses more than
    4,300 digits, and reads fewer in quadratic time)."""
    if "&#" in text:
        text = _CHARREF.sub(_huge_charref, text)
    return html.unescape(text)


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


def _last_web_url(line: str) -> int:
    """Where the URL of a title line in the common form starts, or -1.

    ``line`` starts with ``[`` and ends with ``)``.  The URL starts after the last ``](``
    that is followed by ``http(s)://``, a host (``_TITLE_HOST``), and up to the final ``)``
    no white space.  Linear: the candidates are visited right to left, a host run stops
    before the next ``]``, and the path is checked for white space only where no later
    candidate checked it; white space found there rules out every earlier candidate.
    """
    end = len(line) - 1
    checked = end  # line[checked:end] holds no white space
    pos = end
    while (pos := line.rfind("](", 1, pos)) > 0:
        at = pos + 2
        if line.startswith("http://", at):
            at += 7
        elif line.startswith("https://", at):
            at += 8
        else:
            continue
        m = _TITLE_HOST.match(line, at, end)
        if m is None:
            continue
        stop = m.end()
        if stop < end:
            if line[stop] not in "/?#":
                continue
            if stop + 1 < checked:
                if _SPACE_CHAR.search(line, stop + 1, checked):
                    return -1
                checked = stop + 1
        return pos
    return -1


def _title_text(raw: str) -> str:
    if "&" in raw:
        raw = strip_forbidden(unescape(raw))
    return " ".join(raw.split())


def parse_title_line(line: str, path: str, lineno: int) -> tuple[str, str]:
    """``[title](url)`` -> (title, url), split at the last ``](`` that is followed by a URL.

    The common form first: the last ``](`` followed by ``http(s)://``, a host and no white
    space.  Otherwise the last ``](`` followed by any scheme, which must then be http(s).
    The URL is published in URI form and must pass ``urls.web_url``.
    """
    if not (line.startswith("[") and line.endswith(")") and "](" in line):
        raise DumpError(path, lineno, "expected the title line '[title](url)'")
    pos = _last_web_url(line)
    title = _title_text(line[1:pos]) if pos > 0 else ""
    if not title:
        last = end = len(line)
        while (pos := line.rfind("](", 1, end)) > 0:
            if last == len(line):
                last = pos
            if _SCHEME_AT.match(line, pos + 2, len(line) - 1):
                break
            end = pos
        else:
            last_url = line[last + 2 : -1].strip() if last < len(line) else ""
            if not last_url:
                raise DumpError(path, lineno, "the title line has no URL")
            raise DumpError(path, lineno, f"URL {_shown(last_url)} is not an absolute http(s) URL")
        title = _title_text(line[1:pos])
    try:
        url = web_url(line[pos + 2 : -1])
    except ValueError as e:
        raise DumpError(path, lineno, str(e)) from None
    if not title:
        raise DumpError(path, lineno, "the title is empty")
    return title, url


def epoch_time(raw: str) -> datetime:
    """The value of an epoch comment -> aware UTC datetime, or ValueError saying why not."""
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(f"epoch {_shown(raw)} is not a number")
    significant = raw.lstrip("0") or "0"
    digits = len(significant)
    if digits > 11:
        if digits > 16:  # beyond year 300,000 in milliseconds: no need to read it
            raise ValueError(f"epoch {_shown(raw)} is out of range")
        seconds = int(significant) // 1000
    elif digits >= 9:
        seconds = int(significant)
    else:
        raise ValueError(f"epoch {_shown(raw)} is too small to be a date")
    try:
        when = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"epoch {_shown(raw)} is out of range") from None
    if not MIN_TIME <= when < MAX_TIME:
        raise ValueError(f"epoch {_shown(raw)} ({when:%Y-%m-%d}) is not a plausible date")
    return when


def zoned_time(text: str) -> datetime | None:
    """An RFC 822 or ISO 8601 date with an explicit zone -> aware UTC within
    [MIN_TIME, MAX_TIME), else None (dates at the edge of the calendar included)."""
    text = collapse(text)
    if not text or len(text) > 100:  # no date is this long; don't hand 5 MB to a date parser
        return None
    from email.utils import parsedate_to_datetime  # only fallbacks need it: not at start-up

    when: datetime | None = None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return None
    if when.tzinfo is None or when.utcoffset() is None:
        return None
    try:
        # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-05:00 have no UTC time in datetime's range.
        when = when.astimezone(UTC).replace(microsecond=0)
    except OverflowError:
        return None
    return when if MIN_TIME <= when < MAX_TIME else None


def _strip_tags(text: str) -> str:
    """Replace every ``<...>`` by a space.  Only text before the last ``>`` can hold a tag,
    so every ``<`` the pattern tries finds its ``>``: one pass, whatever the input."""
    last = text.rfind(">")
    return _TAG.sub(" ", text[: last + 1]) + text[last + 1 :] if last >= 0 else text


def _time_tag_dates(head: str) -> list[str]:
    """The ``datetime`` values of the ``<time>`` tags in ``head``, in order."""
    values = []
    pos = 0
    while m := _TIME_OPEN.search(head, pos):
        close = head.find(">", m.end())
        end = len(head) if close < 0 else close
        if attr := _DATETIME_ATTR.search(head, m.end(), end):
            values.append(attr.group(1))
        pos = end
    return values


def body_time(body: str, *, partial: bool = False) -> datetime | None:
    """A date marker with an explicit zone near the start of the body (spec 2.4).

    With ``partial`` the body is only the start that a head holds: a date is returned only if
    the whole body gives the same one (a feedx marker not closed yet might, once closed, take
    the place of a ``<time>`` inside it), else None."""
    head = body[:_BODY_DATE_WINDOW]
    m = _BODY_I_DATE.match(head)
    if m is None and partial and _BODY_I_OPEN.match(head):
        return None
    if m:
        text = _strip_tags(_BR.split(m.group(1))[-1])
        when = zoned_time(unescape(text))
        if when is not None:
            return when
    for value in _time_tag_dates(head):
        when = zoned_time(unescape(value))
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
    partial: bool = False,
) -> tuple[datetime, Provenance, tuple[str, ...]]:
    """The fallback chain of spec section 3: epoch -> 日期 line -> body date -> mtime.

    Returns the time, where it came from, and a warning for every step that failed.  A
    ``partial`` body (the start of it that a head holds) gives a body date only where the
    whole would give the same (``body_time``); a time from ``mtime`` then tells the caller to
    read the whole file.
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
        warnings.append(f"{path}:{lineno}: unreadable date line {_shown(value)}")
    when = body_time(body, partial=partial)
    if when is not None:
        warnings.append(f"{path}:{body_line}: time taken from a date in the body")
        return when, Provenance.BODY, tuple(warnings)
    warnings.append(f"{path}:1: no usable date: time taken from the file's modification time")
    return mtime.astimezone(UTC).replace(microsecond=0), Provenance.MTIME, tuple(warnings)


def _line(parts: list[str], idx: int) -> str:
    return strip_forbidden(parts[idx]).strip() if idx < len(parts) else ""


def _epoch_value(line: str) -> str | None:
    """The value of an epoch line ``<!-- value -->``, trimmed; None if it is not one."""
    if len(line) >= 7 and line.startswith("<!--") and line.endswith("-->"):
        return line[4:-3].strip()
    return None


def _is_rule(line: str) -> bool:
    return len(line) >= 3 and not line.strip("-")


def _date_value(line: str) -> str | None:
    """The value of a ``日期：`` line, trimmed at its start; None if it is not one."""
    if not line.startswith("日期"):
        return None
    rest = line[2:].lstrip()
    return rest[1:].lstrip() if rest[:1] in ("：", ":") else None


def plain_head(data: bytes, *, complete: bool) -> tuple[str, str, str, int] | None:
    """(id, URL, title, epoch seconds) of a dump whose header is in the common form, or None.

    A fast path for scanning, read on the bytes: it answers only when ``parse_dump`` would
    give the same id, URL, title and time with no warning, and leaves every other case
    (entities, control characters, URLs that need encoding, IDNA, a userinfo or a port,
    fallbacks, NUL bytes or bad UTF-8 where ``parse_dump`` judges them, anything unusual) to
    ``parse_dump``.  The URL is found as ``parse_title_line`` finds it (ASCII ``]`` and ``(``
    never occur inside a UTF-8 sequence, so the line splits where it would in text), then
    taken only if it is already a URI with a plain host.  ``complete`` says whether ``data``
    is the whole file or only its head (see ``decode``).
    """
    m = _PLAIN_HEAD.match(data)
    if m is None:
        return None
    line = m.group(2)
    # The last ``](`` must be followed by a plain URL; then it is also the one
    # ``parse_title_line`` takes (the common form takes the last that fits, and a plain URL fits).
    pos = line.rfind(b"](")
    url_match = _PLAIN_URL_B.fullmatch(line, pos + 2, len(line) - 1) if pos > 0 else None
    if url_match is None:
        return None
    port = url_match.group(2)
    if port and int(port) > 65535:
        return None
    if complete:
        judged = data
    else:
        # parse_dump also judges the fourth line (a date line, or the blank line after the
        # rule), and wants it whole.
        end = data.find(b"\n", m.end())
        if end < 0:
            return None
        judged = data[m.end() : end]
    if b"\0" in judged:
        return None
    try:
        judged.decode("utf-8")
        title = line[1:pos].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _PLAIN_TITLE_UNSAFE.search(title):
        return None
    title = " ".join(title.split())
    link = line[pos + 2 : -1].decode("ascii")
    if not title or not valid_host(url_match.group(1).decode("ascii")):
        return None
    return normalize_url(link), link, title, int(m.group(1)) // 1000


def parse_dump(data: bytes, *, path: str, mtime: datetime, complete: bool = True) -> Dump:
    """Parse one dump; raises DumpError and nothing else, whatever the bytes.

    ``mtime`` is the file's modification time, the last fallback for the publication time.
    With ``complete=False`` ``data`` is only the head of the file: the header is parsed and
    ``body`` is None.  A head gives the same id, URL, title and time as the whole file, or
    says it cannot: a DumpError (a header line the read cut), or a time from ``mtime`` (the
    time needs the body).  The caller then reads the whole file.

    Any other exception is a bug in the parser; it is still reported as a rejection of this
    dump (``cannot parse: ...``), so one file can never stop a build.
    """
    try:
        return _parse_dump(data, path=path, mtime=mtime, complete=complete)
    except DumpError:
        raise
    except Exception as e:  # defence in depth: the tests assert this is never reached
        reason = " ".join(f"cannot parse: {type(e).__name__}: {e}".split())
        raise DumpError(path, 1, reason[:200]) from e


def _parse_dump(data: bytes, *, path: str, mtime: datetime, complete: bool) -> Dump:
    """``parse_dump`` without its guard: what the property tests and the fuzzer call, so a
    bug shows as the exception it is."""
    if not data or data.isspace():
        raise DumpError(path, 1, "empty file")
    text = decode(data, path, complete=complete)
    # The header is at most four lines (epoch, title, rule, date); the rest is the body.
    parts = text.split("\n", 4)
    idx = 0
    epoch_raw = _epoch_value(_line(parts, 0))
    if epoch_raw is not None:
        idx = 1
    if not complete and len(parts) < idx + 4:
        # A head judges the title, rule and date lines only when it holds them whole.
        raise DumpError(path, len(parts), "the header is cut by the read")
    title_line = _line(parts, idx)
    if not title_line:
        raise DumpError(path, idx + 1, "expected the title line '[title](url)'")
    title, url = parse_title_line(title_line, path, idx + 1)
    idx += 1
    if not _is_rule(_line(parts, idx)):
        raise DumpError(path, idx + 1, "expected a rule line of dashes ('------')")
    idx += 1
    date_line: tuple[int, str] | None = None
    if idx < 4 and (value := _date_value(_line(parts, idx))) is not None:
        date_line = (idx + 1, value)
        idx += 1
    body: str | None = None
    rest = "\n".join(parts[idx:])
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
            partial=not complete,
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
