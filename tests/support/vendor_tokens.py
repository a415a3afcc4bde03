"""One edgeshield configuration with a route per vendor token scheme (/ak Akamai, /bn
bunny.net, /s nginx secure_link, /nt native) and an open catch-all, for the vendor
token tests and their attack replays."""

from __future__ import annotations

NATIVE_SECRET = "vendor-tokens native secret"
AKAMAI_KEY = "7d1f9a4b2c3e5f60718293a4b5c6d7e8"
BUNNY_KEY = "229248f0-f007-4bf9-ba1f-bbf1b4ad9d40"
NGINX_SECRET = "secret"
FAR = 2147483647  # nginx's own example expiry


def vendor_config(origin_url: str) -> str:
    routes = "".join(
        f"""
[[routes]]
path_prefix = "{prefix}"
origin = "main"
[routes.auth]
schemes = ["{scheme}"]
"""
        for prefix, scheme in (
            ("/ak", "akamai"),
            ("/bn", "bunny"),
            ("/s", "nginx"),
            ("/nt", "native"),
        )
    )
    return f"""
[server]
access_log = "off"
[auth]
clock_skew = 0
[auth.keys.k7]
secret = "{NATIVE_SECRET}"
[auth.keys.akamai]
secret = "{AKAMAI_KEY}"
[auth.keys.bunny]
secret = "{BUNNY_KEY}"
[auth.keys.nginx]
secret = "{NGINX_SECRET}"
[auth.akamai]
key = "akamai"
[auth.bunny]
key = "bunny"
[auth.nginx]
key = "nginx"
[origins.main]
kind = "http"
url = "{origin_url}"
{routes}
[[routes]]
path_prefix = "/"
origin = "main"
"""
