"""A broadcast's body: the admin's formatting (Telegram's entities) kept as safe HTML, nothing they typed read as
markup."""

from __future__ import annotations

import pytest

from tgm.services.dispatcher.presentation.broadcast_body import html_from_entities


@pytest.mark.parametrize(
    ("text", "entities", "expected"),
    [
        ("a < b & c", [], "a &lt; b &amp; c"),
        ("Sale today", [{"type": "bold", "offset": 0, "length": 4}], "<b>Sale</b> today"),
        # Offsets count UTF-16 code units: an emoji outside the BMP takes two.
        ("🎉 big sale", [{"type": "italic", "offset": 3, "length": 3}], "🎉 <i>big</i> sale"),
        (
            "bold and italic",
            [{"type": "bold", "offset": 0, "length": 15}, {"type": "italic", "offset": 5, "length": 10}],
            "<b>bold <i>and italic</i></b>",
        ),
        (  # crossing entities are closed and reopened, so the HTML stays well nested
            "abcdef",
            [{"type": "bold", "offset": 0, "length": 4}, {"type": "italic", "offset": 2, "length": 4}],
            "<b>ab<i>cd</i></b><i>ef</i>",
        ),
        (
            "site",
            [{"type": "text_link", "offset": 0, "length": 4, "url": 'https://x.test/?a="1"&b'}],
            '<a href="https://x.test/?a=&quot;1&quot;&amp;b">site</a>',
        ),
        ("click", [{"type": "text_link", "offset": 0, "length": 5, "url": "javascript:alert(1)"}], "click"),
        ("x = 1", [{"type": "pre", "offset": 0, "length": 5, "language": 'py"><script>'}], "<pre>x = 1</pre>"),
        (
            "x = 1",
            [{"type": "pre", "offset": 0, "length": 5, "language": "python"}],
            '<pre><code class="language-python">x = 1</code></pre>',
        ),
        (  # an entity ending inside another closes alone: the outer one is not split in two
            "Hello world more",
            [{"type": "blockquote", "offset": 0, "length": 16}, {"type": "bold", "offset": 6, "length": 5}],
            "<blockquote>Hello <b>world</b> more</blockquote>",
        ),
        (
            "see docs now",
            [
                {"type": "italic", "offset": 0, "length": 12},
                {"type": "text_link", "offset": 4, "length": 4, "url": "https://x.test"},
                {"type": "bold", "offset": 4, "length": 2},
            ],
            '<i>see <a href="https://x.test"><b>do</b>cs</a> now</i>',
        ),
        ("@someone #tag", [{"type": "mention", "offset": 0, "length": 8}], "@someone #tag"),
        ("<b>", [{"type": "bold", "offset": 0, "length": 99}, "junk", {"type": "bold"}], "<b>&lt;b&gt;</b>"),
    ],
)
def test_entities_become_safe_html(text: str, entities: object, expected: str) -> None:
    assert html_from_entities(text, entities) == expected
