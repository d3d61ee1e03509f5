"""Schemathesis hooks: sign every request with a Hangar (Backend.AI) keypair.

The signature covers the method, the request target as sent (path and query), the Date, the
Host, the Content-Type's media type and the API version; it is computed on the prepared
request, so it matches what goes on the wire whatever Schemathesis generated.
"""
import datetime
import hashlib
import hmac
import os
from urllib.parse import urlsplit

import requests
import schemathesis

ACCESS_KEY = os.environ["BACKEND_ACCESS_KEY"]
SECRET_KEY = os.environ["BACKEND_SECRET_KEY"]
API_VERSION = "v7.20230615"


class HangarSignature(requests.auth.AuthBase):
    def __call__(self, r):
        url = urlsplit(r.url)
        target = url.path + (("?" + url.query) if url.query else "")
        if not r.headers.get("Content-Type"):
            r.headers["Content-Type"] = "text/plain"
        ctype = r.headers["Content-Type"].split(";")[0].strip().lower()
        date = datetime.datetime.now(datetime.timezone.utc).isoformat()
        host = url.netloc
        to_sign = "\n".join([r.method.upper(), target, date, "host:" + host, "content-type:" + ctype,
                             "x-backendai-version:" + API_VERSION, hashlib.sha256(b"").hexdigest()])
        k1 = hmac.new(SECRET_KEY.encode(), date[:10].replace("-", "").encode(), hashlib.sha256).digest()
        k2 = hmac.new(k1, host.encode(), hashlib.sha256).digest()
        signature = hmac.new(k2, to_sign.encode(), hashlib.sha256).hexdigest()
        r.headers["Date"] = date
        r.headers["X-BackendAI-Version"] = API_VERSION
        r.headers["Authorization"] = f"BackendAI signMethod=HMAC-SHA256, credential={ACCESS_KEY}:{signature}"
        return r


schemathesis.auth.set_from_requests(HangarSignature())


@schemathesis.check
def no_http_5xx(ctx, response, case):
    """GraphQL answers client mistakes with HTTP 200 and `errors` (by design); only a 5xx is a server bug."""
    if response.status_code >= 500:
        raise AssertionError(f"server error {response.status_code}: {response.text[:500]}")
