"""Traefik's frontend header and redirect labels: customRequestHeaders and customResponseHeaders, the
Strict-Transport-Security ones, and redirect.entryPoint / regex / replacement / permanent, parsed into a
segment and built into the service's HttpOptions."""

from __future__ import annotations

import pytest

from fastlb.marathon import traefik_labels as tlbl

from .test_access_labels import http, traefik

T = "traefik.frontend."


def segment(labels: dict[str, str]) -> tuple[tlbl.TraefikSegment, tuple[str, ...], tuple[str, ...]]:
    parsed = tlbl.parse_traefik_labels({"traefik.frontend.rule": "Host:a.example.com", **labels})
    (seg,) = parsed.segments
    return seg, parsed.errors, parsed.warnings


def test_custom_headers_are_pairs_with_go_canonical_names_and_trimmed_values() -> None:
    seg, errors, _ = segment({
        T + "headers.customRequestHeaders": "x-env: prod || X-DROP: ||user-agent:a:b",
        T + "headers.customResponseHeaders": "Server:fastlb",
    })
    assert errors == ()
    assert seg.request_headers == (("X-Env", "prod"), ("X-Drop", ""), ("User-Agent", "a:b"))
    assert seg.response_headers == (("Server", "fastlb"),)
    o = http(traefik({T + "headers.customRequestHeaders": "X-Env:prod||X-Drop:"}))
    assert o.request_headers == (("X-Env", "prod"), ("X-Drop", ""))


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("X-A:ok||X-B:bad\r\nInjected: 1", "line break"),
        ("X-A:bad\nvalue", "line break"),
        ("X-A:nul\0", "control character"),
        ("X A:v", "not a header field name"),
        ("novalue", "is not Name:value"),
        ("Content-Length:0", "fastlb's own"),
        ("Host:other.example.com", "fastlb's own"),
        ("X-A:1||x-a:2", "listed twice"),
    ],
)
def test_a_bad_custom_header_refuses_the_app_with_its_reason(value: str, words: str) -> None:
    _, errors, _ = segment({T + "headers.customRequestHeaders": value})
    assert len(errors) == 1 and "customRequestHeaders" in errors[0] and words in errors[0]
    assert "\r" not in errors[0] and "\n" not in errors[0]  # one line


def test_response_headers_may_set_host_but_not_framing() -> None:
    _, errors, _ = segment({T + "headers.customResponseHeaders": "Host:x||Transfer-Encoding:chunked"})
    assert len(errors) == 1 and "Transfer-Encoding" in errors[0]


def test_sts_is_served_forced_and_warned_about_when_not() -> None:
    seg, errors, warnings = segment({
        T + "headers.STSSeconds": "31536000", T + "headers.STSIncludeSubdomains": "true",
        T + "headers.STSPreload": "true", T + "headers.forceSTSHeader": "true",
    })
    assert errors == () and warnings == ()
    assert (seg.sts_seconds, seg.sts_include_subdomains, seg.sts_preload, seg.sts_plain) == (31536000, True, True, True)
    seg, errors, warnings = segment({T + "headers.STSSeconds": "60"})
    assert errors == () and (seg.sts_seconds, seg.sts_plain) == (60, False)
    # over TLS only, and fastlb has no TLS listener: the warning says no response carries it
    assert len(warnings) == 1 and "STSSeconds" in warnings[0] and "no TLS listener" in warnings[0]


@pytest.mark.parametrize(
    ("labels", "inert"),
    [
        ({T + "headers.STSSeconds": "0"}, T + "headers.STSSeconds"),
        ({T + "headers.STSSeconds": "60", T + "headers.isDevelopment": "true"}, T + "headers.STSSeconds"),
        ({T + "headers.STSPreload": "true"}, T + "headers.STSPreload"),
        ({T + "headers.forceSTSHeader": "true"}, T + "headers.forceSTSHeader"),
        ({T + "redirect.permanent": "true"}, T + "redirect.permanent"),
        ({T + "redirect.regex": "^http://(.*)"}, T + "redirect.regex"),  # Traefik needs both
        ({T + "redirect.replacement": "https://$1"}, T + "redirect.replacement"),
        ({T + "redirect.entryPoint": "https", T + "redirect.regex": "x", T + "redirect.replacement": "y"},
         T + "redirect.regex"),
        ({T + "headers.customRequestHeaders": " "}, T + "headers.customRequestHeaders"),
    ],
)
def test_a_label_that_has_no_effect_says_why(labels: dict[str, str], inert: str) -> None:
    seg, errors, warnings = segment(labels)
    assert errors == ()
    assert any(w.startswith(inert + ":") and w.endswith("ignored") for w in warnings), warnings
    assert (seg.sts_seconds, seg.redirect_regex) == (0, "")


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        ({T + "headers.STSSeconds": "soon"}, "not a number of seconds"),
        ({T + "headers.STSSeconds": "60", T + "headers.forceSTSHeader": "yes"}, "not a boolean"),
        ({T + "redirect.entryPoint": "https", T + "redirect.permanent": "yes"}, "not a boolean"),
        ({T + "redirect.entryPoint": "http"}, "would loop"),
        ({T + "redirect.entryPoint": "admin"}, "unknown entry point"),
        ({T + "redirect.regex": "^http://(", T + "redirect.replacement": "x"}, "not a POSIX extended regular"),
        ({T + "redirect.regex": r"^http://[\w.]+", T + "redirect.replacement": "x"}, "Go (RE2) syntax"),
        ({T + "redirect.regex": r"\s", T + "redirect.replacement": "x"}, "Go (RE2) syntax"),
        ({T + "redirect.regex": "(?P<h>x)", T + "redirect.replacement": "x"}, "Go (RE2) syntax"),
        ({T + "redirect.regex": "x", T + "redirect.replacement": "https://$host/"}, "a '$' is"),
        ({T + "redirect.regex": "x", T + "redirect.replacement": "https://a b/"}, "visible ASCII"),
    ],
)
def test_a_redirect_or_sts_label_fastlb_would_not_serve_as_written_is_an_error(
    labels: dict[str, str], words: str
) -> None:
    _, errors, _ = segment(labels)
    assert len(errors) == 1 and words in errors[0], errors


def test_redirects_are_built_into_the_service() -> None:
    o = http(traefik({T + "redirect.entryPoint": "https"}))
    assert (o.redirect_to_https, o.redirect_to_https_code) == (True, 302)
    o = http(traefik({T + "redirect.regex": "^http://([^/]*)/a/(.*)", T + "redirect.replacement": "https://$1/b/$2",
                      T + "redirect.permanent": "true"}))
    assert (o.redirect_regex, o.redirect_replacement, o.redirect_regex_code) == (
        "^http://([^/]*)/a/(.*)", "https://$1/b/$2", 301)
    assert not o.redirect_to_https


def test_a_segment_takes_its_own_and_the_defaults_headers() -> None:
    parsed = tlbl.parse_traefik_labels({
        "traefik.frontend.headers.customResponseHeaders": "X-Default:1",
        "traefik.web.frontend.rule": "Host:web.example.com",
        "traefik.api.frontend.rule": "Host:api.example.com",
        "traefik.api.frontend.headers.customResponseHeaders": "X-Api:1",
    })
    assert parsed.errors == ()
    got = {s.name: s.response_headers for s in parsed.segments}
    assert got == {"api": (("X-Api", "1"),), "web": (("X-Default", "1"),)}
