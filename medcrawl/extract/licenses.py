"""Licence declarations to SPDX identifiers: the one place that reads Creative Commons URLs and names.

``spdx_id`` takes one declared value (a creativecommons.org URL, a badge image URL, a name such as
"CC BY-NC-SA 4.0" or "Creative Commons Attribution 4.0 International", or an SPDX identifier) and
gives its SPDX identifier, or '' when the value names no licence this module knows or leaves out
the version (an SPDX identifier needs one). ``license_in_text`` finds a Creative Commons URL or
sentence inside running text (a PDF page, a copyright line).
"""

from __future__ import annotations

import json
import re
from urllib.parse import urljoin

from lxml import etree
from parsel import Selector

# The Creative Commons licences SPDX lists with a jurisdiction ("ported"); any other port is given
# the identifier of the same licence and version without one.
PORTED = frozenset({
    "CC-BY-2.5-AU", "CC-BY-3.0-AT", "CC-BY-3.0-AU", "CC-BY-3.0-DE", "CC-BY-3.0-IGO", "CC-BY-3.0-NL",
    "CC-BY-3.0-US", "CC-BY-NC-3.0-DE", "CC-BY-NC-ND-3.0-DE", "CC-BY-NC-ND-3.0-IGO",
    "CC-BY-NC-SA-2.0-DE", "CC-BY-NC-SA-2.0-FR", "CC-BY-NC-SA-2.0-UK", "CC-BY-NC-SA-3.0-DE",
    "CC-BY-NC-SA-3.0-IGO", "CC-BY-ND-3.0-DE", "CC-BY-SA-2.0-UK", "CC-BY-SA-2.1-JP",
    "CC-BY-SA-3.0-AT", "CC-BY-SA-3.0-DE", "CC-BY-SA-3.0-IGO",
})
CC_VERSIONS = ("1.0", "2.0", "2.5", "3.0", "4.0")
# Licences other than Creative Commons, accepted when written as their SPDX identifier.
OTHER_IDS = {name.lower(): name for name in (
    "MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "GFDL-1.2", "GFDL-1.3", "ODbL-1.0",
    "OGL-UK-3.0", "etalab-2.0", "Unlicense", "CC-PDDC", "CC-PDM-1.0",
)}

_CC_URL = re.compile(
    r"creativecommons\.org/+(?:licen[cs]es?|publicdomain)/+([a-z-]+)/+(\d\.\d)?(?:/+([a-z]{2,3})(?=/|$|[^a-z]))?",
    re.I)
_BADGE_URL = re.compile(
    r"(?:i\.creativecommons\.org|licensebuttons\.net)/+[lp]/+([a-z-]+)/+(\d\.\d)(?:/+([a-z]{2,3})/)?", re.I)
_VERSION = re.compile(r"(?<![\d.])([1-4]\.[05])(?![\d])")
_IGO = re.compile(r"\bigo\b", re.I)
# "CC BY-NC-SA 4.0", "CC-BY 4.0", "cc by nc nd": the abbreviation and its terms.
_ABBREV = re.compile(r"\bcc[\s_-]*(by(?:[\s_-]*(?:nc|nd|sa)\b)*)", re.I)
_CC0 = re.compile(r"\bcc[\s_-]*(?:0|zero)(?:\b|_)", re.I)
_NAME = re.compile(r"creative\s*commons", re.I)
# In running text: a Creative Commons URL, else a name with what follows it in its sentence.
_URL_IN_TEXT = re.compile(r"(?:https?://)?(?:www\.)?creativecommons\.org/\S+", re.I)
_NAME_IN_TEXT = re.compile(
    r"creative\s*commons(?:\d\.\d|[^.;]){0,200}|\bcc[\s-]*(?:by|0|zero)\b[\w\s.-]{0,20}", re.I)


def spdx_id(value: str | None) -> str:
    """The SPDX identifier of one declared licence, or '' when it names none this module knows."""
    text = " ".join((value or "").split())
    if not text:
        return ""
    if text.lower() in OTHER_IDS:
        return OTHER_IDS[text.lower()]
    url = _BADGE_URL.search(text) or _CC_URL.search(text)
    if url:
        return _from_url(*url.groups())
    return _from_name(text)


def license_in_text(text: str | None) -> tuple[str, str]:
    """(SPDX identifier, URL as written) of the first Creative Commons licence that running text
    names; ('', '') when none is named with enough detail (terms and version)."""
    text = re.sub(r"/\s+(?=\d\.\d)", "/", text or "")     # a URL broken after a slash
    for match in _URL_IN_TEXT.finditer(text):
        url = match.group(0).rstrip(").,;]>'\"")
        if license := spdx_id(url):
            return license, url if url.lower().startswith("http") else "https://" + url
    for match in _NAME_IN_TEXT.finditer(text):
        if license := spdx_id(match.group(0)):
            return license, ""
    return "", ""


def _from_url(kind: str, version: str | None, port: str | None) -> str:
    kind = kind.lower().strip("-")
    if kind == "zero":
        return "CC0-1.0"
    if kind == "mark":
        return "CC-PDM-1.0"
    if kind == "publicdomain":
        return "CC-PDDC"
    if not version or version not in CC_VERSIONS or not _terms_ok(kind.split("-")):
        return ""
    return _with_port(f"CC-{kind.upper()}-{version}", port)


def _from_name(text: str) -> str:
    if _CC0.search(text) or (_NAME.search(text) and re.search(r"\bzero\b|public\s+domain\s+dedication", text, re.I)):
        return "CC0-1.0"
    if _NAME.search(text) and re.search(r"public\s+domain\s+mark", text, re.I):
        return "CC-PDM-1.0"
    port = "igo" if _IGO.search(text) else None
    found = _abbreviated(text) or (_spelled(text) if _NAME.search(text) else None)
    return _with_port(f"CC-{'-'.join(found[0]).upper()}-{found[1]}", port) if found else ""


def _abbreviated(text: str) -> tuple[list[str], str] | None:
    """Terms and version of "CC BY-NC 4.0" style names (the version after the terms)."""
    match = _ABBREV.search(text)
    version = _VERSION.search(text, match.end()) if match else None
    if not match or not version:
        return None
    terms = re.findall(r"by|nc|nd|sa", match.group(1).lower())
    return (terms, version.group(1)) if _terms_ok(terms) else None


def _spelled(text: str) -> tuple[list[str], str] | None:
    """Terms and version of "Creative Commons Attribution-NonCommercial-ShareAlike 4.0" style names;
    only words before the version count ("... 4.0 License, which permits non-commercial use")."""
    version = _VERSION.search(text)
    if not version:
        return None
    lower = text[:version.start()].lower()
    if "attribution" not in lower:
        return None
    terms = ["by"]
    if re.search(r"non[\s-]*commercial", lower):
        terms.append("nc")
    if re.search(r"no[\s-]*deriv", lower):
        terms.append("nd")
    if re.search(r"share[\s-]*alike", lower):
        terms.append("sa")
    return (terms, version.group(1)) if _terms_ok(terms) else None


def _terms_ok(terms: list[str]) -> bool:
    """by, optionally nc, then at most one of nd / sa: the six Creative Commons licences."""
    return (bool(terms) and terms[0] == "by" and len(set(terms)) == len(terms)
            and not {"nd", "sa"} <= set(terms) and set(terms) <= {"by", "nc", "nd", "sa"}
            and terms == sorted(terms, key=["by", "nc", "nd", "sa"].index))


def _with_port(base: str, port: str | None) -> str:
    ported = f"{base}-{port.upper()}" if port else ""
    if ported.endswith("-GB"):
        ported = ported[:-3] + "-UK"
    return ported if ported in PORTED else base


# --- Licences an HTML page declares --------------------------------------------------------------

_REL_LICENSE = ("contains(concat(' ', translate(normalize-space(@rel), 'LICENSE', 'license'), ' '),"
                " ' license ')")
_CC_LINK = ("contains(@href, 'creativecommons.org/licen') or contains(@href, 'creativecommons.org/publicdomain')"
            " or contains(@href, 'licensebuttons.net/')")
_CC_BADGE = "contains(@src, 'creativecommons.org/') or contains(@src, 'licensebuttons.net/')"
LICENSE_META = ("dc.rights", "dcterms.license", "dc.license", "dcterms.rights", "citation_license",
                "dc.rights.license", "license")
_META_XPATH = ("//meta[{}]/@content".format(" or ".join(
    f"translate(@name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')='{name}'"
    f" or translate(@property, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')='{name}'"
    for name in LICENSE_META)))
# Outside any <figure>: a figure's own licence link is its images' (figure_license).
_OUTSIDE_FIGURE = "not(ancestor::figure)"


def page_license(sel: Selector, base_url: str) -> tuple[str, str]:
    """(SPDX identifier, URL) of the licence a page declares, in this order: rel="license" links
    and anchors, licence meta tags (LICENSE_META), JSON-LD ``license``, Creative Commons links and
    badges. The first that names a known licence wins; else the first declared URL, with ''."""
    links = sel.xpath(f"//link[{_REL_LICENSE}]/@href | //a[{_REL_LICENSE} and {_OUTSIDE_FIGURE}]/@href").getall()
    declared = [*links, *sel.xpath(_META_XPATH).getall(), *_json_ld_licenses(sel),
                *sel.xpath(f"//a[({_CC_LINK}) and {_OUTSIDE_FIGURE}]/@href").getall(),
                *sel.xpath(f"//img[({_CC_BADGE}) and {_OUTSIDE_FIGURE}]/@src").getall()]
    return _first_known(declared, base_url)


def figure_license(figure: etree._Element | None, base_url: str) -> tuple[str, str] | None:
    """(SPDX identifier, URL) of a licence link inside a figure, or None when it has none (the
    page's licence then applies)."""
    if figure is None:
        return None
    declared = figure.xpath(f".//a[{_REL_LICENSE} or {_CC_LINK}]/@href | .//img[{_CC_BADGE}]/@src")
    return _first_known([str(value) for value in declared], base_url) if declared else None


def _first_known(declared: list[str], base_url: str) -> tuple[str, str]:
    first_url = ""
    for value in declared:
        value = " ".join(value.split())
        url = urljoin(base_url, value) if _looks_like_url(value) else ""
        if license := spdx_id(value):
            return license, url
        first_url = first_url or url
    return "", first_url


def _looks_like_url(value: str) -> bool:
    return bool(re.match(r"(?:https?:)?//|/|\.\.?/|[\w.-]+\.(?:org|net|com)/", value, re.I)) and " " not in value


def _json_ld_licenses(sel: Selector) -> list[str]:
    """``license`` values of the page's JSON-LD, shallowest first (strings or objects' url / @id / name)."""
    found: list[str] = []
    for script in sel.xpath("//script[@type='application/ld+json']/text()").getall():
        try:
            data = json.loads(script)
        except ValueError:
            continue
        level = [data]
        while level:
            nested: list = []
            for value in level:
                items = value if isinstance(value, list) else [value]
                for item in (i for i in items if isinstance(i, dict)):
                    found.extend(_license_values(item.get("license")))
                    nested.extend(v for k, v in item.items() if k != "license" and isinstance(v, (dict, list)))
            level = nested
    return found


def _license_values(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [str(v) for v in (value.get("url"), value.get("@id"), value.get("name")) if v]
    if isinstance(value, list):
        return [text for v in value for text in _license_values(v)]
    return []
