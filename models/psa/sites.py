"""A ConnectWise site's address and a ticket's page on it: plain text, no HTTP (the domain
stores the normalized site and links to the ticket; `adapters.psa.connectwise` calls it)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit


def normalize_site_url(site_url: str) -> str:
    """`https://na.myconnectwise.net`, with or without the API path: the site only."""
    parts = urlsplit(site_url.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("Must be an http(s) address such as https://na.myconnectwise.net.")
    return f"{parts.scheme}://{parts.netloc}"


def ticket_url(site_url: str, company_id: str, ticket_id: str) -> str:
    """The ticket's page in ConnectWise (the link ConnectWise puts in its own emails)."""
    return (
        f"{normalize_site_url(site_url)}/v4_6_release/services/system_io/Service/"
        f"fv_sr100_request.rails?service_recid={quote(str(ticket_id), safe='')}"
        f"&companyName={quote(company_id, safe='')}"
    )
