/* Socket addresses as text: "127.0.0.1:80", "[::1]:80", "unix:/path". */
#include "stream_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "unix:PATH", or a path that starts with "/" or "./". */
static const char *unix_path(const char *text)
{
    if (!strncmp(text, "unix:", 5)) return text + 5;
    if (text[0] == '/' || !strncmp(text, "./", 2)) return text;
    return NULL;
}

static int parse_unix(mo_addr_t *addr, const char *path)
{
    size_t n = strlen(path);
    if (n == 0) return MO_EINVAL;
    if (n >= sizeof addr->u.un.sun_path) return MO_ENAMETOOLONG;
    memset(addr, 0, sizeof *addr);
    addr->u.un.sun_family = AF_UNIX;
    memcpy(addr->u.un.sun_path, path, n + 1);
    addr->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* A whole decimal port, 0 to 65535. */
static int parse_port(const char *text)
{
    if (*text < '0' || *text > '9' || strlen(text) > 5) return MO_EINVAL;
    char *end;
    long v = strtol(text, &end, 10);
    return *end || v > 65535 ? MO_EINVAL : (int)v;
}

/* Splits "HOST:PORT" or "[HOST]:PORT" into host (copied) and port text;
 * bracketed says whether the host was in brackets. */
static int split_host_port(const char *text, char *host, size_t hostsz, const char **port,
                           bool *bracketed)
{
    const char *colon;
    const char *h = text;
    size_t hlen;
    *bracketed = text[0] == '[';
    if (*bracketed) {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') return MO_EINVAL;
        h = text + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon || memchr(text, ':', (size_t)(colon - text))) return MO_EINVAL;
        hlen = (size_t)(colon - text);
    }
    if (hlen == 0) return MO_EINVAL;
    if (hlen >= hostsz) return MO_ENAMETOOLONG;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = colon + 1;
    return 0;
}

/* A numeric host and port into addr: 0, or MO_EINVAL if host is not a
 * numeric address of the kind the brackets ask for. */
static int numeric(mo_addr_t *addr, const char *host, bool bracketed, int port)
{
    memset(addr, 0, sizeof *addr);
    if (!bracketed && inet_pton(AF_INET, host, &addr->u.in.sin_addr) == 1) {
        addr->u.in.sin_family = AF_INET;
        addr->u.in.sin_port = htons((uint16_t)port);
        addr->len = sizeof addr->u.in;
        return 0;
    }
    if (bracketed && inet_pton(AF_INET6, host, &addr->u.in6.sin6_addr) == 1) {
        addr->u.in6.sin6_family = AF_INET6;
        addr->u.in6.sin6_port = htons((uint16_t)port);
        addr->len = sizeof addr->u.in6;
        return 0;
    }
    return MO_EINVAL;
}

int mo__addr_target(const char *text, mo_addr_t *addr, char *host, size_t hostsz, char *port,
                    size_t portsz)
{
    const char *path = unix_path(text);
    if (path) {
        int err = parse_unix(addr, path);
        return err ? err : 1;
    }
    const char *p;
    bool bracketed;
    int err = split_host_port(text, host, hostsz, &p, &bracketed);
    if (err) return err;
    int pn = parse_port(p);
    if (pn < 0) return pn;
    if (numeric(addr, host, bracketed, pn) == 0) return 2;
    if (bracketed) return MO_EINVAL; /* brackets hold IPv6 addresses only */
    snprintf(port, portsz, "%d", pn);
    return 3;
}

int mo_addr_parse(mo_addr_t *addr, const char *text)
{
    if (!addr || !text) return MO_EINVAL;
    char host[INET6_ADDRSTRLEN + 1], port[8];
    int kind = mo__addr_target(text, addr, host, sizeof host, port, sizeof port);
    if (kind == MO_ENAMETOOLONG && text[0] != '/' && strncmp(text, "unix:", 5) != 0)
        return MO_EINVAL; /* a long host part is not a numeric address */
    if (kind < 0) return kind;
    return kind == 3 ? MO_EINVAL : 0;
}

int mo_addr_format(const mo_addr_t *addr, char *buf, size_t size)
{
    if (!addr || (!buf && size)) return MO_EINVAL;
    char ip[INET6_ADDRSTRLEN];
    switch (addr->u.sa.sa_family) {
    case AF_INET:
        inet_ntop(AF_INET, &addr->u.in.sin_addr, ip, sizeof ip);
        return snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(addr->u.in.sin_port));
    case AF_INET6:
        inet_ntop(AF_INET6, &addr->u.in6.sin6_addr, ip, sizeof ip);
        return snprintf(buf, size, "[%s]:%u", ip, (unsigned)ntohs(addr->u.in6.sin6_port));
    case AF_UNIX: {
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t n = addr->len > off ? addr->len - off : 0;
        n = strnlen(addr->u.un.sun_path, n);
        return snprintf(buf, size, "unix:%.*s", (int)n, addr->u.un.sun_path);
    }
    default:
        return MO_EINVAL;
    }
}

int mo_addr_port(const mo_addr_t *addr)
{
    if (!addr) return MO_EINVAL;
    if (addr->u.sa.sa_family == AF_INET) return ntohs(addr->u.in.sin_port);
    if (addr->u.sa.sa_family == AF_INET6) return ntohs(addr->u.in6.sin6_port);
    return MO_EINVAL;
}
