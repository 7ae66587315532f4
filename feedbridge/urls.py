"""Pure URL rules: what a published URL may be, its URI form, its entry id, and how body URLs
are resolved against the article URL.

A URL that feedbridge publishes is absolute ``http``/``https`` (``mailto`` too for links in a
body), written in URI form (RFC 3986 characters only), and its host is a DNS name of LDH
labels or an IP literal once IDNA has made it ASCII.  IDNA may map characters (NFKC) but may
never change the URL's structure: ``a℀b`` maps to ``aa/cb``, which is not a host, so such a
URL is not published.  Every function here is linear in its input and raises only
``ValueError`` (``web_url``) or nothing.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from encodings import idna as _idna
from urllib.parse import quote, urljoin, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: URLs that are already their own id: lower-case host, no port, a path, no fragment.
_PLAIN_URL = re.compile(r"https?://[a-z0-9.\-]+/[^#]*")
#: What a URI may hold as it is (RFC 3986 reserved and unreserved characters, and ``%``).
URI_SAFE = ";/?:@&=+$,-_.!~*'()%#[]"
_URI_UNSAFE = re.compile(r"[^0-9A-Za-z;/?:@&=+$,\-_.!~*'()%#\[\]]")
#: Userinfo may not hold the delimiters that end it or the authority.
_USERINFO_SAFE = ";:&=+$,-_.!~*'()%"
_WEB_SCHEMES = ("http", "https")
_HEX_DIGITS = "0123456789abcdef"
#: Characters IDNA 2003 (Python's codec) maps away and IDNA 2008 (browsers) keeps: ß -> ss.
_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")
#: Dot-separated labels of letters, digits and hyphens (where hyphens may stand is checked apart).
_LDH_NAME = re.compile(r"[0-9A-Za-z\-]{1,63}(?:\.[0-9A-Za-z\-]{1,63})*")
#: Plain references: URI characters only, no ``;`` parameter in the path (urllib splits it off
#: and drops it when empty), no empty ``?`` query or ``#`` fragment (urllib drops those too).
_PATH = r"[0-9A-Za-z\-._~!$&'()*+,=:@/%]*"
_QUERY_FRAGMENT = (
    r"(?:\?[0-9A-Za-z\-._~!$&'()*+,=:@/%;?]+)?(?:#[0-9A-Za-z\-._~!$&'()*+,=:@/%;?#]+)?"
)
#: An absolute http(s) URL that ``urljoin`` returns as written (it has a host, so nothing is
#: resolved) and ``web_url`` publishes as written once its host is valid: lower-case scheme
#: and ASCII host, no port or userinfo.
_PLAIN_ABSOLUTE = re.compile(rf"https?://([a-z0-9.\-]+)(?:/{_PATH})?{_QUERY_FRAGMENT}")
#: A path from the root (``/a/b?q``) that ``urljoin`` appends to the base's origin as written
#: when no segment is ``.`` or ``..`` (checked apart).
_PLAIN_ROOTED = re.compile(rf"(/(?!/){_PATH}){_QUERY_FRAGMENT}")
#: The origin of a base that urllib splits as it reads (lower-case scheme, plain host).
_PLAIN_ORIGIN = re.compile(r"(https?://([a-z0-9.\-]+))(?:[/?#]|\Z)")
#: What WHATWG URL parsers strip from both ends of an attribute URL (C0 controls and space).
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
#: A ``srcset`` candidate: separators (the HTML standard's ASCII whitespace, commas), then a
#: URL (a run of anything else; after the separators it cannot start with a comma).
_SRCSET_URL = re.compile(r"[ \t\n\f\r,]*+([^ \t\n\f\r]*+)")
#: A candidate's descriptors: up to a comma that is not inside parentheses (an open one
#: without its ``)`` runs to the end).
_SRCSET_DESCRIPTORS = re.compile(r"(?:[^,(]++|\([^)]*+\)?+)*+")


def is_ldh_label(label: str) -> bool:
    """A DNS label of letters, digits and inner hyphens, 1 to 63 characters."""
    return (
        0 < len(label) <= 63
        and label.isascii()
        and label.replace("-", "").isalnum()
        and label[0] != "-"
        and label[-1] != "-"
    )


def _is_ipv4(labels: list[str]) -> bool:
    return len(labels) == 4 and all(
        p.isdigit() and int(p) <= 255 and (p == "0" or p[0] != "0") for p in labels
    )


@functools.lru_cache(maxsize=4096)  # a source's dumps share a host: scans check it once
def valid_host(host: str) -> bool:
    """An ASCII host that every URL parser reads the same way: a DNS name of LDH labels
    (optionally ending in a dot), a dotted IPv4 address, or a bracketed IPv6 address.

    A last label that looks numeric must make the whole host canonical IPv4: browsers read
    ``0x7f.1`` or ``1.2.3.999`` as (bad) IPv4 addresses where urllib reads a name."""
    if host.startswith("["):
        inner = host[1:-1]
        if not host.endswith("]") or "%" in inner or not inner.isascii():
            return False
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            return False
        return True
    if not 0 < len(host) <= 253:
        return False
    name = host[:-1] if host.endswith(".") else host
    if (
        not _LDH_NAME.fullmatch(name)
        or name[0] == "-"
        or name[-1] == "-"
        or "-." in name
        or ".-" in name
    ):
        return False
    last = name[name.rfind(".") + 1 :].lower()
    numeric = last.isdigit() or (last.startswith("0x") and not last[2:].strip(_HEX_DIGITS))
    if numeric and not _is_ipv4(name.split(".")):
        return False
    lower = name.lower()
    return "xn--" not in lower or all(
        not label.startswith("xn--") or _ace_round_trips(label) for label in lower.split(".")
    )


def _ace_round_trips(label: str) -> bool:
    """An ``xn--`` label written as is must be the IDNA form of some Unicode label."""
    try:
        unicode = label[4:].encode("ascii").decode("punycode")
        return _idna.ToASCII(unicode).decode("ascii").lower() == label.lower()
    except (UnicodeError, ValueError):
        return False


def ascii_host(host: str) -> str:
    """A host as written -> its ASCII (IDNA) form, label by label; ValueError if IDNA fails
    or its mapping would change the host's structure (a label that maps to a dot, slash...)."""
    if host.isascii():
        return host
    if len(host) > 253:  # longer than any DNS name: not worth mapping
        raise ValueError(f"host {_shown(host)} is too long")
    out = []
    for label in host.split("."):
        if label.isascii():
            out.append(label)
            continue
        if any(c in _DEVIATIONS for c in label):
            raise ValueError(f"host {_shown(host)} is read differently by IDNA 2003 and 2008")
        try:
            ace = _idna.ToASCII(label).decode("ascii")
        except (UnicodeError, ValueError):
            raise ValueError(f"host {_shown(host)} is not a valid IDNA name") from None
        if not is_ldh_label(ace):
            raise ValueError(f"host {_shown(host)} changes its structure under IDNA ({ace!r})")
        out.append(ace)
    return ".".join(out)


def _split_authority(rest: str) -> tuple[str, str]:
    """``authority/path?query#fragment`` -> (authority, the rest from its first delimiter)."""
    end = len(rest)
    for delimiter in "/?#":
        at = rest.find(delimiter, 0, end)
        if at >= 0:
            end = at
    return rest[:end], rest[end:]


def _shown(url: str) -> str:
    return repr(url if len(url) <= 80 else url[:77] + "...")


def _host_port(hostport: str, url: str) -> tuple[str, str]:
    """``host:port`` -> (host, ``:port`` or ""); ValueError for no host or a bad port."""
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise ValueError(f"URL {_shown(url)} has an unclosed IPv6 host")
        host, port = hostport[: close + 1], hostport[close + 1 :]
    else:
        colon = hostport.find(":")
        host, port = (hostport, "") if colon < 0 else (hostport[:colon], hostport[colon:])
    if not host:
        raise ValueError(f"URL {_shown(url)} has no host")
    digits = port[1:]
    valid = not digits or (len(digits) <= 5 and digits.isascii() and digits.isdigit())
    if port and (port[0] != ":" or not valid or (digits and int(digits) > 65535)):
        raise ValueError(f"URL {_shown(url)} has an invalid port")
    return host, port


def web_url(url: str, *, mailto: bool = False) -> str:
    """The URI form of an absolute http(s) URL (or ``mailto:`` with ``mailto``), or
    ValueError saying why it cannot be published.

    Characters a URI cannot hold are percent-encoded as UTF-8 (RFC 3987 section 3.1), a
    non-ASCII host becomes IDNA; everything a URI can hold stays exactly as written, existing
    ``%XX`` included, so a mangled ``®ion=`` stays mangled."""
    url = url.strip()
    scheme, colon, rest = url.partition(":")
    lower = scheme.lower()
    if mailto and lower == "mailto" and colon:
        return url if url.isascii() and not _URI_UNSAFE.search(url) else quote(url, safe=URI_SAFE)
    if lower not in _WEB_SCHEMES or not colon:
        if not colon or not scheme.isascii() or not scheme.isalpha():
            raise ValueError(f"URL {_shown(url)} is not an absolute http(s) URL")
        raise ValueError(f"URL scheme {scheme!r} is not http or https")
    if not rest.startswith("//"):
        raise ValueError(f"URL {_shown(url)} is not an absolute http(s) URL")
    authority, tail = _split_authority(rest[2:])
    userinfo, at, hostport = authority.rpartition("@")
    host, port = _host_port(hostport, url)
    host = ascii_host(host)
    if not valid_host(host):
        raise ValueError(f"URL {_shown(url)} has an invalid host {_shown(host)}")
    if at:
        userinfo = quote(userinfo, safe=_USERINFO_SAFE)
    if tail and not (tail.isascii() and not _URI_UNSAFE.search(tail)):
        tail = quote(tail, safe=URI_SAFE)
    return f"{scheme}://{userinfo}{at}{host}{port}{tail}"


def to_uri(url: str) -> str:
    """The URI form of a URL as written (see ``web_url``); a URL that cannot be published as
    a web URL is percent-encoded whole, so the result is always URI characters only."""
    url = url.strip()
    try:
        return web_url(url, mailto=True)
    except ValueError:
        return quote(url, safe=URI_SAFE)


def normalize_url(url: str) -> str:
    """The entry id of a URL in URI form (``web_url``): scheme and host lower-cased, default
    port, text fragment and ``utm_*`` parameters dropped.  Everything else stays as written."""
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


def resolve(url: str, base: str) -> str | None:
    """An attribute URL made absolute against the article URL, in URI form; None unless it
    is a publishable http(s) or mailto URL (``web_url``)."""
    url = url.strip(_C0_AND_SPACE)
    if not url:
        return None
    plain = _plain_join(url, base)  # the common cases, without urllib's parse and join
    if plain is not None:
        joined, host = plain
        return joined if valid_host(host) else None
    try:
        return web_url(urljoin(base, url), mailto=True)
    except ValueError:
        return None


def url_host(url: str) -> str | None:
    """``urlsplit(url).hostname``, without urllib for a plain absolute URL (whose host is
    lower-case already and alone in its authority)."""
    plain = _PLAIN_ABSOLUTE.fullmatch(url)
    return plain[1] if plain else urlsplit(url).hostname


def _plain_join(url: str, base: str) -> tuple[str, str] | None:
    """``urljoin(base, url)`` and its host where both are plain enough that the join is
    ``url`` itself or the base's origin followed by ``url`` (and ``web_url`` gives it back as
    it is if the host is valid); None for anything else, which takes urllib's way."""
    if url[0] == "/":
        rooted = _PLAIN_ROOTED.fullmatch(url)
        origin = _origin(base)
        if rooted is None or origin is None or "/." in rooted[1]:
            return None
        return origin[0] + url, origin[1]
    absolute = _PLAIN_ABSOLUTE.fullmatch(url)
    if absolute is None or not _base_parses(base):
        return None
    return url, absolute[1]


@functools.lru_cache(maxsize=64)  # one base for every URL of a body
def _origin(base: str) -> tuple[str, str] | None:
    """``scheme://host`` and the host of a base that urllib reads as it is written."""
    plain = _PLAIN_ORIGIN.match(base)
    return (plain[1], plain[2]) if plain else None


@functools.lru_cache(maxsize=64)
def _base_parses(base: str) -> bool:
    """``urljoin`` parses the base even for an absolute URL, and raises if it cannot."""
    try:
        urlsplit(base)
    except ValueError:
        return False
    return True


def srcset_candidates(srcset: str) -> list[tuple[str, str]]:
    """``(url, descriptors)`` of every image candidate, split as the HTML standard's parser
    splits them: a URL is a run without whitespace (commas at its end separate it from the
    next); descriptors run to the next comma outside parentheses.  Linear in the input (the
    patterns' quantifiers are possessive)."""
    candidates: list[tuple[str, str]] = []
    pos = 0
    while True:
        found = _SRCSET_URL.match(srcset, pos)
        assert found is not None  # both parts of the pattern may be empty
        url, pos = found[1], found.end()
        if not url:  # only separators were left
            return candidates
        if url.endswith(","):
            candidates.append((url.rstrip(","), ""))
            continue
        descriptors = _SRCSET_DESCRIPTORS.match(srcset, pos)
        assert descriptors is not None
        pos = descriptors.end()
        candidates.append((url, " ".join(descriptors[0].split())))


def resolve_srcset(srcset: str, base: str) -> str | None:
    """Every http(s) URL of a ``srcset`` made absolute, descriptors kept; any other item
    (``data:``, ``javascript:``, ``mailto:``, unusable URLs) dropped.  Candidates are read
    as the HTML standard reads them (``srcset_candidates``); a comma inside a URL is
    encoded, so that the next parser does not split the candidate there."""
    items = []
    for raw, descriptors in srcset_candidates(srcset):
        url = resolve(raw, base)
        if url is None or not url.lower().startswith(("http://", "https://")):
            continue
        url = url.replace(",", "%2C")
        items.append(f"{url} {descriptors}" if descriptors else url)
    return ", ".join(items) or None
