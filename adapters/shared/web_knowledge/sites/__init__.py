"""A docs site as knowledge: its sitemap or links, each page's main text by heading, kept in sync."""
