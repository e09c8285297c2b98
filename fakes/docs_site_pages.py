"""The fake docs site's pages (fakes.docs_site): each article wrapped in what a real docs theme puts around it (a
header with the navigation, a sidebar, a cookie banner, a footer), which the crawl must leave out of the knowledge."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

CALENDAR = "/docs/calendar"
# Words only the page's chrome has: a passage holding one of them took in what isn't the article.
CHROME_WORDS = ("cookies", "All rights reserved", "Pricing", "Sidebar")

ARTICLES: dict[str, tuple[str, list[tuple[int, str, str, str]]]] = {
    # path: (title, [(heading level, id, heading, text)])
    "/docs/install.html": (
        "Installing Acme",
        [
            (
                1,
                "",
                "Installing Acme",
                "Acme installs on Linux, macOS and Windows. This guide walks through the "
                "installation of the acme command line tool and of its background daemon.",
            ),
            (
                2,
                "requirements",
                "Requirements",
                "You need Python 3.11 or newer and at least 2 GB of free disk space "
                "for the caches that the Acme daemon keeps between runs.",
            ),
            (
                2,
                "from-pip",
                "Installing with pip",
                "Run pip install acme inside a virtual environment; the acme "
                "command is then on your path and the daemon starts at the first run.",
            ),
        ],
    ),
    "/docs/configure.html": (
        "Configuring Acme",
        [
            (1, "", "Configuring Acme", "Acme reads its settings from a configuration file and from the environment."),
            (
                2,
                "config-file",
                "The configuration file",
                "The configuration file lives in ~/.config/acme/acme.toml; "
                "each key there can be overridden by an environment variable of the same name.",
            ),
            (
                2,
                "proxy",
                "Proxy settings",
                "To reach the update server through a corporate proxy, set ACME_PROXY to the "
                "proxy's address, for example http://proxy.example.com:3128, before starting the daemon.",
            ),
        ],
    ),
    "/docs/changing.html": (
        "Release notes",
        [(1, "", "Release notes", "Version 1.0 of Acme brought the daemon and the first stable configuration file.")],
    ),
    "/docs/leaving.html": (
        "Deprecated API",
        [(1, "", "Deprecated API", "The legacy XML-RPC endpoint of the Acme daemon is deprecated and answers slowly.")],
    ),
    "/docs/private/keys.html": (
        "Signing keys",
        [(1, "", "Signing keys", "The release signing key's passphrase is kept in the vault named marmalade-seven.")],
    ),
    "/docs/upgrade.html": (
        "Upgrading Acme",
        [(1, "", "Upgrading Acme", "Upgrade with pip install --upgrade acme; your configuration file is kept as is.")],
    ),
    "/blog/news.html": (
        "Acme news",
        [(1, "", "Acme news", "Our team went to a conference about gardening tools and loved every minute of it.")],
    ),
}
INDEX_LINKS = (
    "install.html", "configure.html", "changing.html", "leaving.html", "private/keys.html", "old-install.html",
    "away.html", "huge.html", "endless.html", "calendar?month=1", "logo.png", "/blog/news.html", "#top",
)  # fmt: skip


def article_page(path: str, generated: int = 0) -> str:
    """The page at `path` in its theme; /docs/ is the index linking to every page (and to the generated tree)."""
    if path == "/docs/":
        links = [*INDEX_LINKS, *(("gen/0.html",) if generated else ())]
        items = "".join(f'<li><a href="{link}">{escape(link)}</a></li>' for link in links)
        body = f"<h1>Acme documentation</h1><p>Welcome to the Acme documentation. Start here.</p><ul>{items}</ul>"
        return themed("Acme documentation", body)
    title, sections = ARTICLES[path]
    return themed(title, "".join(_section(*section) for section in sections))


def changed_article(title: str, heading: str, text: str) -> str:
    """A page's new text, in the same theme (what a test passes to FakeDocsSite.change)."""
    return themed(title, f"<h1>{escape(heading)}</h1><p>{escape(text)}</p>")


def themed(title: str, article: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} | Acme Docs</title></head>
<body>
<header class="site-header"><a href="/">Acme</a>
<nav class="main-nav"><ul><li><a href="/">Home</a></li><li><a href="/products/">Products</a></li>
<li><a href="/pricing/">Pricing</a></li><li><a href="/docs/">Docs</a></li><li><a href="/blog/news.html">Blog</a></li>
</ul></nav></header>
<div id="cookie-banner" class="cookie-consent">We use cookies to personalise content and ads. Accept all cookies or
manage your preferences.<button>Accept</button></div>
<aside class="sidebar"><p>Sidebar</p><ul><li><a href="/docs/install.html">Install</a></li>
<li><a href="/docs/configure.html">Configure</a></li></ul></aside>
<main><article>{article}</article></main>
<footer class="site-footer"><p>Copyright 2026 Acme Corp. All rights reserved.</p>
<p><a href="/privacy/">Privacy</a> <a href="/terms/">Terms</a></p></footer>
</body></html>"""


def _section(level: int, anchor: str, heading: str, text: str) -> str:
    identifier = f' id="{anchor}"' if anchor else ""
    return f"<h{level}{identifier}>{escape(heading)}</h{level}>\n<p>{escape(text)}</p>\n"


def calendar_page(month: int) -> str:
    """A calendar month, linking to the next and the previous: no last page."""
    body = (
        f"<h1>Events, month {month}</h1><p>No events are planned for month {month} of the Acme community calendar.</p>"
        f'<p><a href="{CALENDAR}?month={month - 1}">Previous</a> <a href="{CALENDAR}?month={month + 1}">Next</a></p>'
    )
    return themed(f"Events, month {month}", body)


def generated_page(number: int, total: int) -> str:
    """Page `number` of a generated tree of `total`: three sections of about 950 characters each (about what a docs
    page holds), and links to its ten children."""
    children = [child for child in range(number * 10 + 1, number * 10 + 11) if child < total]
    links = "".join(f'<li><a href="/docs/gen/{child}.html">Topic {child}</a></li>' for child in children)
    sections = "".join(
        f'<h2 id="{name}">{name.capitalize()} of topic {number}</h2><p>{_paragraph(number, part)}</p>'
        for part, name in enumerate(("overview", "settings", "troubleshooting"))
    )
    body = f"<h1>Topic {number}</h1>{sections}<ul>{links}</ul>"
    return themed(f"Topic {number}", body)


_WORDS = (
    "daemon", "queue", "job", "retry", "timeout", "cache", "worker", "schedule", "log", "warning", "setting", "limit",
    "backup", "restore", "token", "proxy", "port", "socket", "upgrade", "plugin", "export", "import", "report", "alert",
)  # fmt: skip


def _paragraph(number: int, part: int) -> str:
    """Six sentences about job `number`, their words varying with the page and the section."""
    sentences = []
    for line in range(6):
        picked = [_WORDS[(number * 7 + part * 5 + line * 3 + k) % len(_WORDS)] for k in range(4)]
        sentences.append(
            f"When job {number} of the Acme {picked[0]} meets a {picked[1]}, the {picked[2]} settings decide how "
            f"the {picked[3]} is handled, and the operator may change them in the configuration file."
        )
    return " ".join(sentences)


def sitemap_xml(entries: list[tuple[str, float | None]], *, index: bool) -> str:
    """A sitemap (index: of sitemaps) of (URL, lastmod) entries."""
    root, item = ("sitemapindex", "sitemap") if index else ("urlset", "url")
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<{root} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    for url, lastmod in entries:
        modified = "" if lastmod is None else f"<lastmod>{datetime.fromtimestamp(lastmod, UTC).isoformat()}</lastmod>"
        lines.append(f"<{item}><loc>{escape(url)}</loc>{modified}</{item}>")
    lines.append(f"</{root}>")
    return "\n".join(lines)
