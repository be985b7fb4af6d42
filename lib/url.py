# Server URL rules of the integration guide: ws://host:port/path or wss://host:port/path,
# port mandatory, no trailing slash. The charger id is appended by the caller.


def parse(url):
    """Return (scheme, host, port, path) or raise ValueError with the reason."""
    if not isinstance(url, str) or not url:
        raise ValueError("empty URL")
    if url.startswith("ws://"):
        scheme, rest = "ws", url[5:]
    elif url.startswith("wss://"):
        scheme, rest = "wss", url[6:]
    else:
        raise ValueError("scheme must be ws:// or wss://")
    if url.endswith("/"):
        raise ValueError("trailing slash not allowed")
    slash = rest.find("/")
    hostport = rest if slash < 0 else rest[:slash]
    path = "" if slash < 0 else rest[slash:]
    if "@" in hostport or "?" in url or "#" in url or " " in url:
        raise ValueError("credentials, query and fragment not allowed")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("bad IPv6 literal")
        host, after = hostport[1:end], hostport[end + 1:]
        if not after.startswith(":"):
            raise ValueError("port is mandatory")
        portstr = after[1:]
    else:
        colon = hostport.rfind(":")
        if colon < 0:
            raise ValueError("port is mandatory")
        host, portstr = hostport[:colon], hostport[colon + 1:]
    if not host:
        raise ValueError("host missing")
    if not portstr.isdigit():
        raise ValueError("port must be a number")
    port = int(portstr)
    if port < 1 or port > 65535:
        raise ValueError("port out of range")
    if "//" in path:
        raise ValueError("empty path segment")
    return scheme, host, port, path


def charger_url(server, charger_id):
    """Full connection URL: server address + '/' + charger id."""
    parse(server)
    return server + "/" + charger_id
