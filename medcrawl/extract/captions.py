"""What an HTML page says about its images: alt, title, caption; the page's own title.

The caption of an image, first found wins: the ``figcaption`` of its enclosing ``figure``; the
elements its ``aria-describedby`` names; a caption-like element next to it (a class or id with
"caption" or "legend" in a container holding this one image, or a sibling that starts like
"Figure 3." / "Fig. 2"). Text is whitespace-normalised and cut at MAX_CAPTION characters.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from lxml import etree
from parsel import Selector

MAX_CAPTION = 2000
MAX_TITLE = 500
# How many wrapper elements (a, picture, span, div ...) an image may sit in below its caption's
# container, and how much text of their own they may have to count as mere wrappers.
MAX_CLIMB = 4
CAPTION_CLASS = re.compile(r"caption|legend", re.I)
CAPTION_START = re.compile(
    r"^(?:fig(?:ure)?s?\.?|image|img\.?|plate|scheme|illustration|photo|chart|abb\.?|abbildung)"
    r"\s*(?:[A-Z]?\d+|[IVX]+\b)", re.I)


@dataclass
class ImageText:
    """The words an image's own markup gives it."""

    alt: str = ""
    title: str = ""
    caption: str = ""


def clean_text(text: str | None, limit: int = MAX_CAPTION) -> str:
    """Whitespace collapsed, cut at ``limit`` characters (with an ellipsis)."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def page_title(sel: Selector) -> str:
    """The page's <title>, else its og:title."""
    title = clean_text(" ".join(sel.xpath("(//title)[1]//text()").getall()), MAX_TITLE)
    return title or clean_text(sel.xpath("//meta[@property='og:title' or @name='og:title']/@content").get(),
                               MAX_TITLE)


def image_text(node: Selector) -> ImageText:
    """alt, title and caption of an <img> (or of the image a <source> or an <a> stands for)."""
    element = node.root
    img = _the_img(element)
    alt = clean_text(img.get("alt")) if img is not None else ""
    title = clean_text(element.get("title") or (img.get("title") if img is not None else ""))
    anchor = img if img is not None else element
    caption = _figcaption(anchor) or _described_by(anchor) or _next_to(anchor)
    return ImageText(alt, title, caption)


def figure_of(element: etree._Element) -> etree._Element | None:
    """The element holding an image and its caption: the enclosing <figure>, else the container
    of a caption-like element (see module doc), else None."""
    figure = _enclosing_figure(element)
    if figure is not None:
        return figure
    container = _caption_container(element)
    return container[0] if container else None


def _the_img(element: etree._Element) -> etree._Element | None:
    tag = _tag(element)
    if tag == "img":
        return element
    inside = next(element.iter("img"), None)       # a link's image; a <source> the parser did not close
    if tag == "source" and inside is None and element.getparent() is not None:
        return next(element.getparent().iterchildren("img"), None)       # the <picture>'s <img>
    return inside


def _enclosing_figure(element: etree._Element) -> etree._Element | None:
    return next(element.iterancestors("figure"), None)


def _figcaption(element: etree._Element) -> str:
    figure = _enclosing_figure(element)
    if figure is None:
        return ""
    for caption in figure.iter("figcaption"):
        if _enclosing_figure(caption) is figure:
            return clean_text(caption.text_content())
    return ""


def _described_by(element: etree._Element) -> str:
    ids = (element.get("aria-describedby") or "").split()
    root = element.getroottree()
    texts = [root.xpath("//*[@id=$id]", id=i) for i in ids]
    return clean_text(" ".join(found[0].text_content() for found in texts if found))


def _next_to(element: etree._Element) -> str:
    container = _caption_container(element)
    if container:
        return clean_text(container[1].text_content())
    wrapper = _outermost_wrapper(element)
    after, before = _element_sibling(wrapper, 1), _element_sibling(wrapper, -1)
    if after is not None and _captions_alone(after):
        return clean_text(after.text_content())
    # A caption above the image, unless it sits under another image (it is that one's).
    above_it = _element_sibling(before, -1) if before is not None else None
    taken = above_it is not None and next(above_it.iter("img"), None) is not None
    if before is not None and _captions_alone(before) and not taken:
        return clean_text(before.text_content())
    return ""


def _element_sibling(element: etree._Element, step: int) -> etree._Element | None:
    """The next (step 1) or previous (step -1) sibling element, skipping comments."""
    sibling = element.getnext() if step > 0 else element.getprevious()
    while sibling is not None and not isinstance(sibling.tag, str):
        sibling = sibling.getnext() if step > 0 else sibling.getprevious()
    return sibling


def _captions_alone(sibling: etree._Element) -> bool:
    """A sibling that reads as a caption and holds no image or figure of its own."""
    return (_tag(sibling) != "figure" and next(sibling.iter("img", "figure"), None) is None
            and bool(CAPTION_START.match(_text_start(sibling, 80))))


def _caption_container(element: etree._Element) -> tuple[etree._Element, etree._Element] | None:
    """(container, caption) for the nearest ancestor, a few levels up, that holds this one image
    and an element whose class or id says caption / legend."""
    for depth, ancestor in enumerate(element.iterancestors()):
        if depth >= MAX_CLIMB or _tag(ancestor) in ("body", "html"):
            return None
        if _images_in(ancestor) > 1:
            return None
        for candidate in ancestor.iter(etree.Element):
            marks = f"{candidate.get('class', '')} {candidate.get('id', '')}"
            if candidate is not element and CAPTION_CLASS.search(marks):
                return ancestor, candidate
    return None


def _outermost_wrapper(element: etree._Element) -> etree._Element:
    """The image, or the outermost of up to MAX_CLIMB ancestors with no text and no other image."""
    wrapper = element
    for _ in range(MAX_CLIMB):
        parent = wrapper.getparent()
        if parent is None or _tag(parent) in ("body", "html") or _images_in(parent) > 1 or _text_start(parent):
            break
        wrapper = parent
    return wrapper


def _images_in(element: etree._Element) -> int:
    """0, 1 or 2 (two or more): stops at the second image, so big galleries stay cheap."""
    return sum(1 for _ in itertools.islice(element.iter("img"), 2))


def _text_start(element: etree._Element, length: int = 1) -> str:
    """The first ``length`` non-space characters' worth of an element's text, read no further."""
    found = ""
    for text in element.itertext():
        found = f"{found} {text}" if found else text.strip()
        if len(found.strip()) >= length:
            break
    return clean_text(found, 10 * length)


def _tag(element: etree._Element) -> str:
    return element.tag.lower() if isinstance(element.tag, str) else ""
