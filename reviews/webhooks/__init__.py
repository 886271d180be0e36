"""Outbound webhooks: Standard Webhooks signing (`signing`, no Django), the SSRF guard
on the URLs they go to (`urlguard`), and the HTTP POST that uses both (`http`)."""
