"""S3's rules for presigned URLs, checked before moto sees the request (moto checks none).

A request is presigned when it has no Authorization header and its query carries
`X-Amz-Signature` (SigV4) or `Signature` (SigV2). Such a request is answered as S3 answers it:

- an access key other than the runtime's (`CREDENTIALS`): 403 InvalidAccessKeyId;
- SigV4 parameters missing or malformed, `X-Amz-Expires` over 7 days, a credential for
  another region than the bucket's: 400 AuthorizationQueryParametersError;
- an `x-amz-*` header the URL did not sign: 403 AccessDenied;
- a signature other than the one botocore's own signer computes from this request's method,
  path (bucket and key), query and signed headers: 403 SignatureDoesNotMatch. A signed
  `content-length` holds the body to its size: a body of another size has another
  Content-Length, so its signature does not match (how `POST /uploads` limits an upload);
- past `X-Amz-Date` + `X-Amz-Expires` (SigV2: `Expires`): 403 AccessDenied, "Request has
  expired".

Preflights (OPTIONS) are not authenticated, as in S3; a refusal carries the bucket's CORS
headers, as S3's do, so a page can read it. Header-signed requests are not checked: see
docs/local-runtime.md, "Presigned URLs".
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from botocore.auth import HmacV1QueryAuth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import ReadOnlyCredentials

from localruntime.endpoint.s3errors import error_body

# The stand-in credentials the runtime gives its handlers and the results API
# (localruntime.settings): the URLs they presign are the ones that pass.
RUNTIME_ACCESS_KEY_ID = "test"
RUNTIME_SECRET_ACCESS_KEY = "test"
CREDENTIALS = {RUNTIME_ACCESS_KEY_ID: RUNTIME_SECRET_ACCESS_KEY}
ALGORITHM = "AWS4-HMAC-SHA256"
V4_PARAMETERS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                 "X-Amz-SignedHeaders", "X-Amz-Expires")
V2_PARAMETERS = ("AWSAccessKeyId", "Signature", "Expires")
MAX_EXPIRES_SECONDS = 604800
SIGV4_DATE = "%Y%m%dT%H%M%SZ"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Refusal(Exception):
    """S3's answer to a presigned request it does not accept."""

    def __init__(self, status: str, code: str, message: str,
                 fields: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}


def _parameters_error(message: str) -> Refusal:
    return Refusal("400 Bad Request", "AuthorizationQueryParametersError", message)


def _unknown_key(access_key: str) -> Refusal:
    return Refusal("403 Forbidden", "InvalidAccessKeyId",
                   "The AWS Access Key Id you provided does not exist in our records.",
                   {"AWSAccessKeyId": access_key})


def _no_match(access_key: str, string_to_sign: str, provided: str,
              canonical_request: str | None = None) -> Refusal:
    fields = {"AWSAccessKeyId": access_key, "StringToSign": string_to_sign,
              "SignatureProvided": provided,
              "StringToSignBytes": string_to_sign.encode().hex(" ")}
    if canonical_request is not None:
        fields["CanonicalRequest"] = canonical_request
        fields["CanonicalRequestBytes"] = canonical_request.encode().hex(" ")
    return Refusal("403 Forbidden", "SignatureDoesNotMatch",
                   "The request signature we calculated does not match the signature you "
                   "provided. Check your key and signing method.", fields)


def _expired(expires_at: float, now: float, fields: dict[str, str]) -> Refusal:
    return Refusal("403 Forbidden", "AccessDenied", "Request has expired",
                   {**fields, "Expires": _iso(expires_at), "ServerTime": _iso(now)})


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """The query's name/value pairs, percent-decoded (`+` stays `+`, as S3 reads it)."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _header(environ: dict[str, Any], name: str) -> str | None:
    key = name.upper().replace("-", "_")
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = "HTTP_" + key
    return environ.get(key)


def _amz_headers(environ: dict[str, Any]) -> list[str]:
    return sorted(key[5:].lower().replace("_", "-") for key in environ
                  if key.startswith("HTTP_X_AMZ_"))


def _raw_path(environ: dict[str, Any]) -> str:
    """The path as the client sent it (percent-encoded)."""
    raw = environ.get("RAW_URI")
    if raw is None:
        return quote(environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace"))
    return urlsplit(raw.encode("latin-1").decode("utf-8", "replace")).path or "/"


def is_presigned(environ: dict[str, Any]) -> bool:
    query = environ.get("QUERY_STRING", "")
    return (("Signature=" in query or "X-Amz-Credential=" in query
             or "AWSAccessKeyId=" in query)
            and "HTTP_AUTHORIZATION" not in environ
            and environ.get("REQUEST_METHOD") != "OPTIONS")


def check(environ: dict[str, Any], credentials: dict[str, str],
          now: Callable[[], float] = time.time) -> None:
    """Raise Refusal unless S3 would accept this presigned request."""
    pairs = _query_pairs(environ.get("QUERY_STRING", ""))
    names = {name for name, _ in pairs}
    if "X-Amz-Signature" in names or "X-Amz-Credential" in names:
        _check_v4(environ, pairs, credentials, now())
    elif names & set(V2_PARAMETERS):
        _check_v2(environ, pairs, credentials, now())


def _check_v4(environ: dict[str, Any], pairs: list[tuple[str, str]],
              credentials: dict[str, str], now: float) -> None:
    values = dict(pairs)
    if any(name not in values for name in V4_PARAMETERS):
        raise _parameters_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            "X-Amz-Expires parameters.")
    if values["X-Amz-Algorithm"] != ALGORITHM:
        raise _parameters_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    scope = values["X-Amz-Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise _parameters_error(
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
    access_key, _, region, service, _ = scope
    secret = credentials.get(access_key)
    if secret is None:
        raise _unknown_key(access_key)
    bucket = _bucket(environ)
    if bucket is not None and region != bucket.region_name:
        raise Refusal("400 Bad Request", "AuthorizationQueryParametersError",
                      f"Error parsing the X-Amz-Credential parameter; the region '{region}' is "
                      f"wrong; expecting '{bucket.region_name}'", {"Region": bucket.region_name})
    try:
        signed_at = datetime.strptime(values["X-Amz-Date"], SIGV4_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise _parameters_error("X-Amz-Date must be in the ISO8601 Long Format "
                                "\"yyyyMMdd'T'HHmmss'Z'\"") from None
    expires = values["X-Amz-Expires"]
    if not expires.isdigit():
        raise _parameters_error("X-Amz-Expires should be a number")
    if int(expires) > MAX_EXPIRES_SECONDS:
        raise _parameters_error("X-Amz-Expires must be less than a week (in seconds) that is "
                                f"{MAX_EXPIRES_SECONDS}")
    signed = values["X-Amz-SignedHeaders"].split(";")
    unsigned = [name for name in _amz_headers(environ) if name not in signed]
    if unsigned:
        raise Refusal("403 Forbidden", "AccessDenied",
                      "There were headers present in the request which were not signed",
                      {"HeadersNotSigned": ", ".join(unsigned)})

    query = "&".join(f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
                     for name, value in pairs if name != "X-Amz-Signature")
    path = quote(unquote(_raw_path(environ)), safe="/~")
    headers = {name: _header(environ, name) or "" for name in signed}
    request = AWSRequest(method=environ["REQUEST_METHOD"],
                         url=f"http://{environ.get('HTTP_HOST', '')}{path}?{query}",
                         headers=headers)
    request.context["timestamp"] = values["X-Amz-Date"]
    signer = S3SigV4QueryAuth(ReadOnlyCredentials(access_key, secret, None), service, region,
                              expires=int(expires))
    canonical_request = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical_request)
    expected = signer.signature(string_to_sign, request)
    provided = values["X-Amz-Signature"]
    if not hmac.compare_digest(expected, provided):
        raise _no_match(access_key, string_to_sign, provided, canonical_request)
    expires_at = signed_at.timestamp() + int(expires)
    if now > expires_at:
        raise _expired(expires_at, now, {"X-Amz-Expires": expires})


class _SignedUntil(HmacV1QueryAuth):
    """SigV2's string to sign, with the URL's own `Expires` where a signer puts its clock's."""

    def __init__(self, credentials: ReadOnlyCredentials, expires: str) -> None:
        super().__init__(credentials)
        self._until = expires

    def _get_date(self) -> str:
        return self._until


def _check_v2(environ: dict[str, Any], pairs: list[tuple[str, str]],
              credentials: dict[str, str], now: float) -> None:
    values = dict(pairs)
    if any(name not in values for name in V2_PARAMETERS):
        raise Refusal("403 Forbidden", "AccessDenied", "Query-string authentication requires "
                      "the Signature, Expires and AWSAccessKeyId parameters")
    access_key = values["AWSAccessKeyId"]
    secret = credentials.get(access_key)
    if secret is None:
        raise _unknown_key(access_key)
    if not values["Expires"].isdigit():
        raise Refusal("403 Forbidden", "AccessDenied", "Invalid date (should be seconds since "
                      "epoch): " + values["Expires"])
    if now > int(values["Expires"]):
        raise _expired(int(values["Expires"]), now, {})
    headers = HTTPHeaders()
    for name in ("content-md5", "content-type", *_amz_headers(environ)):
        value = _header(environ, name)
        if value is not None:
            headers[name] = value
    query = environ.get("QUERY_STRING", "")
    split = urlsplit(f"http://{environ.get('HTTP_HOST', '')}{_raw_path(environ)}?{query}")
    signer = _SignedUntil(ReadOnlyCredentials(access_key, secret, None), values["Expires"])
    string_to_sign = signer.canonical_string(environ["REQUEST_METHOD"], split, headers)
    expected = signer.sign_string(string_to_sign)
    if not hmac.compare_digest(expected, values["Signature"]):
        raise _no_match(access_key, string_to_sign, values["Signature"])


def _bucket(environ: dict[str, Any]) -> Any:
    """moto's bucket named by a path-style request, or None."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    name = unquote(_raw_path(environ).lstrip("/").split("/", 1)[0])
    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets.get(name) if name else None


def _cors_headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The bucket's CORS headers for this request's Origin, as S3 adds them to an error."""
    origin = environ.get("HTTP_ORIGIN")
    if not origin:
        return []
    from moto.s3.utils import cors_matches_origin

    for rule in getattr(_bucket(environ), "cors", None) or []:
        if rule.allowed_origins and cors_matches_origin(origin, rule.allowed_origins):
            headers = [("Access-Control-Allow-Origin", origin)]
            if rule.allowed_methods:
                headers.append(("Access-Control-Allow-Methods", ", ".join(rule.allowed_methods)))
            if rule.exposed_headers:
                headers.append(("Access-Control-Expose-Headers",
                                ", ".join(rule.exposed_headers)))
            return headers
    return []


class PresignedUrls:
    """Wraps the endpoint's WSGI application: presigned S3 requests are checked first."""

    def __init__(self, application: WsgiApp,
                 credentials: dict[str, str] | None = None) -> None:
        self.application = application
        self.credentials = CREDENTIALS if credentials is None else credentials

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if not is_presigned(environ):
            return self.application(environ, start_response)
        try:
            check(environ, self.credentials)
        except Refusal as refusal:
            body = (b"" if environ.get("REQUEST_METHOD") == "HEAD"
                    else error_body(refusal.code, refusal.message, refusal.fields))
            start_response(refusal.status, [("Content-Type", "application/xml"),
                                            ("Content-Length", str(len(body))),
                                            *_cors_headers(environ)])
            return [body]
        return self.application(environ, start_response)
