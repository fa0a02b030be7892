"""What the lines of the generated log say: ordinary records, and the five kinds of incident.

Ordinary records include some that look alarming and are not incidents (wrong passwords at WARN,
slow queries, retried connections, disk usage below full, declined cards at ERROR). Each incident
maker returns the incident's first record (without its timestamp) and its continuation lines
(stack frames, which carry none); the first record holds the request id that identifies it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

KINDS = ("oom", "db_timeout", "auth_failure", "disk_full", "segfault")
MULTI_LINE_KINDS = ("oom", "segfault", "db_timeout")

# --- what a line says --------------------------------------------------------------------------

_USERS = ("a.khan", "b.ortiz", "c.nguyen", "d.mueller", "e.rossi", "f.dubois", "g.tanaka", "h.smith")
_PATHS = ("/v1/orders", "/v1/cart/items", "/v1/products", "/v1/customers", "/v1/invoices")


def request_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(32):08x}"


def filler(rng: random.Random) -> str:
    """One ordinary record (without its timestamp). Some look alarming and are not incidents."""
    roll = rng.random()
    if roll < 0.34:
        method, status = rng.choice((("GET", 200), ("GET", 200), ("POST", 201), ("GET", 404)))
        return f"INFO [api-gateway] {method} {rng.choice(_PATHS)}/{rng.randint(100, 9999)} {status} {rng.randint(3, 240)}ms req={request_id(rng)}"
    if roll < 0.46:
        return f"DEBUG [cache] hit key=product:{rng.randint(100, 9999)} ttl={rng.choice((60, 300, 900))}s"
    if roll < 0.56:
        return f"INFO [order-service] order {rng.randint(10000, 99999)} created, {rng.randint(1, 6)} items, total {rng.randint(5, 900)}.{rng.randint(0, 99):02d} EUR"
    if roll < 0.64:
        return f"INFO [auth-service] login ok user={rng.choice(_USERS)}"
    if roll < 0.69:
        return f"WARN [auth-service] login failed for user={rng.choice(_USERS)}: wrong password (attempt {rng.randint(1, 3)} of 5)"
    if roll < 0.75:
        return f"WARN [db-pool] slow query {rng.randint(1001, 4000)}ms on orders_by_customer (threshold 1000ms)"
    if roll < 0.79:
        return f"WARN [db-pool] connecting to db-{rng.randint(1, 4)} took {rng.randint(800, 2900)}ms, retrying (attempt 1 of 3)"
    if roll < 0.84:
        return f"INFO [storage] disk usage {rng.randint(41, 88)}% on /var/lib/data"
    if roll < 0.89:
        return f"INFO [jvm] GC pause {rng.randint(4, 180)}ms, heap {rng.randint(900, 3100)}MB of 4096MB"
    if roll < 0.905:
        return f"ERROR [payments] card declined (code {rng.choice((51, 54, 61))}) for order {rng.randint(10000, 99999)} req={request_id(rng)}"
    if roll < 0.96:
        return f"INFO [scheduler] job cleanup-sessions finished in {rng.randint(20, 900)}ms"
    return f"DEBUG [render-worker] thumbnail {rng.randint(1000, 9999)}.png rendered in {rng.randint(8, 90)}ms"


# Each maker returns the incident's first record (without its timestamp) and its
# continuation lines (stack frames, which carry no timestamp).
Maker = Callable[[random.Random, str, int], tuple[str, list[str]]]


def _oom(rng: random.Random, req: str, length: int) -> tuple[str, list[str]]:
    frames = [
        "com.shop.orders.CartCache.put(CartCache.java:118)",
        "com.shop.orders.CartService.addItem(CartService.java:64)",
        "com.shop.orders.api.CartController.post(CartController.java:41)",
        "org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)",
        "jakarta.servlet.http.HttpServlet.service(HttpServlet.java:614)",
        "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)",
        "org.apache.catalina.core.StandardWrapperValve.invoke(StandardWrapperValve.java:202)",
        "org.apache.catalina.connector.CoyoteAdapter.service(CoyoteAdapter.java:344)",
        "org.apache.coyote.http11.Http11Processor.service(Http11Processor.java:391)",
        "org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun(NioEndpoint.java:1740)",
        "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1136)",
        "java.base/java.lang.Thread.run(Thread.java:840)",
    ]
    rest = [f"    at {frame}" for frame in frames[: length - 2]] + [f"    ... {rng.randint(8, 40)} more"]
    return f"ERROR [order-service] java.lang.OutOfMemoryError: Java heap space req={req}", rest


def _segfault(rng: random.Random, req: str, length: int) -> tuple[str, list[str]]:
    funcs = [
        ("png_read_row", "/usr/lib/x86_64-linux-gnu/libpng16.so.16"),
        ("png_read_image", "/usr/lib/x86_64-linux-gnu/libpng16.so.16"),
        ("thumb_decode", "/opt/render/lib/libthumb.so"),
        ("thumb_render_job", "/opt/render/lib/libthumb.so"),
        ("worker_loop", "/opt/render/bin/render-worker"),
        ("start_thread", "/lib/x86_64-linux-gnu/libc.so.6"),
        ("clone3", "/lib/x86_64-linux-gnu/libc.so.6"),
        ("__libc_start_main", "/lib/x86_64-linux-gnu/libc.so.6"),
        ("_start", "/opt/render/bin/render-worker"),
    ]
    rest = [
        f"    #{i}  0x00007f{rng.getrandbits(32):08x} in {name} () from {lib}"
        for i, (name, lib) in enumerate(funcs[: length - 1])
    ]
    pid = rng.randint(2000, 60000)
    return f"FATAL [render-worker] Segmentation fault (signal 11) in worker pid={pid} req={req}", rest


def _db_timeout(rng: random.Random, req: str, length: int) -> tuple[str, list[str]]:
    host = f"db-{rng.randint(1, 4)}"
    first = f"ERROR [billing-api] database connection timeout after 30000ms host={host} pool=primary req={req}"
    if length == 1:
        return first, []
    trace = [
        "Traceback (most recent call last):",
        '  File "/app/billing/invoices.py", line 212, in close_period',
        "    rows = db.fetch_all(query, params)",
        '  File "/app/billing/db.py", line 88, in fetch_all',
        "    conn = self.pool.get(timeout=30)",
        f'psycopg2.OperationalError: connection to server at "{host}", port 5432 failed: timeout expired',
    ]
    return first, trace


def _auth_failure(rng: random.Random, req: str, length: int) -> tuple[str, list[str]]:
    ip = f"203.0.113.{rng.randint(2, 250)}"
    first = (
        f"ERROR [auth-service] authentication failed for user={rng.choice(_USERS)} from {ip}: "
        f"invalid token signature req={req}"
    )
    return first, []


def _disk_full(rng: random.Random, req: str, length: int) -> tuple[str, list[str]]:
    return (
        f"CRITICAL [storage] write failed: No space left on device (/var/lib/data, 100% used) req={req}",
        [],
    )


MAKERS: dict[str, Maker] = {
    "oom": _oom,
    "db_timeout": _db_timeout,
    "auth_failure": _auth_failure,
    "disk_full": _disk_full,
    "segfault": _segfault,
}


def length_of(kind: str, rng: random.Random, *, multi: bool) -> int:
    """Lines an incident of this kind takes; ``multi`` forces a stack trace."""
    if kind == "oom":
        return rng.randint(9 if multi else 5, 13)
    if kind == "segfault":
        return rng.randint(8 if multi else 5, 10)
    if kind == "db_timeout":
        return 7 if multi or rng.random() < 0.4 else 1
    return 1
