"""The FPS wire format: parsing GET/POST parameters, versions and actions, XML envelopes."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penny.domain.errors import FPS_ERRORS, Refusal
from penny.fps.decode import (
    MAX_NAME_BYTES,
    MAX_PARAMETERS,
    MAX_REQUEST_BYTES,
    MAX_VALUE_BYTES,
    parse_request,
    parse_urlencoded,
)
from penny.fps.wire import (
    ACTIONS_2008_09_17,
    ACTIONS_2010_08_28,
    SUPPORTED_VERSIONS,
    WireFault,
    Xml,
    action_of,
    amount_element,
    element,
    escape_attribute,
    escape_text,
    fps_amount,
    fps_datetime,
    leaf,
    namespace_for,
    new_request_id,
    refusal_error,
    render_error,
    render_success,
    version_of,
)
from penny.money import Money

FORM = "application/x-www-form-urlencoded"


def fault(result: object) -> WireFault:
    assert isinstance(result, WireFault), result
    return result


def params_of(result: dict[str, str] | WireFault) -> dict[str, str]:
    assert isinstance(result, dict), result
    return result


# -- parsing -----------------------------------------------------------------------------------


def test_get_query_string() -> None:
    parsed = parse_request("GET", b"Action=Pay&Version=2010-08-28", b"ignored=1", None)
    assert parsed == {"Action": "Pay", "Version": "2010-08-28"}


def test_plus_and_percent_20_are_spaces_and_percent_2b_is_plus() -> None:
    parsed = params_of(parse_urlencoded(b"a=x+y&b=x%20y&c=x%2By&d=%7E~%2a"))
    assert parsed == {"a": "x y", "b": "x y", "c": "x+y", "d": "~~*"}


def test_utf8_percent_encoded_and_raw() -> None:
    parsed = params_of(parse_urlencoded("a=caf%C3%A9&b=thé&c%C3%A9=1".encode()))
    assert parsed == {"a": "café", "b": "thé", "cé": "1"}


def test_empty_values_missing_equals_and_empty_segments() -> None:
    parsed = params_of(parse_urlencoded(b"a=&b&&c=1&d==x&"))
    assert parsed == {"a": "", "b": "", "c": "1", "d": "=x"}
    assert parse_urlencoded(b"") == {}


def test_names_are_case_sensitive() -> None:
    assert params_of(parse_urlencoded(b"signature=a&Signature=b")) == {
        "signature": "a",
        "Signature": "b",
    }


@pytest.mark.parametrize(
    "raw", [b"Action=Pay&Action=Pay", b"Action=Pay&Action=Refund", b"A%63tion=1&Action=2"]
)
def test_duplicated_names_are_refused(raw: bytes) -> None:
    result = fault(parse_urlencoded(raw))
    assert (result.code, result.http_status) == ("InvalidRequest", 400)
    assert "Action is given more than once" in result.message


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b"a=%FF", "not valid UTF-8"),
        (b"a=\xff", "not valid UTF-8"),
        (b"a=%C3", "not valid UTF-8"),
        (b"%ED%A0%80=1", "not valid UTF-8"),  # an encoded surrogate
        (b"a=%zz", "malformed %-escape"),
        (b"a=100%", "malformed %-escape"),
        (b"a=%4", "malformed %-escape"),
        (b"=1", "empty name"),
    ],
)
def test_malformed_bytes_are_refused(raw: bytes, what: str) -> None:
    result = fault(parse_urlencoded(raw))
    assert result.code == "InvalidRequest"
    assert what in result.message


def test_size_limit_of_the_whole_request() -> None:
    filler = b"a=" + b"x" * (MAX_REQUEST_BYTES - 2)
    assert len(filler) == MAX_REQUEST_BYTES
    assert isinstance(parse_urlencoded(filler), WireFault)  # too long a value, though
    just_fits = b"&".join(b"p%d=%s" % (i, b"x" * 300) for i in range(190))[:MAX_REQUEST_BYTES]
    assert isinstance(parse_urlencoded(just_fits), dict)
    result = fault(parse_urlencoded(b"a=1&" + b"b" * MAX_REQUEST_BYTES, "request body"))
    assert "request body is" in result.message
    assert str(MAX_REQUEST_BYTES) in result.message


def test_limit_on_the_number_of_parameters() -> None:
    enough = b"&".join(b"p%d=1" % i for i in range(MAX_PARAMETERS))
    assert len(params_of(parse_urlencoded(enough))) == MAX_PARAMETERS
    result = fault(parse_urlencoded(enough + b"&one=more"))
    assert f"more than {MAX_PARAMETERS} parameters" in result.message


def test_limit_on_a_value_counts_utf8_bytes() -> None:
    assert isinstance(parse_urlencoded(b"a=" + b"x" * MAX_VALUE_BYTES), dict)
    assert isinstance(parse_urlencoded(b"a=" + b"x" * (MAX_VALUE_BYTES + 1)), WireFault)
    half = MAX_VALUE_BYTES // 2
    assert isinstance(parse_urlencoded(b"a=" + b"%C3%A9" * half), dict)
    result = fault(parse_urlencoded(b"a=" + b"%C3%A9" * half + b"x"))
    assert "value of parameter a is longer" in result.message


def test_limit_on_a_name() -> None:
    assert isinstance(parse_urlencoded(b"n" * MAX_NAME_BYTES + b"=1"), dict)
    assert isinstance(parse_urlencoded(b"n" * (MAX_NAME_BYTES + 1) + b"=1"), WireFault)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        FORM,
        f"{FORM}; charset=utf-8",
        f"{FORM}; charset=UTF-8",
        'Application/X-WWW-Form-Urlencoded; charset="utf-8"',
    ],
)
def test_post_form_body(content_type: str | None) -> None:
    body = b"Action=Pay&CallerDescription=a+b%2Bc&Version=2010-08-28"
    assert parse_request("POST", b"", body, content_type) == {
        "Action": "Pay",
        "CallerDescription": "a b+c",
        "Version": "2010-08-28",
    }


@pytest.mark.parametrize(
    ("content_type", "what"),
    [
        ("text/xml; charset=utf-8", "Content-Type text/xml is not supported"),
        ("application/json", "not supported"),
        (f"{FORM}; charset=iso-8859-1", "Charset iso-8859-1 is not supported"),
    ],
)
def test_post_with_another_content_type_is_refused(content_type: str, what: str) -> None:
    result = fault(parse_request("POST", b"", b"Action=Pay", content_type))
    assert result.code == "InvalidRequest"
    assert what in result.message


def test_post_with_a_query_string_is_refused() -> None:
    result = fault(parse_request("POST", b"Action=Pay", b"Version=2010-08-28", FORM))
    assert result.code == "InvalidRequest"


def test_post_body_problems_are_reported() -> None:
    result = fault(parse_request("post", b"", b"a=1&a=2", FORM))
    assert result.code == "InvalidRequest"


def test_other_verbs_are_refused() -> None:
    result = fault(parse_request("PUT", b"", b"Action=Pay", FORM))
    assert (result.code, result.http_status) == ("InvalidRequest", 405)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=10),
        st.text(st.characters(codec="utf-8"), max_size=20),
        max_size=10,
    ),
    st.booleans(),
)
def test_property_form_encoding_round_trips(params: dict[str, str], plus: bool) -> None:
    encode = quote_plus if plus else quote
    raw = "&".join(
        f"{encode(name, safe='')}={encode(value, safe='')}" for name, value in params.items()
    )
    assert parse_urlencoded(raw.encode("ascii")) == params


# -- versions and actions ----------------------------------------------------------------------


def test_versions_and_namespaces() -> None:
    assert SUPPORTED_VERSIONS == ("2008-09-17", "2010-08-28")
    assert version_of({"Version": "2010-08-28"}) == "2010-08-28"
    assert version_of({"Version": "2008-09-17"}) == "2008-09-17"
    assert namespace_for("2008-09-17") == "http://fps.amazonaws.com/doc/2008-09-17/"
    assert namespace_for("2010-08-28") == "http://fps.amazonaws.com/doc/2010-08-28/"
    with pytest.raises(ValueError, match="unsupported"):
        namespace_for("2007-01-08")


def test_missing_and_unsupported_version() -> None:
    missing = fault(version_of({}))
    assert (missing.code, missing.message) == (
        "MissingParameter",
        "The request must contain the parameter Version.",
    )
    assert fault(version_of({"Version": ""})).code == "MissingParameter"
    old = fault(version_of({"Version": "2007-01-08"}))
    assert old.code == "InvalidParameterValue"
    assert old.message == (
        "Value (2007-01-08) for parameter Version is invalid. "
        "Supported versions are 2008-09-17, 2010-08-28."
    )


def test_actions() -> None:
    assert len(ACTIONS_2010_08_28) == 27
    added_in_2010 = ACTIONS_2010_08_28 - ACTIONS_2008_09_17
    assert added_in_2010 == {
        "GetRecipientVerificationStatus",
        "GetSubscriptionDetails",
        "GetTransactionsForSubscription",
    }
    assert action_of({"Action": "SettleDebt"}, "2008-09-17") == "SettleDebt"
    assert action_of({"Action": "GetSubscriptionDetails"}, "2010-08-28") == (
        "GetSubscriptionDetails"
    )


@pytest.mark.parametrize(
    ("params", "version", "code"),
    [
        ({}, "2010-08-28", "MissingParameter"),
        ({"Action": ""}, "2010-08-28", "MissingParameter"),
        ({"Action": "pay"}, "2010-08-28", "InvalidAction"),
        ({"Action": "GetAllPrepaidInstruments"}, "2010-08-28", "InvalidAction"),
        ({"Action": "GetSubscriptionDetails"}, "2008-09-17", "InvalidAction"),
    ],
)
def test_bad_actions(params: dict[str, str], version: str, code: str) -> None:
    result = fault(action_of(params, version))
    assert result.code == code
    if code == "InvalidAction":
        assert result.message == (
            f"The action {params['Action']} is not valid for this web service (version {version})."
        )


def test_new_request_id_is_a_uuid() -> None:
    first, second = new_request_id(), new_request_id()
    assert first != second
    assert str(uuid.UUID(first)) == first


def test_refusals_come_from_the_domain_table() -> None:
    for refusal, fps in FPS_ERRORS.items():
        error = refusal_error(refusal)
        assert (error.code, error.message) == (fps.code, fps.message)
        assert error.http_status == (503 if fps.code == "InternalError" else 400)
    specific = refusal_error(Refusal.invalid_params, "TransactionAmount.Value is missing.")
    assert (specific.code, specific.message) == (
        "InvalidParams",
        "TransactionAmount.Value is missing.",
    )


# -- envelopes ---------------------------------------------------------------------------------


def test_error_envelope_exact_bytes() -> None:
    body = render_error(
        "InsufficientBalance",
        "The transaction exceeds the account/instrument limits.",
        "c095300c-8462-4576-b4af-127c5e24a84a",
    )
    assert body == (
        b'<?xml version="1.0"?>\n'
        b"<Response><Errors><Error><Code>InsufficientBalance</Code>"
        b"<Message>The transaction exceeds the account/instrument limits.</Message>"
        b"</Error></Errors><RequestID>c095300c-8462-4576-b4af-127c5e24a84a</RequestID>"
        b"</Response>"
    )


def test_error_envelope_escapes_text() -> None:
    body = render_error("Code<&>", "a <b> & \"c\" 'd' ]]> é", "id&1")
    assert body == (
        b'<?xml version="1.0"?>\n'
        b"<Response><Errors><Error><Code>Code&lt;&amp;&gt;</Code>"
        b"<Message>a &lt;b&gt; &amp; \"c\" 'd' ]]&gt; \xc3\xa9</Message>"
        b"</Error></Errors><RequestID>id&amp;1</RequestID></Response>"
    )
    root = ET.fromstring(body)
    assert root.findtext("Errors/Error/Code") == "Code<&>"
    assert root.findtext("Errors/Error/Message") == "a <b> & \"c\" 'd' ]]> é"
    assert root.findtext("RequestID") == "id&1"


def test_characters_xml_cannot_carry_are_replaced() -> None:
    body = render_error("X", "nul\x00 bell\x07 cr\r tab\t nl\n \ud800 \ufffe ok\U0001f600", "r")
    message = ET.fromstring(body).findtext("Errors/Error/Message")
    assert message == "nul\ufffd bell\ufffd cr\r tab\t nl\n \ufffd \ufffd ok\U0001f600"


def test_escape_helpers() -> None:
    assert escape_text("<&>\"'") == "&lt;&amp;&gt;\"'"
    assert escape_attribute("<&>\"'") == "&lt;&amp;&gt;&quot;'"


@pytest.mark.parametrize("version", ["2008-09-17", "2010-08-28"])
def test_success_envelope_exact_bytes(version: str) -> None:
    body = render_success(
        "SettleDebt",
        version,
        leaf("TransactionId", "14GND25ZN3B7O49QVHNASTT98UOBN83NC92")
        + leaf("TransactionStatus", "Pending"),
        "9ddfbffc-f909-4628-b247-36a5ef3fc7f3",
    )
    assert body == (
        b'<?xml version="1.0"?>\n'
        b'<SettleDebtResponse xmlns="http://fps.amazonaws.com/doc/'
        + version.encode()
        + b'/"><SettleDebtResult><TransactionId>14GND25ZN3B7O49QVHNASTT98UOBN83NC92'
        b"</TransactionId><TransactionStatus>Pending</TransactionStatus></SettleDebtResult>"
        b"<ResponseMetadata><RequestId>9ddfbffc-f909-4628-b247-36a5ef3fc7f3:0</RequestId>"
        b"</ResponseMetadata></SettleDebtResponse>"
    )
    root = ET.fromstring(body)
    assert root.tag == f"{{http://fps.amazonaws.com/doc/{version}/}}SettleDebtResponse"


def test_success_envelope_without_result() -> None:
    body = render_success("CancelToken", "2010-08-28", None, "r")
    assert body == (
        b'<?xml version="1.0"?>\n'
        b'<CancelTokenResponse xmlns="http://fps.amazonaws.com/doc/2010-08-28/">'
        b"<ResponseMetadata><RequestId>r:0</RequestId></ResponseMetadata>"
        b"</CancelTokenResponse>"
    )


def test_success_envelope_refuses_bad_names_and_versions() -> None:
    with pytest.raises(ValueError, match="element name"):
        render_success("Pay><x", "2010-08-28", "", "r")
    with pytest.raises(ValueError, match="unsupported"):
        render_success("Pay", "2007-01-08", "", "r")


def test_element_builder_keeps_order_and_skips_absent_optionals() -> None:
    built = element(
        "Transaction",
        leaf("TransactionId", "T1"),
        None,
        element("StatusHistory", leaf("Date", "d1")),
        element("StatusHistory", leaf("Date", "d2")),
        leaf("CallerName", "Bob & Alice <shop>"),
    )
    assert built == (
        "<Transaction><TransactionId>T1</TransactionId>"
        "<StatusHistory><Date>d1</Date></StatusHistory>"
        "<StatusHistory><Date>d2</Date></StatusHistory>"
        "<CallerName>Bob &amp; Alice &lt;shop&gt;</CallerName></Transaction>"
    )
    assert element("Empty") == "<Empty></Empty>"
    with pytest.raises(ValueError, match="element name"):
        leaf("1abc", "x")
    with pytest.raises(ValueError, match="element name"):
        element("a b", Xml("<x/>"))


# -- amounts and dates -------------------------------------------------------------------------


def test_amounts() -> None:
    assert fps_amount(Money(100, "USD")) == "1.000000"
    assert fps_amount(Money(10, "USD")) == "0.100000"
    assert fps_amount(Money(0, "USD")) == "0.000000"
    assert fps_amount(Money(123_456_789, "USD")) == "1234567.890000"
    assert amount_element("FPSFees", Money(10, "USD")) == (
        "<FPSFees><CurrencyCode>USD</CurrencyCode><Value>0.100000</Value></FPSFees>"
    )


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "1970-01-01T00:00:00.000+00:00"),
        (1_254_808_208_010_000, "2009-10-06T05:50:08.010+00:00"),  # spec §4.1's -07:00 sample
        (1_254_808_208_010_999, "2009-10-06T05:50:08.010+00:00"),  # truncated, not rounded
        (1_254_808_208_999_999, "2009-10-06T05:50:08.999+00:00"),
        (-1, "1969-12-31T23:59:59.999+00:00"),
        (-61_000_000_000 * 1_000_000, "0036-12-26T11:33:20.000+00:00"),  # year padded
    ],
)
def test_dates(us: int, text: str) -> None:
    assert fps_datetime(us) == text
