"""What uWSGI"s options mean to the checker: which bind, count, switch, repeat or route."""

# fmt: off
BIND_KEYS = (
    "socket", "uwsgi-socket", "http-socket", "http", "https", "shared-socket", "http11-socket",
    "fastcgi-socket", "scgi-socket", "https-socket",
)
APP_SOCKET_KEYS = (
    "socket", "uwsgi-socket",
)
INTEGER_KEYS = (
    "processes", "workers", "threads", "cheaper", "offload-threads", "listen", "harakiri",
    "buffer-size", "http-keepalive", "max-requests", "reload-mercy", "worker-reload-mercy",
    "cheaper-initial", "http-processes", "http-timeout",
)
BOOLEAN_KEYS = (
    "master", "strict", "need-app", "static-gzip-all", "http-auto-gzip", "enable-threads",
    "vacuum", "die-on-term", "lazy-apps", "single-interpreter", "thunder-lock",
    "http-websockets", "http-auto-chunked", "py-autoreload",
)
BOOLEAN_WORDS = {
    "", "0", "1", "f", "false", "n", "no", "off", "on", "t", "true", "y", "yes",
}
SINGLE_KEYS = (
    "processes", "workers", "threads", "cheaper", "offload-threads", "master", "strict",
    "need-app", "module", "wsgi-file", "callable", "chdir", "home", "virtualenv", "listen",
    "harakiri", "buffer-size", "uid", "gid", "http-keepalive", "static-gzip-all",
    "http-auto-gzip", "enable-threads", "die-on-term", "lazy-apps", "req-logger-file",
)
PATH_KEYS = (
    "pythonpath", "check-static", "chdir", "wsgi-file", "home", "virtualenv",
)
LOGGER_KEYS = (
    "logger", "req-logger",
)
# Options that, under an Emperor, turn into "write the output to this file".
OUTPUT_REDIRECT_KEYS = (
    "logto", "logto2", "daemonize", "daemonize2",
)
APP_KEYS = (
    "module", "wsgi-file", "wsgi", "mount", "file",
)
ROUTE_KEYS = (
    "route-if", "route-if-not", "response-route-if", "response-route-if-not", "final-route-if",
    "error-route-if", "final-route-if-not", "error-route-if-not",
)
ROUTE_CONDITIONS = {
    "<", "<=", "==", ">", ">=", "contain", "contains", "empty", "ends_with", "endswith", "eq",
    "equal", "exists", "ipv4in", "ipv6in", "isdir", "isempty", "isequal", "isexec", "isfile",
    "ishigher", "ishigherequal", "islink", "islower", "islowerequal", "lord", "re", "regexp",
    "starts_with", "startswith",
}
ROUTE_ACTIONS = {
    "add-header", "addheader", "addvar", "basicauth", "basicauth-next", "break", "cache",
    "cachedec", "cachediv", "cacheinc", "cachemul", "cacheset", "cachestore", "cachevar",
    "chdir", "chunked", "clearheaders", "continue", "del-header", "delheader", "dir",
    "disableheaders", "donotlog", "fastfile", "file", "fixpathinfo", "flush", "forcecl", "goto",
    "gzip", "harakiri", "http", "last", "log", "logvar", "memcached", "memcachedstore",
    "proxyhttp", "proxyuwsgi", "redirect", "redirect-301", "redirect-302", "redirect-permanent",
    "redis", "redisstore", "remheader", "return", "rewrite", "rewrite-last", "rpc", "rpcnext",
    "rpcraw", "rpcret", "rpcvar", "send", "send-crnl", "sendfile", "serve_static", "setapp",
    "setdocroot", "setfile", "setmethod", "setmodifier1", "setmodifier2", "setoptionvar",
    "setpathinfo", "setprocname", "setremoteaddr", "setscriptname", "seturi", "setuser",
    "setvar", "signal", "sor", "spooler", "static", "template", "tofile", "upper", "uwsgi",
    "xattr",
}
# fmt: on
