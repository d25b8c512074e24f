"""Schemathesis hooks for Sunnylive's contract run (loaded through e2e/contract/schemathesis.toml)."""

import itertools

import schemathesis

_clients = itertools.count(1)


@schemathesis.hook
def before_call(context, case, kwargs):
    # Cloudflare's edge sets CF-Connecting-IP; giving each case its own address (from the IPv6 documentation range,
    # RFC 3849, never a destination) keeps the per-address rate limits of one case from answering the next.
    case.headers = {**(case.headers or {}), "CF-Connecting-IP": f"2001:db8:5c::{next(_clients):x}"}
