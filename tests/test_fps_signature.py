"""Signature Version 2 of FPS requests: known answers, every refusal, and real boto 2.49.0.

Known answers come from two places: strings written out by hand from the rules of spec
``fps-api.md`` §2.2, and requests captured from boto 2.49.0 in ``clients.md`` §1.4/§1.6 (secret
``secretEXAMPLE``). When boto is installed (it is in the ``dev`` extras), a subprocess drives its
real ``FPSConnection`` and the requests it signs must verify here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boto_client import needs_boto, run_boto
from penny.fps.decode import parse_request, parse_urlencoded
from penny.fps.signature import (
    DEFAULT_WINDOW_US,
    SignatureFailure,
    SignatureMethod,
    VerifiedCaller,
    candidate_hosts,
    canonical_query,
    parse_timestamp,
    rfc3986,
    sign_v2,
    split_host_port,
    string_to_sign_v2,
    verify_request,
)
from penny.fps.wire import render_error, render_success

SECRET = "secretEXAMPLE"
KEY = "AKIDEXAMPLE"
HOST = "fps.example.com"
SECONDS = 1_000_000
#: 2026-11-24T07:12:50Z, the clock of the machine that captured the boto requests.
CAPTURE_US = 1_795_504_370 * SECONDS


def secrets(access_key_id: str) -> str | None:
    return {KEY: SECRET, "AKIDREVOKED": None}.get(access_key_id)


def signed(
    params: Mapping[str, str],
    *,
    method: str = "GET",
    host: str = HOST,
    path: str = "/",
    secret: str = SECRET,
    algorithm: SignatureMethod = "HmacSHA256",
    timestamp: str | None = "2026-11-24T07:12:50Z",
) -> dict[str, str]:
    """``params`` plus the authentication parameters and a correct Signature."""
    request = {
        "AWSAccessKeyId": KEY,
        "SignatureVersion": "2",
        "SignatureMethod": algorithm,
        "Version": "2010-08-28",
        **params,
    }
    if timestamp is not None:
        request["Timestamp"] = timestamp
    request["Signature"] = sign_v2(secret, method, host, path, request, algorithm)
    return request


def verify(
    params: Mapping[str, str],
    *,
    method: str = "GET",
    host: str = HOST,
    path: str = "/",
    now_us: int = CAPTURE_US,
    server_port: int | None = None,
) -> VerifiedCaller | SignatureFailure:
    return verify_request(
        method,
        host,
        path,
        params,
        secret_for=secrets,
        now_us=now_us,
        server_port=server_port,
    )


def failure(result: VerifiedCaller | SignatureFailure) -> SignatureFailure:
    assert isinstance(result, SignatureFailure), result
    return result


# -- known answers: the string to sign -------------------------------------------------------


#: A boto-style GET with awkward characters.
AWKWARD_GET = {
    "Version": "2010-08-28",
    "Timestamp": "2026-11-24T07:12:50Z",
    "SignatureVersion": "2",
    "SignatureMethod": "HmacSHA256",
    "SenderTokenId": "SENDER TOKEN+/é",
    "SenderDescription": "",
    "CallerReference": "ref ~*+",
    "CallerDescription": "café ☕ a=b&c",
    "Action": "Pay",
    "AWSAccessKeyId": "AKIDEXAMPLE",
    "lowercase": "sorts last",
    "Signature": "is never part of it",
}

#: As the PHP library posts it (http_build_query: spaces as "+", "~" as %7E) and in the order
#: it happens to send; the signature depends on neither.
PHP_STYLE_FORM = (
    b"Action=SettleDebt&AWSAccessKeyId=AKIDEXAMPLE&SettlementAmount.Value=5.00"
    b"&SettlementAmount.CurrencyCode=USD"
    b"&CallerDescription=Debt+settlement+%2B+fee%2A%7E&CreditInstrumentId=CREDIT%2FINSTR"
    b"&SenderTokenId=SETTLETOKEN&CallerReference=r%C3%A9f-1&SignatureVersion=2"
    b"&SignatureMethod=HmacSHA1&Timestamp=2010-08-28T12%3A00%3A00.000Z&Version=2010-08-28"
)


def test_a_php_style_form_decodes_plus_as_a_space() -> None:
    params = parse_request(
        "POST", b"", PHP_STYLE_FORM, "application/x-www-form-urlencoded; charset=utf-8"
    )
    assert isinstance(params, dict)
    assert params["CallerDescription"] == "Debt settlement + fee*~"


def test_path_is_encoded_with_slashes_kept_and_empty_means_root() -> None:
    assert string_to_sign_v2("GET", "h", "", {}) == "GET\nh\n/\n"
    assert string_to_sign_v2("GET", "h", "/fps/a b~é", {"A": "1"}) == (
        "GET\nh\n/fps/a%20b~%C3%A9\nA=1"
    )


def test_encoding_and_ordering_rules() -> None:
    assert rfc3986("AZaz09-_.~") == "AZaz09-_.~"
    assert rfc3986(" !\"#$%&'()*+,/:;=?@[]") == (
        "%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D"
    )
    assert rfc3986("\u00e9\U0001f600") == "%C3%A9%F0%9F%98%80"
    # Byte order, not case-insensitive order; a name with a space is encoded too.
    assert canonical_query({"b": "1", "B": "2", "a b": "3", "Signature": "x"}) == (
        "B=2&a%20b=3&b=1"
    )
    # The CBUI leaves out "signature" instead (spec §2.4).
    assert canonical_query({"signature": "x", "Signature": "y"}, "signature") == "Signature=y"


# -- known answers: signatures captured from boto 2.49.0 (clients.md §1.4, §1.6) --------------

BOTO_CAPTURES = {
    "Pay": (
        b"AWSAccessKeyId=AKIDEXAMPLE&Action=Pay&CallerReference=ref-pay-1"
        b"&SenderTokenId=SENDERTOKEN&SignatureMethod=HmacSHA256&SignatureVersion=2"
        b"&Timestamp=2026-11-24T07%3A12%3A50Z&TransactionAmount.CurrencyCode=USD"
        b"&TransactionAmount.Value=1.5&Version=2010-08-28"
        b"&Signature=nMB8iHlsB6BHvM%2BnjQfgSFXGLIaf5PHZnkIBtGtYQYc%3D"
    ),
    "SettleDebt": (
        b"AWSAccessKeyId=AKIDEXAMPLE&Action=SettleDebt&CallerReference=ref-settle-1"
        b"&CreditInstrumentId=CREDITINSTR&SenderTokenId=SETTLETOKEN"
        b"&SettlementAmount.CurrencyCode=USD&SettlementAmount.Value=5"
        b"&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-24T07%3A12%3A50Z"
        b"&Version=2010-08-28&Signature=Mb8XOr34OAs0oMYi%2F%2Fp9yzzsnBgSvuzfGdSrNv36%2BFM%3D"
    ),
    "GetDebtBalance": (
        b"AWSAccessKeyId=AKIDEXAMPLE&Action=GetDebtBalance&CreditInstrumentId=CREDITINSTR"
        b"&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-24T07%3A12%3A50Z"
        b"&Version=2010-08-28&Signature=eWiBlVT3oKZSGQTpKJmDsA2jPV%2Ff87DQltTGk%2B4KBaw%3D"
    ),
    "FundPrepaid": (
        b"AWSAccessKeyId=AKIDEXAMPLE&Action=FundPrepaid&CallerReference=ref-fund-1"
        b"&FundingAmount.CurrencyCode=USD&FundingAmount.Value=10.00"
        b"&PrepaidInstrumentId=PREPAIDINSTR&SenderTokenId=FUNDTOKEN&SignatureMethod=HmacSHA256"
        b"&SignatureVersion=2&Timestamp=2026-11-24T07%3A12%3A50Z&Version=2010-08-28"
        b"&Signature=9%2FEYF5d12xjrD50tEbWdu3h0f3xufQ51yzeg6%2FpltRw%3D"
    ),
}


def test_capture_clock_is_the_capture_timestamp() -> None:
    assert parse_timestamp("2026-11-24T07:12:50Z") == CAPTURE_US


@pytest.mark.parametrize("action", sorted(BOTO_CAPTURES))
def test_captured_boto_requests_verify(action: str) -> None:
    params = parse_request("GET", BOTO_CAPTURES[action], b"", None)
    assert isinstance(params, dict)
    assert sign_v2(SECRET, "GET", "127.0.0.1", "/", params) == params["Signature"]
    # boto sends "Host: 127.0.0.1" (no port); a Host header with the port verifies too.
    for host in ("127.0.0.1", "127.0.0.1:8080"):
        result = verify(params, host=host)
        assert result == VerifiedCaller(KEY, "HmacSHA256", "127.0.0.1")


def _form(raw: bytes) -> dict[str, str]:
    """A query string or form body as the server decodes it."""
    params = parse_urlencoded(raw)
    assert isinstance(params, dict)
    return params


STRINGS_TO_SIGN = [
    pytest.param(
        "get",
        "FPS.Example.COM",
        AWKWARD_GET,
        "GET\n"
        "fps.example.com\n"
        "/\n"
        "AWSAccessKeyId=AKIDEXAMPLE"
        "&Action=Pay"
        "&CallerDescription=caf%C3%A9%20%E2%98%95%20a%3Db%26c"
        "&CallerReference=ref%20~%2A%2B"
        "&SenderDescription="
        "&SenderTokenId=SENDER%20TOKEN%2B%2F%C3%A9"
        "&SignatureMethod=HmacSHA256"
        "&SignatureVersion=2"
        "&Timestamp=2026-11-24T07%3A12%3A50Z"
        "&Version=2010-08-28"
        "&lowercase=sorts%20last",
        id="boto-style-get-awkward-characters",
    ),
    pytest.param(
        "POST",
        "fps.example.com",
        _form(PHP_STYLE_FORM),
        "POST\n"
        "fps.example.com\n"
        "/\n"
        "AWSAccessKeyId=AKIDEXAMPLE"
        "&Action=SettleDebt"
        "&CallerDescription=Debt%20settlement%20%2B%20fee%2A~"
        "&CallerReference=r%C3%A9f-1"
        "&CreditInstrumentId=CREDIT%2FINSTR"
        "&SenderTokenId=SETTLETOKEN"
        "&SettlementAmount.CurrencyCode=USD"
        "&SettlementAmount.Value=5.00"
        "&SignatureMethod=HmacSHA1"
        "&SignatureVersion=2"
        "&Timestamp=2010-08-28T12%3A00%3A00.000Z"
        "&Version=2010-08-28",
        id="php-style-post-form",
    ),
    pytest.param(
        "GET",
        "127.0.0.1",
        _form(BOTO_CAPTURES["Pay"]),
        "GET\n127.0.0.1\n/\n"
        "AWSAccessKeyId=AKIDEXAMPLE&Action=Pay&CallerReference=ref-pay-1"
        "&SenderTokenId=SENDERTOKEN&SignatureMethod=HmacSHA256&SignatureVersion=2"
        "&Timestamp=2026-11-24T07%3A12%3A50Z&TransactionAmount.CurrencyCode=USD"
        "&TransactionAmount.Value=1.5&Version=2010-08-28",
        id="boto-captured-pay",
    ),
]


@pytest.mark.parametrize(("method", "host", "params", "expected"), STRINGS_TO_SIGN)
def test_string_to_sign(method: str, host: str, params: Mapping[str, str], expected: str) -> None:
    """Hand-written from spec §2.2 (the first two) and boto's captured Pay: the host in lower
    case, ``Signature`` left out, names in byte order, RFC 3986 encoding."""
    assert string_to_sign_v2(method, host, "/", params) == expected


def test_captured_boto_cbui_url_signature() -> None:
    query = (
        b"CallerReference=55d5cdb2-5d96-4219-83b1-fb8106ff7583&callerKey=AKIDEXAMPLE"
        b"&callerReference=cbui-ref-1&creditInstrumentReference=ci-1&globalAmountLimit=100"
        b"&pipelineName=SetupPostpaid&returnURL=http%3A%2F%2Flocalhost%2Fr"
        b"&senderTokenReference=st-1&settlementTokenReference=set-1"
        b"&signature=KS5Jqv2XP9hzaKWXx0aiMP%2B%2FkGajgnq9LmqTenhuajA%3D"
        b"&signatureMethod=HmacSHA256&signatureVersion=2&usageLimitType1=Amount"
        b"&usageLimitValue1=50"
    )
    params = parse_urlencoded(query)
    assert isinstance(params, dict)
    computed = sign_v2(
        SECRET,
        "GET",
        "authorize.payments.amazon.com",
        "/cobranded-ui/actions/start",
        params,
        signature_name="signature",
    )
    assert computed == params["signature"]


def test_hmac_sha1_known_answer() -> None:
    # HMAC-SHA1("secretEXAMPLE", "GET\nh\n/\nA=1"), computed once with openssl:
    # printf 'GET\nh\n/\nA=1' | openssl dgst -sha1 -hmac secretEXAMPLE -binary | base64
    assert sign_v2(SECRET, "GET", "h", "/", {"A": "1"}, "HmacSHA1") == (
        "Q8P3NFasYYDeR8KQQLJ5/gqXXEo="
    )


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["HmacSHA256", "HmacSHA1"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_sign_then_verify(algorithm: SignatureMethod, method: str) -> None:
    params = signed(
        {"Action": "Pay", "CallerDescription": "thé + ~*"}, method=method, algorithm=algorithm
    )
    assert verify(params, method=method) == VerifiedCaller(KEY, algorithm, HOST)
    assert verify(params, method=method.lower()) == VerifiedCaller(KEY, algorithm, HOST)


def test_host_is_case_insensitive() -> None:
    params = signed({"Action": "Pay"}, host="FPS.example.com")
    assert isinstance(verify(params, host="fps.EXAMPLE.com"), VerifiedCaller)


def test_a_plus_that_arrived_as_a_space_is_tolerated() -> None:
    params = signed({"Action": "Pay"})
    params["Signature"] = params["Signature"].replace("+", " ")
    assert isinstance(verify(params), VerifiedCaller)


# -- hosts and ports ---------------------------------------------------------------------------


def test_split_host_port() -> None:
    assert split_host_port("example.com:8443") == ("example.com", "8443")
    assert split_host_port("example.com") == ("example.com", None)
    assert split_host_port("[::1]:8080") == ("[::1]", "8080")
    assert split_host_port("[::1]") == ("[::1]", None)
    assert split_host_port("example.com:http") == ("example.com:http", None)


def test_candidate_hosts() -> None:
    assert candidate_hosts("h:8443") == ("h:8443", "h")
    assert candidate_hosts("h:8443", 9000) == ("h:8443", "h")
    assert candidate_hosts("h") == ("h",)
    assert candidate_hosts("h", 8443) == ("h", "h:8443")


def test_signed_without_port_received_with_port() -> None:
    params = signed({"Action": "Pay"}, host=HOST)
    assert verify(params, host=f"{HOST}:8443") == VerifiedCaller(KEY, "HmacSHA256", HOST)


def test_signed_with_port_received_with_port() -> None:
    params = signed({"Action": "Pay"}, host=f"{HOST}:8443")
    result = verify(params, host=f"{HOST}:8443")
    assert result == VerifiedCaller(KEY, "HmacSHA256", f"{HOST}:8443")


def test_signed_with_port_received_without_port_needs_the_server_port() -> None:
    params = signed({"Action": "Pay"}, host=f"{HOST}:8443")
    assert failure(verify(params, host=HOST)).code == "SignatureDoesNotMatch"
    result = verify(params, host=HOST, server_port=8443)
    assert result == VerifiedCaller(KEY, "HmacSHA256", f"{HOST}:8443")


def test_signed_for_another_host_fails() -> None:
    params = signed({"Action": "Pay"}, host="other.example.com")
    assert failure(verify(params, host=f"{HOST}:8443")).code == "SignatureDoesNotMatch"


def test_ipv6_host_with_port() -> None:
    params = signed({"Action": "Pay"}, host="[::1]")
    assert verify(params, host="[::1]:8080") == VerifiedCaller(KEY, "HmacSHA256", "[::1]")


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["AWSAccessKeyId", "Signature", "SignatureVersion", "SignatureMethod"]
)
@pytest.mark.parametrize("absent", [True, False], ids=["absent", "empty"])
def test_missing_authentication_parameter(name: str, absent: bool) -> None:
    params = signed({"Action": "Pay"})
    if absent:
        del params[name]
    else:
        params[name] = ""
    result = failure(verify(params))
    assert (result.code, result.http_status) == ("MissingParameter", 400)
    assert result.message == f"The request must contain the parameter {name}."


def test_missing_timestamp_and_expires() -> None:
    params = signed({"Action": "Pay"}, timestamp=None)
    result = failure(verify(params))
    assert result.code == "MissingParameter"
    assert "Timestamp or Expires" in result.message


@pytest.mark.parametrize("version", ["1", "0", "3", "2.0"])
def test_unsupported_signature_version(version: str) -> None:
    params = signed({"Action": "Pay", "SignatureVersion": version})
    result = failure(verify(params))
    assert (result.code, result.http_status) == ("InvalidParameterValue", 400)
    assert result.message.startswith(
        f"Value ({version}) for parameter SignatureVersion is invalid."
    )


@pytest.mark.parametrize("method", ["HmacMD5", "hmacsha256", "RSA-SHA1"])
def test_unsupported_signature_method(method: str) -> None:
    params = signed({"Action": "Pay"})
    params["SignatureMethod"] = method
    result = failure(verify(params))
    assert result.code == "InvalidParameterValue"
    assert "HmacSHA256 and HmacSHA1" in result.message


@pytest.mark.parametrize("key", ["AKIDUNKNOWN", "AKIDREVOKED"])
def test_unknown_or_revoked_key(key: str) -> None:
    params = signed({"Action": "Pay", "AWSAccessKeyId": key})
    result = failure(verify(params))
    assert (result.code, result.http_status) == ("InvalidClientTokenId", 403)


def test_wrong_secret_names_the_string_to_sign_but_not_the_secret() -> None:
    params = signed({"Action": "Pay"}, secret="not-the-secret")
    result = failure(verify(params, host=f"{HOST}:8443"))
    assert (result.code, result.http_status) == ("SignatureDoesNotMatch", 403)
    assert result.message.startswith("The request signature we calculated does not match")
    assert string_to_sign_v2("GET", f"{HOST}:8443", "/", params) in result.message
    assert f"host {HOST} was tried too" in result.message
    assert SECRET not in result.message
    assert "not-the-secret" not in result.message
    assert sign_v2(SECRET, "GET", HOST, "/", params) not in result.message


def test_altered_added_and_removed_parameters_fail() -> None:
    params = signed({"Action": "Pay", "TransactionAmount.Value": "1.00"})
    altered = {**params, "TransactionAmount.Value": "100.00"}
    added = {**params, "RecipientTokenId": "X"}
    removed = {name: value for name, value in params.items() if name != "Version"}
    for tampered in (altered, added, removed):
        assert failure(verify(tampered)).code == "SignatureDoesNotMatch"


def test_other_method_or_path_fails() -> None:
    params = signed({"Action": "Pay"})
    assert failure(verify(params, method="POST")).code == "SignatureDoesNotMatch"
    assert failure(verify(params, path="/fps")).code == "SignatureDoesNotMatch"


def test_a_malformed_request_never_looks_up_the_key() -> None:
    asked: list[str] = []

    def recording(key: str) -> str | None:
        asked.append(key)
        return SECRET

    params = signed({"Action": "Pay"}, timestamp="2000-01-01T00:00:00Z")
    result = verify_request("GET", HOST, "/", params, secret_for=recording, now_us=CAPTURE_US)
    assert failure(result).code == "RequestExpired"
    assert asked == []


# -- timestamps --------------------------------------------------------------------------------

CAPTURE = "2026-11-24T07:12:50"


@pytest.mark.parametrize(
    ("text", "offset_us"),
    [
        (f"{CAPTURE}Z", 0),  # boto
        (f"{CAPTURE}.000Z", 0),  # Java, PHP
        (f"{CAPTURE}.123Z", 123_000),
        (f"{CAPTURE}.1Z", 100_000),
        (f"{CAPTURE}.123456789Z", 123_456),  # truncated to microseconds
        (f"{CAPTURE}+00:00", 0),
        (f"{CAPTURE}+0000", 0),
        (f"{CAPTURE}", 0),  # no zone: UTC
        ("2026-11-24T00:12:50-07:00", 0),  # Ruby's Time#iso8601, Pacific time
        ("2026-11-24T12:42:50+05:30", 0),
        ("2026-11-24T09:12:50+02", 0),
    ],
)
def test_timestamp_forms(text: str, offset_us: int) -> None:
    assert parse_timestamp(text) == CAPTURE_US + offset_us
    params = signed({"Action": "Pay"}, timestamp=text)
    assert isinstance(verify(params), VerifiedCaller)


@pytest.mark.parametrize(
    "text",
    [
        "2010-02-26 T19:48:05.000Z",  # the real malformed Timestamp of spec §2.1
        "2010-02-26T19:48:05.000z",
        "2010-02-30T00:00:00Z",
        "2010-02-26T24:00:00Z",
        "2010-02-26T19:48:60Z",
        "2010-02-26T19:48:05+24:00",
        "2010-02-26T19:48:05+05:60",
        "2010-02-26T19:48:05.Z",
        "2010-02-26",
        "1267213685",
        "yesterday",
        "0000-01-01T00:00:00Z",
        "٢٠١٠-02-26T19:48:05Z",
    ],
)
def test_malformed_timestamp(text: str) -> None:
    assert parse_timestamp(text) is None
    params = signed({"Action": "Pay"}, timestamp=text)
    result = failure(verify(params))
    assert result.code == "InvalidParameterValue"
    assert result.message == (
        f"Value ({text}) for parameter Timestamp is invalid. Must be in ISO8601 format."
    )


def test_timestamp_window_edges() -> None:
    params = signed({"Action": "Pay"})
    for now in (CAPTURE_US - DEFAULT_WINDOW_US, CAPTURE_US + DEFAULT_WINDOW_US):
        assert isinstance(verify(params, now_us=now), VerifiedCaller)
    too_old = failure(verify(params, now_us=CAPTURE_US + DEFAULT_WINDOW_US + 1))
    assert too_old.code == "RequestExpired"
    assert too_old.message.startswith(
        "Request has expired. Timestamp date is 2026-11-24T07:12:50Z; the server's time is "
        "2026-11-24T07:27:50.000+00:00"
    )
    too_new = failure(verify(params, now_us=CAPTURE_US - DEFAULT_WINDOW_US - 1))
    assert too_new.code == "RequestExpired"
    assert too_new.message.startswith("Request timestamp is too far in the future.")


def test_custom_window() -> None:
    params = signed({"Action": "Pay"})
    late = CAPTURE_US + 61 * SECONDS
    result = verify_request(
        "GET", HOST, "/", params, secret_for=secrets, now_us=late, window_us=60 * SECONDS
    )
    assert failure(result).code == "RequestExpired"
    assert "at most 60 seconds" in failure(result).message


def test_expires_instead_of_timestamp() -> None:
    params = signed({"Action": "Pay", "Expires": "2026-11-24T08:00:00Z"}, timestamp=None)
    assert isinstance(verify(params), VerifiedCaller)
    # Expires is not bound by the window: only its passing matters.
    assert isinstance(verify(params, now_us=CAPTURE_US - 86_400 * SECONDS), VerifiedCaller)
    past = failure(verify(params, now_us=CAPTURE_US + 3600 * SECONDS))
    assert past.code == "RequestExpired"
    assert past.message.startswith("Request has expired. Expires date is 2026-11-24T08:00:00Z")


def test_malformed_expires() -> None:
    params = signed({"Action": "Pay", "Expires": "tomorrow"}, timestamp=None)
    result = failure(verify(params))
    assert result.code == "InvalidParameterValue"
    assert "parameter Expires" in result.message


def test_timestamp_and_expires_together() -> None:
    params = signed({"Action": "Pay", "Expires": "2026-11-24T08:00:00Z"})
    assert failure(verify(params)).code == "InvalidParameterCombination"


# -- properties --------------------------------------------------------------------------------

AUTH_NAMES = frozenset(
    {
        "AWSAccessKeyId",
        "Signature",
        "SignatureVersion",
        "SignatureMethod",
        "Timestamp",
        "Expires",
        "Version",
    }
)
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
NAMES = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(
    lambda name: name not in AUTH_NAMES
)
EXTRA = st.dictionaries(NAMES, TEXT, max_size=8)
ALGORITHMS = st.sampled_from(["HmacSHA256", "HmacSHA1"])


@settings(max_examples=150, deadline=None)
@given(extra=EXTRA, algorithm=ALGORITHMS, method=st.sampled_from(["GET", "POST"]))
def test_property_anything_signed_verifies(
    extra: dict[str, str], algorithm: SignatureMethod, method: str
) -> None:
    params = signed(extra, algorithm=algorithm, method=method)
    assert verify(params, method=method) == VerifiedCaller(KEY, algorithm, HOST)


@settings(max_examples=150, deadline=None)
@given(extra=EXTRA, data=st.data())
def test_property_changing_one_value_fails(extra: dict[str, str], data: st.DataObject) -> None:
    params = signed(extra)
    name = data.draw(st.sampled_from(sorted(set(params) - {"Signature"})))
    value = data.draw(TEXT.filter(lambda new: new != params[name]))
    assert isinstance(verify({**params, name: value}), SignatureFailure)


@settings(max_examples=150, deadline=None)
@given(extra=EXTRA, data=st.data())
def test_property_adding_a_parameter_fails(extra: dict[str, str], data: st.DataObject) -> None:
    params = signed(extra)
    name = data.draw(NAMES.filter(lambda new: new not in params))
    value = data.draw(TEXT)
    assert failure(verify({**params, name: value})).code == "SignatureDoesNotMatch"


@settings(max_examples=100, deadline=None)
@given(extra=EXTRA)
def test_property_signed_parameters_survive_the_wire(extra: dict[str, str]) -> None:
    """Encode a signed request as a GET query string, parse it back, and it still verifies."""
    params = signed(extra)
    query = "&".join(f"{rfc3986(name)}={rfc3986(value)}" for name, value in params.items())
    parsed = parse_request("GET", query.encode("ascii"), b"", None)
    assert parsed == params
    assert isinstance(verify(parsed), VerifiedCaller)


# -- the real boto 2.49.0 ----------------------------------------------------------------------

#: Runs in a subprocess so that boto's Python 2 leftovers (its vendored six importer, the
#: deprecated ``imp``) never touch this interpreter's warnings filters or import machinery.
#: The shim is the one of clients.md §1.2. ``_mexe`` is replaced: boto authorizes the request
#: exactly as before sending, and gets our response bodies back instead of a socket.
BOTO_DRIVER = r"""

job = json.load(sys.stdin)
conn = m.FPSConnection(
    aws_access_key_id=job["key"], aws_secret_access_key=job["secret"],
    host="127.0.0.1", port=job["port"], is_secure=False, path=job["path"],
)
conn.num_retries = 0
sent = []
replies = [(200, job["success"]), (400, job["error"])]


class Reply:
    def __init__(self, status, body):
        self.status, self.reason, self._body = status, "", body.encode("utf-8")

    def read(self):
        return self._body

    def getheader(self, name, default=None):
        return default

    def getheaders(self):
        return []


def fake_mexe(request, *args, **kwargs):
    request.authorize(connection=conn)
    if not request.headers.get("Host"):
        conn.set_host_header(request)
    sent.append({"method": request.method, "path": request.path,
                 "host": request.headers["Host"]})
    return Reply(*replies.pop(0))


conn._mexe = fake_mexe
out = {}
pay = conn.pay(
    SenderTokenId="SENDER TOKEN+/é", TransactionAmount="1.50",
    CallerReference="ref ~*'", SenderDescription="a b&c=d ☕",
)
out["pay"] = [pay.PayResult.TransactionId, pay.PayResult.TransactionStatus,
              pay.ResponseMetadata.RequestId]
try:
    conn.settle_debt(CreditInstrumentId="CI", SenderTokenId="ST", SettlementAmount="5")
except Exception as error:
    out["error"] = [type(error).__name__, error.status, error.error_code,
                    error.request_id, bool(error.retry)]
out["sent"] = sent
print(json.dumps(out))
"""


def run_fake_boto(port: int, path: str, tmp_path: Path) -> dict[str, object]:
    success = render_success(
        "Pay",
        "2010-08-28",
        "<TransactionId>14GK6BGKA7U6OU6SUTNLBI5SBBV9PGDJ6UL</TransactionId>"
        "<TransactionStatus>Success</TransactionStatus>",
        "c21e7735-9c08-4cd8-99bf-535a848c79b4",
    )
    error = render_error(
        "InsufficientBalance",
        "The transaction exceeds the account/instrument limits.",
        "c095300c-8462-4576-b4af-127c5e24a84a",
    )
    job = {
        "key": KEY,
        "secret": SECRET,
        "port": port,
        "path": path,
        "success": success.decode("utf-8"),
        "error": error.decode("utf-8"),
    }
    return run_boto(BOTO_DRIVER, job, tmp_path)


@needs_boto
@pytest.mark.parametrize(("port", "path"), [(8080, "/"), (80, "/"), (8443, "/fps")])
def test_real_boto_requests_verify_and_boto_parses_our_envelopes(
    port: int, path: str, tmp_path: Path
) -> None:
    out = run_fake_boto(port, path, tmp_path)
    assert out["pay"] == [
        "14GK6BGKA7U6OU6SUTNLBI5SBBV9PGDJ6UL",
        "Success",
        "c21e7735-9c08-4cd8-99bf-535a848c79b4:0",
    ]
    assert out["error"] == [
        "InsufficientBalance",
        400,
        "InsufficientBalance",
        "c095300c-8462-4576-b4af-127c5e24a84a",
        True,
    ]
    sent = out["sent"]
    assert isinstance(sent, list)
    assert len(sent) == 2
    now = time.time_ns() // 1000
    for request in sent:
        request_path, _, query = request["path"].partition("?")
        assert request["method"] == "GET"
        assert request["host"] == "127.0.0.1"  # boto drops the port from the Host header
        params = parse_request("GET", query.encode("ascii"), b"", None)
        assert isinstance(params, dict)
        for host in ("127.0.0.1", f"127.0.0.1:{port}"):
            result = verify_request(
                "GET", host, request_path, params, secret_for=secrets, now_us=now
            )
            assert result == VerifiedCaller(KEY, "HmacSHA256", "127.0.0.1"), result
        tampered = {**params, "Action": "Refund"}
        result = verify_request(
            "GET", "127.0.0.1", request_path, tampered, secret_for=secrets, now_us=now
        )
        assert isinstance(result, SignatureFailure)
    pay_request = parse_request("GET", sent[0]["path"].partition("?")[2].encode(), b"", None)
    assert isinstance(pay_request, dict)
    assert pay_request["SenderTokenId"] == "SENDER TOKEN+/é"
    assert pay_request["SenderDescription"] == "a b&c=d ☕"
    assert pay_request["CallerReference"] == "ref ~*'"
    assert pay_request["TransactionAmount.Value"] == "1.50"
