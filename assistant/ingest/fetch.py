"""Live fetching from arXiv: API searches and id lists, OAI-PMH harvests; polite, retried, resumable."""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from assistant.config import FetchSettings
from assistant.errors import FetchError, InputError, SourceError, StoreError
from assistant.ingest import BATCH_PAPERS, Ingester, IngestReport, batches
from assistant.schema import BadRecord, Paper
from assistant.sources.atom import parse_atom
from assistant.sources.ids import normalize_id
from assistant.sources.oai import parse_oai
from assistant.sources.xmlstream import PageInfo
from assistant.store import Store, keyword
from assistant.store import errors as store_errors
from assistant.store.folder import HARVESTS

USER_AGENT = "arxiv-assistant/0.1 (Python urllib)"
# Answers that mean "busy, ask again later"; arXiv sends 503 with Retry-After when overloaded.
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})

Parser = Callable[[Iterable[str | bytes], str, PageInfo], Iterator[Paper | BadRecord]]
Note = Callable[[str], None]


class _Retry(Exception):
    """A failure worth another try: the server was busy or the connection dropped."""

    def __init__(self, reason: str, after: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


def retry_after(value: str | None) -> float | None:
    """Return the seconds a Retry-After header asks for (seconds or an HTTP date), None if unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class Client:
    """HTTP GET with arXiv's manners: one request per `delay` seconds, busy answers retried with backoff."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        self._next = 0.0  # time.monotonic() before which no request may start

    def get(self, url: str) -> bytes:
        """Return the body at `url`; raise `FetchError` if the server is unreachable or retries run out."""
        s = self.settings
        problem = ""
        for attempt in range(s.retries + 1):
            time.sleep(max(0.0, self._next - time.monotonic()))
            try:
                return self._once(url)
            except _Retry as retry:
                wait = retry.after if retry.after is not None else s.backoff * 2**attempt
                self._next = time.monotonic() + max(s.delay, min(wait, s.max_wait))
                problem = retry.reason
        raise FetchError(
            f"{url}: {problem} on all {s.retries + 1} tries; the server is busy, try again later"
        )

    def _once(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in RETRY_STATUS:
                raise _Retry(f"HTTP {exc.code}", retry_after(exc.headers.get("Retry-After"))) from None
            raise FetchError(
                f"{url}: HTTP {exc.code} {exc.reason}; check the query and the [fetch] URLs"
            ) from None
        except urllib.error.URLError as exc:  # no connection at all: retrying now would not help
            raise FetchError(
                f"cannot reach {urlsplit(url).netloc} ({exc.reason}); check the network connection "
                "or the [fetch] URL settings"
            ) from None
        except (http.client.HTTPException, ConnectionError, TimeoutError) as exc:  # dropped mid-answer
            raise _Retry(f"connection lost ({type(exc).__name__})", None) from None
        finally:
            self._next = time.monotonic() + self.settings.delay


@dataclass(frozen=True)
class Page:
    """One fetched response: where it came from, its records, and what it says about the rest."""

    url: str
    records: list[Paper | BadRecord]
    info: PageInfo


def _url(base: str, params: dict[str, str | int]) -> str:
    return f"{base}{'&' if '?' in base else '?'}{urlencode(params)}"


def fetch_page(client: Client, url: str, parse: Parser) -> Page:
    """GET one response and parse it whole (a page is small; parsing it all keeps retries simple)."""
    body = client.get(url)
    info = PageInfo()
    try:
        records = list(parse([body], url, info))
    except SourceError as exc:
        raise FetchError(f"{exc}; the server sent something else than expected") from None
    return Page(url, records, info)


def parse_ids(text: str) -> list[str]:
    """Split `--arxiv-ids` ("2305.14387, arXiv:2005.04118v2") into distinct normalised ids."""
    ids = [normalize_id(part) for part in re.split(r"[,\s]+", text) if part]
    if not ids:
        raise InputError("--arxiv-ids names no id; give them comma-separated, e.g. 2305.14387,2005.04118")
    return list(dict.fromkeys(ids))


def api_pages(
    client: Client, settings: FetchSettings, *, query: str | None, ids: list[str], limit: int, note: Note
) -> Iterator[Page]:
    """Yield the arXiv API's pages for a list of ids, or for a search up to `limit` results."""

    def page(params: dict[str, str | int]) -> Page:
        got = fetch_page(client, _url(settings.api_url, params), parse_atom)
        if got.info.error:
            raise FetchError(f"{got.url}: the arXiv API answered: {got.info.error}; fix the query or the ids")
        return got

    for start in range(0, len(ids), settings.page_size):
        chunk = ids[start : start + settings.page_size]
        yield page({"id_list": ",".join(chunk), "max_results": len(chunk)})
    if query is None:
        return
    start = total = 0
    while start < limit:
        got = page(
            {"search_query": query, "start": start, "max_results": min(settings.page_size, limit - start)}
        )
        yield got
        total = got.info.total or 0
        start += len(got.records)
        if start >= total:
            return
        if not got.records:  # the API does this when busy; a retry later usually works
            raise FetchError(
                f"{got.url}: the arXiv API sent an empty page at {start} of {total}; try again later"
            )
    note(f"fetched the first {limit} of {total} results; pass --max N for more")


def _day(value: str | None, flag: str) -> str | None:
    try:
        return dt.date.fromisoformat(value).isoformat() if value else None
    except ValueError:
        raise InputError(f"{flag} {value!r} is not a date; give it as YYYY-MM-DD") from None


class HarvestState:
    """Where each interrupted OAI-PMH harvest into a store left off: {harvest key: resumptionToken}."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / HARVESTS

    def _saved(self) -> dict[str, Any]:
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # no harvest was interrupted here (an unreadable file means: start over)
        return saved if isinstance(saved, dict) else {}

    def token(self, key: str) -> str | None:
        """Return the resumptionToken an interrupted harvest `key` left off at, or None."""
        token = self._saved().get(key)
        return token if isinstance(token, str) else None

    def save(self, key: str, token: str | None) -> None:
        """Record where harvest `key` goes on (None: it is complete), atomically."""
        saved = self._saved()
        if token:
            saved[key] = token
        else:
            saved.pop(key, None)
        tmp = self.path.with_suffix(f".tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(saved, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            todo = store_errors.file_todo(exc, str(self.path.parent))
            raise StoreError(
                f"{self.path}: cannot save where the harvest left off ({exc.strerror or exc}); {todo}"
            ) from None


class OaiHarvest:
    """One OAI-PMH harvest, resumable: each stored page's resumptionToken is saved in the store."""

    def __init__(
        self,
        client: Client,
        settings: FetchSettings,
        store: Store,
        oai_set: str,
        since: str | None = None,
        until: str | None = None,
        prefix: str | None = None,
    ) -> None:
        self.client = client
        self.base = settings.oai_url
        self.state = HarvestState(store.path)
        wanted = {
            "metadataPrefix": prefix or settings.oai_format,
            "set": oai_set,
            "from": _day(since, "--from"),
            "until": _day(until, "--until"),
        }
        self.params: dict[str, str | int] = {k: v for k, v in wanted.items() if v}
        # Tokens are only valid for the request that made them: key them by that request.
        self.key = " ".join(f"{k}={v}" for k, v in self.params.items())

    def pages(self, note: Note) -> Iterator[Page]:
        """Yield the harvest's pages, from the saved resumptionToken if an earlier run was interrupted."""
        token = self.state.token(self.key)
        if token:
            note(f"resuming the interrupted harvest ({self.key}) at its saved resumptionToken")
        seen: set[str] = set()
        while True:
            params = {"verb": "ListRecords", **({"resumptionToken": token} if token else self.params)}
            got = fetch_page(self.client, _url(self.base, params), parse_oai)
            if got.info.error_code == "badResumptionToken":
                self.state.save(self.key, None)
                raise FetchError(
                    f"{got.url}: the server refused the resumptionToken (arXiv's expire after a day); "
                    "it is forgotten: run the same command again to harvest from the start"
                )
            if got.info.error:
                raise FetchError(
                    f"{got.url}: the OAI-PMH service answered {got.info.error_code}: {got.info.error}; "
                    "check --oai-set, --from and --until"
                )
            yield got
            token = got.info.token
            if token is None:
                return
            if token in seen:  # a server repeating itself would make this loop forever
                raise FetchError(f"{got.url}: the server sent the same resumptionToken twice; stopping")
            seen.add(token)

    def stored(self, page: Page) -> None:
        """Remember where to go on after `page` is in the store (nothing once the harvest is complete)."""
        self.state.save(self.key, page.info.token)


def ingest_pages(
    pages: Iterable[Page],
    ingester: Ingester,
    report: IngestReport,
    warn: Note,
    *,
    stored: Callable[[Page], None] | None = None,
    progress: Note | None = None,
) -> None:
    """Store each page's papers as it arrives and report its bad records; what was stored stays."""
    try:
        for number, page in enumerate(pages, start=1):
            papers = []
            for record in page.records:
                if isinstance(record, BadRecord):
                    report.bad += 1
                    warn(str(record))
                else:
                    papers.append(record)
            ingester.write_all(batches(iter(papers), BATCH_PAPERS, report), report)
            if stored is not None:
                stored(page)
            if progress is not None:
                of = f" of {page.info.total}" if page.info.total else ""
                progress(f"page {number}: {len(page.records)} records{of}")
    except FetchError as exc:
        kept = report.added + report.updated + report.unchanged
        if kept:
            raise FetchError(
                f"{exc}. The {kept} papers fetched before are kept: run the same command to go on"
            ) from None
        raise


@dataclass(frozen=True)
class LiveRequest:
    """What to fetch: an API search, a list of ids, or an OAI-PMH set; its flags are checked on creation."""

    query: str | None = None
    ids: str | None = None
    limit: int | None = None
    oai_set: str | None = None
    since: str | None = None
    until: str | None = None
    oai_format: str | None = None

    def __post_init__(self) -> None:
        if sum(value is not None for value in (self.query, self.ids, self.oai_set)) > 1:
            raise InputError("give only one of --arxiv-query, --arxiv-ids, --oai-set")
        if self.oai_set is None and (self.since or self.until or self.oai_format):
            raise InputError("--from, --until and --oai-format go with --oai-set")
        if self.limit is not None and (self.query is None or self.limit < 1):
            raise InputError("--max goes with --arxiv-query and must be at least 1")
        _day(self.since, "--from")
        _day(self.until, "--until")
        if self.ids is not None:
            parse_ids(self.ids)

    @property
    def given(self) -> bool:
        """Whether anything is to be fetched at all."""
        return any(value is not None for value in (self.query, self.ids, self.oai_set))


def fetch(
    ingester: Ingester,
    report: IngestReport,
    settings: FetchSettings,
    request: LiveRequest,
    warn: Note,
    progress: Note | None = None,
) -> None:
    """Fetch `request` from arXiv into the ingester's store, page by page."""
    client = Client(settings)
    if request.oai_set is not None:
        harvest = OaiHarvest(
            client,
            settings,
            ingester.store,
            request.oai_set,
            request.since,
            request.until,
            request.oai_format,
        )
        ingest_pages(harvest.pages(warn), ingester, report, warn, stored=harvest.stored, progress=progress)
    else:
        pages = api_pages(
            client,
            settings,
            query=request.query,
            ids=parse_ids(request.ids) if request.ids is not None else [],
            limit=request.limit or settings.max_results,
            note=warn,
        )
        ingest_pages(pages, ingester, report, warn, progress=progress)
    if report.added or report.updated:
        # As a file ingest does: rebuild the keyword index now, not at the first question.
        keyword.append(ingester.store, progress=progress is not None)
