# Server URL rules of the integration guide: ws://host:port/path or wss://host:port/path,
# port mandatory, no trailing slash, not the charger id (appended by the caller).


def parse(url, cid=None):
    """Return (scheme, host, port, path) or raise ValueError with the reason.
    cid: the charger id, which must not be a segment of the path."""
    if not isinstance(url, str) or not url:
        raise ValueError("the URL is empty")
    i = url.find("://")
    scheme = url[:i]
    if scheme not in ("ws", "wss"):
        raise ValueError("scheme must be ws:// or wss://")
    rest = url[i + 3:]
    if url.endswith("/"):
        raise ValueError("trailing slash")
    slash = rest.find("/")
    if slash < 0:
        slash = len(rest)
    hostport = rest[:slash]
    path = rest[slash:]
    if "@" in hostport or "?" in url or "#" in url or " " in url:
        raise ValueError("credentials, query and fragment not allowed")
    colon = hostport.rfind(":")
    host = hostport[:colon]
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("bad IPv6 literal")
        if colon != end + 1:
            raise ValueError("port is mandatory")
        host = hostport[1:end]
    if colon < 0:
        raise ValueError("port is mandatory")
    if not host:
        raise ValueError("host missing")
    port = hostport[colon + 1:]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("bad port number")
    if "//" in path:
        raise ValueError("empty path segment")
    if cid and "/" + cid + "/" in path + "/":
        raise ValueError("charger ID in the URL (it is appended)")
    return scheme, host, int(port), path


def charger_url(server, charger_id):
    """Full connection URL: server address + '/' + charger id."""
    parse(server)
    return server + "/" + charger_id


def hostport(s, port):
    """"host[:port]" -> (host, port), `port` when none is given; ValueError
    for a bad port or no host."""
    colon = s.rfind(":")
    if colon >= 0:
        p = s[colon + 1:]
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ValueError("bad port number")
        port = int(p)
        s = s[:colon]
    if not s:
        raise ValueError("host missing")
    return s, port


def parse_http(u):
    """http(s)://host[:port][/path[?query]] -> (scheme, host, port, path); ValueError otherwise."""
    if not isinstance(u, str):
        raise ValueError("not a string")
    i = u.find("://")
    scheme = u[:i] if i > 0 else ""
    if scheme not in ("http", "https"):
        raise ValueError("scheme must be http:// or https://")
    rest = u[i + 3:]
    slash = rest.find("/")
    where, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in where or " " in u or "#" in u:
        raise ValueError("credentials, spaces and fragments not supported")
    host, port = hostport(where, 443 if scheme == "https" else 80)
    return scheme, host, port, path
