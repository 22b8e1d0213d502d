"""What a Markdown string shows in the browser, for tests: its text and the HTML tags it makes.

Streamlit renders Markdown in the browser (remark); here markdown-it-py (CommonMark plus
GitHub's tables and strikethrough) stands in for it, which is enough to tell whether a
string would make an image, a link, bold text or raw HTML, and what text it shows.
"""

from __future__ import annotations

from html.parser import HTMLParser

from markdown_it import MarkdownIt

WORD_JOINER = "\u2060"
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "img":  # an image shows nothing but costs a fetch: keep its alt visible
            self.parts.append(dict(attrs).get("alt") or "")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def render(source: str) -> tuple[str, set[str]]:
    """The text ``source`` displays (word joiners removed, lines joined by spaces) and
    the HTML tags it produces."""
    parser = _Text()
    parser.feed(_MARKDOWN.render(source))
    text = " ".join("".join(parser.parts).replace(WORD_JOINER, "").split())
    return text, parser.tags - {"p"}


def shown(source: str) -> str:
    """Just the text ``source`` displays."""
    return render(source)[0]
