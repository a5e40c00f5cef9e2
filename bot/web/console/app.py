"""The agent console's HTTP and WebSocket endpoints.

Pages (HTML, server-rendered with autoescaping; live parts are filled in by
``static/console.js`` with ``textContent`` only, so shopper text is never markup)::

    GET  /console/login                 login form          POST /console/login
    POST /console/logout
    GET  /console                       the queue (live)
    GET  /console/conversation?id=ID    one conversation (live)
    GET  /console/tickets?status=&priority=     POST /console/tickets/update
    GET  /console/admin/agents (admins)         POST /console/admin/agents[/update]
    GET  /console/admin/dashboard?since=7d&until=   support analytics (admins)
    GET  /console/admin/dashboard/chart/NAME.png?since=&until=   its charts (admins)
    GET  /console/admin/dashboard.csv?since=&until=              its figures as CSV (admins)

JSON API (``/console/api``; POST bodies are JSON objects)::

    GET  me | queue | conversation?id= | tickets?status=&priority=
    POST claim {id} | message {id, text} | note {id, text} | return {id, slots?}
         | close {id, resolution} | ticket {id, status?, priority?, assignee?}
    WS   /console/ws                    {"type": "change", "conversation", "status", "kinds"}

Input: every field and query parameter taken from a client follows the rules of
``bot.inputs`` (no lone surrogates, NUL or control characters; ids and names single-line
and bounded by their columns); a value that breaks them, a malformed body or a value of the
wrong type is answered 400 ``{"error": ...}`` naming the field (413 over 64 KiB).

Security: a session cookie (HttpOnly, SameSite=Strict, path /console; Secure when
configured) names a server-side session. Pages without one redirect to the login, the API
answers 401, the WebSocket closes with 4401. Every POST needs the session's CSRF token (the
``X-CSRF-Token`` header or a ``csrf_token`` form field) and, when the browser sends one, an
``Origin`` of this server; else 403. Admin pages answer agents with 403. Login failures are
throttled by ``throttle.LoginThrottle`` (429 with ``Retry-After``): per client address and
per address and name; failures for one name from everywhere only slow its logins down, so
nobody elsewhere can lock an agent out. The client address is the socket peer; its
``X-Forwarded-For`` counts only when the peer is one of ``trusted_proxies``. That needs a
server that leaves the ASGI ``client`` as the socket peer (``bot.server.server_config``
turns uvicorn's own proxy-header rewriting off).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import hmac
import io
import json
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ExceptionHandler
from starlette.websockets import WebSocket, WebSocketDisconnect

from bot.analytics import Report, build_report, parse_window
from bot.analytics.charts import CAPTIONS, CHARTS, render
from bot.analytics.report import DEFAULT_LOW_CONFIDENCE
from bot.errors import InputError, Overloaded
from bot.handoff.agents import AgentAccounts, AgentError, ConsoleSession
from bot.handoff.desk import (
    SETTABLE_SLOTS,
    TICKET_PRIORITIES,
    TICKET_STATUSES,
    HandoffConflict,
    HandoffDesk,
)
from bot.handoff.outbox import Relay
from bot.inputs import BadInput, client_id, client_string, json_object, text_problem
from bot.ratelimit import Network, address_bucket, client_address
from bot.web.console.throttle import LoginThrottle

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE.parent / "templates" / "console"
STATIC = HERE / "static"
COOKIE = "clerk_console"
LOGIN_COOKIE = "clerk_console_login"
PREFIX = "/console"
MAX_BODY = 64 * 1024
MAX_ID_CHARS = 200  # conversation and ticket ids, as stored
MAX_NAME_CHARS = 100  # agent names (assignees) and slot values, as stored
TOUCH_EVERY_S = 60.0
DASHBOARD_PERIODS = ("24h", "7d", "30d", "90d")  # the period selector's presets
DEFAULT_PERIOD = "7d"
REPORT_TTL_S = 60.0  # a report is reused this long for the same window (page, charts, CSV)
MAX_REPORTS = 8  # reports kept, done or being computed; more windows at once: 503
REPORT_STATEMENT_TIMEOUT_S = 30.0  # PostgreSQL: each of the report's statements at most
ReportKey = tuple[dt.datetime, dt.datetime, float]  # window, low-confidence bar
MAX_PERIOD_CHARS = 64
T = TypeVar("T")


class ExternalSteps(Protocol):
    """What the console needs of the dialogue manager."""

    async def run_external(
        self,
        conversation_id: str,
        step: Callable[..., Any],
        *,
        guard: Callable[..., None] | None = None,
    ) -> Any: ...


class _Refused(Exception):
    """A request the console answers with ``response`` as it is (a redirect to the login,
    401, 403, 413), raised from the checks every endpoint starts with."""

    def __init__(self, response: Response) -> None:
        self.response = response


# The console's errors as responses: Starlette exception handlers, registered once on the
# console's routes (``Console.routes``), so endpoints raise and never catch these. Other
# errors go on to the app's own handlers (``Unavailable``: 503).


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Refused)
    return exc.response


async def _bad_input(request: Request, exc: Exception) -> Response:
    """A client value that breaks ``bot.inputs``' rules: 400 (413) naming the field."""
    assert isinstance(exc, BadInput)
    return _refusal(exc)


async def _input_error(request: Request, exc: Exception) -> Response:
    """A request the desk refuses (an empty text, one over its length limit): 400."""
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _conflict(request: Request, exc: Exception) -> Response:
    """A step that does not fit the conversation's handoff state: 409 with that state."""
    assert isinstance(exc, HandoffConflict)
    return JSONResponse({"error": str(exc), "status": exc.status}, status_code=409)


ERROR_RESPONSES: dict[Any, ExceptionHandler] = {
    _Refused: _refused,
    BadInput: _bad_input,
    InputError: _input_error,
    HandoffConflict: _conflict,
}


class Console:
    def __init__(
        self,
        *,
        steps: ExternalSteps,
        desk: HandoffDesk,
        accounts: AgentAccounts,
        relay: Relay,
        canned_replies: tuple[str, ...] = (),
        secure_cookies: bool = False,
        trusted_proxies: tuple[Network, ...] = (),
        throttle: LoginThrottle | None = None,
        low_confidence: float = DEFAULT_LOW_CONFIDENCE,
    ) -> None:
        """``trusted_proxies``: peers whose ``X-Forwarded-For`` names the client;
        ``throttle``: login throttling (default: ``LoginThrottle()``'s limits);
        ``low_confidence``: the dashboard's low-confidence bar."""
        self.low_confidence = low_confidence
        self.steps = steps
        self.desk = desk
        self.accounts = accounts
        self.relay = relay
        self.canned_replies = canned_replies
        self.secure_cookies = secure_cookies
        self.env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.trusted_proxies = trusted_proxies
        self.throttle = throttle or LoginThrottle()
        self._sockets: set[WebSocket] = set()
        # (window, low-confidence bar) -> (when asked, the report being computed or done)
        self._reports: dict[ReportKey, tuple[float, asyncio.Future[Report]]] = {}

    # ------------------------------------------------------------------ routes
    def routes(self) -> list[BaseRoute]:
        errors = [Middleware(ExceptionMiddleware, handlers=ERROR_RESPONSES)]
        return [
            Route(PREFIX, self.queue_page, methods=["GET"], middleware=errors),
            Mount(
                PREFIX,
                middleware=errors,
                routes=[
                    Route("/", self.queue_page, methods=["GET"]),
                    Route("/login", self.login_page, methods=["GET"]),
                    Route("/login", self.login, methods=["POST"]),
                    Route("/logout", self.logout, methods=["POST"]),
                    Route("/conversation", self.conversation_page, methods=["GET"]),
                    Route("/tickets", self.tickets_page, methods=["GET"]),
                    Route("/tickets/update", self.tickets_update, methods=["POST"]),
                    Route("/admin/agents", self.agents_page, methods=["GET"]),
                    Route("/admin/agents", self.agents_create, methods=["POST"]),
                    Route("/admin/agents/update", self.agents_update, methods=["POST"]),
                    Route("/admin/dashboard", self.dashboard_page, methods=["GET"]),
                    Route("/admin/dashboard.csv", self.dashboard_csv, methods=["GET"]),
                    Route(
                        "/admin/dashboard/chart/{name}.png", self.dashboard_chart, methods=["GET"]
                    ),
                    Route("/static/{name}", self.static, methods=["GET"]),
                    Route("/api/me", self.api_me, methods=["GET"]),
                    Route("/api/queue", self.api_queue, methods=["GET"]),
                    Route("/api/conversation", self.api_conversation, methods=["GET"]),
                    Route("/api/tickets", self.api_tickets, methods=["GET"]),
                    Route("/api/claim", self.api_claim, methods=["POST"]),
                    Route("/api/message", self.api_message, methods=["POST"]),
                    Route("/api/note", self.api_note, methods=["POST"]),
                    Route("/api/return", self.api_return, methods=["POST"]),
                    Route("/api/close", self.api_close, methods=["POST"]),
                    Route("/api/ticket", self.api_ticket, methods=["POST"]),
                    WebSocketRoute("/ws", self.websocket),
                ],
            ),
        ]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for ws in list(self._sockets):
                with contextlib.suppress(Exception):
                    await ws.close(code=1001)

    # ------------------------------------------------------------------ helpers
    def _render(
        self,
        name: str,
        request: Request,
        session: ConsoleSession | None,
        http_status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        html = self.env.get_template(name).render(
            me=session.agent if session else None,
            csrf_token=session.csrf_token if session else "",
            prefix=PREFIX,
            **context,
        )
        return HTMLResponse(html, status_code=http_status, headers=_page_headers(request))

    async def _session(self, request: Request | WebSocket) -> ConsoleSession | None:
        return await self._db(self.accounts.session, request.cookies.get(COOKIE))

    async def _page_session(
        self,
        request: Request,
        *,
        admin: bool = False,
        refusal: str = "Only admins can manage agents.",
    ) -> ConsoleSession:
        session = await self._session(request)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise _Refused(
                RedirectResponse(f"{PREFIX}/login?next={quote(target)}", status_code=303)
            )
        if admin and not session.agent.is_admin:
            raise _Refused(
                self._render(
                    "error.html",
                    request,
                    session,
                    http_status=403,
                    message=refusal,
                )
            )
        return session

    async def _api_session(self, request: Request) -> ConsoleSession:
        session = await self._session(request)
        if session is None:
            raise _Refused(JSONResponse({"error": "log in first"}, status_code=401))
        return session

    async def _post_session(
        self, request: Request, *, api: bool, admin: bool = False
    ) -> tuple[ConsoleSession, dict[str, Any]]:
        """The session of a state-changing request, after the CSRF and origin checks, and
        its body (JSON for the API, form fields for pages)."""
        session = await (self._api_session(request) if api else self._page_session(request))
        if not _same_origin(request):
            raise _Refused(JSONResponse({"error": "cross-site request refused"}, status_code=403))
        body = await request.body()
        if len(body) > MAX_BODY:
            raise _Refused(JSONResponse({"error": "request body too large"}, status_code=413))
        data: dict[str, Any]
        if api:
            try:
                data = json_object(body or b"{}", max_bytes=MAX_BODY)
            except BadInput as exc:
                raise _Refused(_refusal(exc)) from None
        else:
            data = _form_fields(body)
        supplied = request.headers.get("x-csrf-token") or data.get("csrf_token") or ""
        if (
            not isinstance(supplied, str)
            or not supplied
            or not hmac.compare_digest(
                supplied.encode("utf-8", "replace"), session.csrf_token.encode()
            )
        ):
            raise _Refused(JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403))
        if admin and not session.agent.is_admin:
            raise _Refused(JSONResponse({"error": "admins only"}, status_code=403))
        return session, data

    # ------------------------------------------------------------------ login
    async def login_page(self, request: Request) -> Response:
        if await self._session(request) is not None:
            return RedirectResponse(PREFIX, status_code=303)
        return self._login_form(request, error=None)

    def _login_form(self, request: Request, error: str | None, status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = self._render(
            "login.html",
            request,
            None,
            http_status=status,
            error=error,
            login_csrf=token,
            next=_safe_next(request.query_params.get("next")),
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            path=f"{PREFIX}/login",
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
            max_age=3600,
        )
        return response

    async def login(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "request body too large"}, status_code=413)
        form = _form_fields(body)
        name = str(form.get("name") or "").strip()
        password = str(form.get("password") or "")
        if text_problem(name, single_line=True):  # never reaches the database
            return self._login_form(request, "Wrong name or password.", status=400)
        supplied = str(form.get("csrf_token") or "")
        expected = request.cookies.get(LOGIN_COOKIE) or ""
        if (
            not _same_origin(request)
            or not expected
            or not hmac.compare_digest(supplied.encode(), expected.encode())
        ):
            return self._login_form(
                request, "Your login form expired. Please try again.", status=403
            )
        address = address_bucket(
            client_address(
                request.client.host if request.client else None,
                request.headers.getlist("x-forwarded-for"),
                self.trusted_proxies,
            )
        )
        admission = self.throttle.admit(address, name)
        if admission.retry_after > 0:
            log.info("console login for %r from %s throttled", name[:64], address)
            response = self._login_form(
                request, "Too many failed logins. Wait a few minutes.", status=429
            )
            response.headers["Retry-After"] = str(math.ceil(admission.retry_after))
            return response
        if admission.delay > 0:
            await asyncio.sleep(admission.delay)
        agent = await self._db(self.accounts.authenticate, name, password)
        if agent is None:
            return self._login_form(request, "Wrong name or password.", status=401)
        token, _ = await self._db(self.accounts.open_session, agent)
        self.throttle.succeeded(address, name)
        log.info("agent %s logged in to the console", agent.name)
        response = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
        response.set_cookie(
            COOKIE, token, path=PREFIX, httponly=True, samesite="strict", secure=self.secure_cookies
        )
        response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
        return response

    async def logout(self, request: Request) -> Response:
        await self._post_session(request, api=False)
        await self._db(self.accounts.close_session, request.cookies.get(COOKIE))
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    # ------------------------------------------------------------------ pages
    async def queue_page(self, request: Request) -> Response:
        session = await self._page_session(request)
        return self._render("queue.html", request, session, page="queue")

    async def conversation_page(self, request: Request) -> Response:
        session = await self._page_session(request)
        cid = request.query_params.get("id") or ""
        return self._render(
            "conversation.html",
            request,
            session,
            page="conversation",
            conversation_id=cid,
            canned=self.canned_replies,
            settable_slots=SETTABLE_SLOTS,
        )

    async def tickets_page(self, request: Request) -> Response:
        session = await self._page_session(request)
        status = request.query_params.get("status") or None
        priority = request.query_params.get("priority") or None
        status = status if status in TICKET_STATUSES else None
        priority = priority if priority in TICKET_PRIORITIES else None
        tickets = await self._db(self.desk.tickets, status=status, priority=priority)
        agents = await self._db(self.accounts.list)
        return self._render(
            "tickets.html",
            request,
            session,
            page="tickets",
            tickets=tickets,
            status=status,
            priority=priority,
            statuses=TICKET_STATUSES,
            priorities=TICKET_PRIORITIES,
            agents=[a.name for a in agents if a.active],
            flash=request.query_params.get("saved"),
        )

    async def tickets_update(self, request: Request) -> Response:
        _, form = await self._post_session(request, api=False)
        ticket_id = _id(form.get("id"))
        assignee = client_string(
            form.get("assignee") or "", "assignee", max_chars=MAX_NAME_CHARS, single_line=True
        )
        try:
            await self._db(
                self.desk.update_ticket,
                ticket_id,
                status=str(form.get("status") or "") or None,
                priority=str(form.get("priority") or "") or None,
                assignee=assignee or None,
                unassign=assignee == "",
            )
        except KeyError:
            return JSONResponse({"error": f"no ticket {ticket_id}"}, status_code=404)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        back = _safe_next(str(form.get("back") or f"{PREFIX}/tickets"))
        sep = "&" if "?" in back else "?"
        return RedirectResponse(f"{back}{sep}saved={quote(ticket_id)}", status_code=303)

    async def agents_page(
        self, request: Request, error: str | None = None, status: int = 200
    ) -> Response:
        session = await self._page_session(request, admin=True)
        return self._render(
            "agents.html",
            request,
            session,
            http_status=status,
            page="agents",
            agents=await self._db(self.accounts.list),
            error=error,
        )

    async def agents_create(self, request: Request) -> Response:
        _, form = await self._post_session(request, api=False, admin=True)
        try:
            await self._db(
                self.accounts.add,
                str(form.get("name") or ""),
                str(form.get("password") or ""),
                str(form.get("role") or "agent"),
            )
        except AgentError as exc:
            return await self.agents_page(request, error=str(exc), status=400)
        return RedirectResponse(f"{PREFIX}/admin/agents", status_code=303)

    async def agents_update(self, request: Request) -> Response:
        session, form = await self._post_session(request, api=False, admin=True)
        raw_id = str(form.get("id") or "").strip()
        if not (raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 9):
            return await self.agents_page(request, error="no such agent", status=400)
        agent_id = int(raw_id)
        active = {"1": True, "0": False}.get(str(form.get("active") or ""))
        role = str(form.get("role") or "") or None
        password = str(form.get("password") or "") or None
        if agent_id == session.agent.id and (active is False or role == "agent"):
            return await self.agents_page(
                request, error="You cannot demote or deactivate yourself.", status=400
            )
        try:
            await self._db(
                self.accounts.update, agent_id, role=role, active=active, password=password
            )
        except AgentError as exc:
            return await self.agents_page(request, error=str(exc), status=400)
        return RedirectResponse(f"{PREFIX}/admin/agents", status_code=303)

    # ------------------------------------------------------------------ admin: dashboard
    async def _dashboard_session(self, request: Request) -> ConsoleSession:
        return await self._page_session(
            request, admin=True, refusal="Only admins can see the dashboard."
        )

    def _window(self, request: Request) -> tuple[str, str, tuple[dt.datetime, dt.datetime]]:
        """The period asked for (as typed) and the window it names; ``InputError`` when it
        names none."""
        since = client_string(
            request.query_params.get("since") or DEFAULT_PERIOD,
            "since",
            max_chars=MAX_PERIOD_CHARS,
            single_line=True,
        )
        until = client_string(
            request.query_params.get("until") or "",
            "until",
            max_chars=MAX_PERIOD_CHARS,
            single_line=True,
        )
        return since, until, parse_window(since, until or None)

    async def _report(self, since: dt.datetime, until: dt.datetime) -> Report:
        """The report for the window: computed once and shared by the page, its charts and
        its CSV for ``REPORT_TTL_S`` seconds (relative periods end at a whole minute, so a
        reload finds it). Reports are computed on the database's long-read thread
        (``Database.call_aside``): one at a time, never on a turn's thread or slot, so
        reloads and several admins cannot starve shoppers' turns. A report being computed
        is never dropped (its work could not be stopped): with ``MAX_REPORTS`` windows
        being computed at once, another is refused (``Overloaded``, 503)."""
        key: ReportKey = (since, until, self.low_confidence)
        now = time.monotonic()
        for old, (made, future) in list(self._reports.items()):
            if future.done() and now - made > REPORT_TTL_S:
                del self._reports[old]
        entry = self._reports.get(key)
        if entry is None:
            done = [k for k, (_, f) in self._reports.items() if f.done()]
            while len(self._reports) >= MAX_REPORTS and done:
                del self._reports[done.pop(0)]
            if len(self._reports) >= MAX_REPORTS:
                raise Overloaded("the dashboard", retry_after=5.0)
            future = asyncio.ensure_future(self.desk.db.call_aside(self._build_report, *key))
            entry = self._reports[key] = (now, future)
        try:
            return await asyncio.shield(entry[1])
        except Exception:
            if self._reports.get(key) is entry:
                del self._reports[key]
            raise

    def _build_report(
        self, since: dt.datetime, until: dt.datetime, low_confidence: float
    ) -> Report:
        # one read-only snapshot (turns keep committing meanwhile); on PostgreSQL each
        # statement capped, so the snapshot never holds vacuum back for long
        with self.desk.db.read(statement_timeout_s=REPORT_STATEMENT_TIMEOUT_S) as session:
            return build_report(session, since, until, low_confidence=low_confidence)

    async def dashboard_page(self, request: Request) -> Response:
        session = await self._dashboard_session(request)
        context: dict[str, Any] = {"page": "dashboard", "periods": DASHBOARD_PERIODS}
        try:
            since_text, until_text, (since, until) = self._window(request)
        except InputError as exc:
            return self._render(
                "dashboard.html",
                request,
                session,
                http_status=400,
                error=str(exc),
                since=request.query_params.get("since", "")[:MAX_PERIOD_CHARS],
                until=request.query_params.get("until", "")[:MAX_PERIOD_CHARS],
                report=None,
                **context,
            )
        report = await self._report(since, until)
        window = urlencode({"since": since.isoformat(), "until": until.isoformat()})
        return self._render(
            "dashboard.html",
            request,
            session,
            since=since_text,
            until=until_text,
            report=report,
            by_day=_days_by_channel(report),
            charts=[
                (name, CAPTIONS[name], f"{PREFIX}/admin/dashboard/chart/{name}.png?{window}")
                for name in CHARTS
            ],
            csv_url=f"{PREFIX}/admin/dashboard.csv?{window}",
            error=None,
            **context,
        )

    async def dashboard_chart(self, request: Request) -> Response:
        await self._dashboard_session(request)
        name = request.path_params["name"]
        if name not in CHARTS:
            return Response("not found", status_code=404)
        try:
            _, _, (since, until) = self._window(request)
        except InputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        report = await self._report(since, until)
        png = await asyncio.to_thread(render, report, name)
        return Response(
            png,
            media_type="image/png",
            headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"},
        )

    async def dashboard_csv(self, request: Request) -> Response:
        await self._dashboard_session(request)
        try:
            _, _, (since, until) = self._window(request)
        except InputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        report = await self._report(since, until)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(("section", "name", "value"))
        writer.writerows(tuple(_csv_cell(v) for v in row) for row in report.rows())
        filename = f"clerk-report-{since:%Y%m%d}-{until:%Y%m%d}.csv"
        return Response(
            buf.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        types = {
            "console.js": "text/javascript; charset=utf-8",
            "console.css": "text/css; charset=utf-8",
        }
        if name not in types:
            return Response("not found", status_code=404)
        return Response(
            (STATIC / name).read_text(),
            media_type=types[name],
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    # ------------------------------------------------------------------ API: reads
    async def api_me(self, request: Request) -> Response:
        s = await self._api_session(request)
        return JSONResponse({"name": s.agent.name, "role": s.agent.role})

    async def api_queue(self, request: Request) -> Response:
        await self._api_session(request)
        entries = await self._db(self.desk.queue)
        return JSONResponse({"now": time.time(), "queue": [e.to_dict() for e in entries]})

    async def api_conversation(self, request: Request) -> Response:
        await self._api_session(request)
        cid = _id(request.query_params.get("id"))
        view = await self._db(self.desk.conversation, cid)
        if view is None:
            return JSONResponse({"error": f"no conversation {cid!r}"}, status_code=404)
        return JSONResponse({"now": time.time(), **view})

    async def api_tickets(self, request: Request) -> Response:
        await self._api_session(request)
        status = request.query_params.get("status") or None
        priority = request.query_params.get("priority") or None
        if status is not None and status not in TICKET_STATUSES:
            return JSONResponse(
                {"error": f"status must be one of {TICKET_STATUSES}"}, status_code=400
            )
        if priority is not None and priority not in TICKET_PRIORITIES:
            return JSONResponse(
                {"error": f"priority must be one of {TICKET_PRIORITIES}"}, status_code=400
            )
        tickets = await self._db(self.desk.tickets, status=status, priority=priority)
        return JSONResponse({"tickets": tickets})

    # ------------------------------------------------------------------ API: steps
    async def _step(
        self,
        request: Request,
        make: Callable[[ConsoleSession, dict[str, Any]], tuple[Callable[..., Any], Any]],
    ) -> Response:
        session, data = await self._post_session(request, api=True)
        cid = _id(data.get("id"))
        step, guard = make(session, data)
        result = await self.steps.run_external(cid, step, guard=guard)
        return JSONResponse(
            {
                "ok": True,
                "status": getattr(result, "status", None),
                "messages": [m.id for m in getattr(result, "outgoing", [])],
            }
        )

    async def api_claim(self, request: Request) -> Response:
        def make(s: ConsoleSession, data: dict[str, Any]) -> tuple[Any, Any]:
            return (
                lambda session, conv, tracker: self.desk.claim(session, conv, tracker, s.agent.name)
            ), self.desk.claim_guard

        return await self._step(request, make)

    async def api_message(self, request: Request) -> Response:
        def make(s: ConsoleSession, data: dict[str, Any]) -> tuple[Any, Any]:
            text = _text(data, "text")
            return (
                lambda session, conv, tracker: self.desk.post(
                    session, conv, tracker, s.agent.name, text
                )
            ), None

        return await self._step(request, make)

    async def api_note(self, request: Request) -> Response:
        def make(s: ConsoleSession, data: dict[str, Any]) -> tuple[Any, Any]:
            text = _text(data, "text")
            return (
                lambda session, conv, tracker: self.desk.note(
                    session, conv, tracker, s.agent.name, text
                )
            ), None

        return await self._step(request, make)

    async def api_return(self, request: Request) -> Response:
        def make(s: ConsoleSession, data: dict[str, Any]) -> tuple[Any, Any]:
            slots = {} if data.get("slots") is None else data["slots"]
            if not isinstance(slots, dict):
                raise InputError("field 'slots' must map slot names to texts")
            slots = {
                client_id(k, "slots (a name)", max_chars=MAX_NAME_CHARS): client_string(
                    v, f"slots.{k}", max_chars=MAX_NAME_CHARS, single_line=True
                )
                for k, v in slots.items()
                if v is not None
            }
            slots = {k: v for k, v in slots.items() if v}
            return (
                lambda session, conv, tracker: self.desk.hand_back(
                    session, conv, tracker, s.agent.name, slots
                )
            ), None

        return await self._step(request, make)

    async def api_close(self, request: Request) -> Response:
        def make(s: ConsoleSession, data: dict[str, Any]) -> tuple[Any, Any]:
            resolution = _text(data, "resolution")
            return (
                lambda session, conv, tracker: self.desk.close(
                    session, conv, tracker, s.agent.name, resolution
                )
            ), None

        return await self._step(request, make)

    async def api_ticket(self, request: Request) -> Response:
        session, data = await self._post_session(request, api=True)
        ticket_id = _id(data.get("id"))
        status, priority, assignee = (
            None
            if data.get(key) is None
            else client_string(data[key], key, max_chars=MAX_NAME_CHARS, single_line=True)
            for key in ("status", "priority", "assignee")
        )
        if assignee == "me":
            assignee = session.agent.name
        try:
            ticket = await self._db(
                self.desk.update_ticket,
                ticket_id,
                status=status,
                priority=priority,
                assignee=assignee or None,
                unassign=assignee == "",
            )
        except KeyError:
            return JSONResponse({"error": f"no ticket {ticket_id}"}, status_code=404)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True, "ticket": ticket})

    # ------------------------------------------------------------------ live updates
    async def websocket(self, ws: WebSocket) -> None:
        session = await self._session(ws)
        if session is None or not _same_origin(ws):
            await ws.close(code=4401 if session is None else 4403)
            return
        await ws.accept()
        self._sockets.add(ws)
        feed = self.relay.subscribe()
        await self._touch(session)
        last_touch = time.monotonic()

        async def drain_client() -> None:  # notice a closed socket promptly
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                while True:
                    await ws.receive_text()

        reader = asyncio.create_task(drain_client())
        try:
            await ws.send_text(json.dumps({"type": "hello", "agent": session.agent.name}))
            changes = feed.__aiter__()
            while not reader.done():
                nxt = asyncio.ensure_future(changes.__anext__())
                done, _ = await asyncio.wait(
                    {nxt, reader}, timeout=TOUCH_EVERY_S, return_when=asyncio.FIRST_COMPLETED
                )
                if nxt not in done:
                    nxt.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await nxt
                    if not reader.done() and time.monotonic() - last_touch >= TOUCH_EVERY_S:
                        await self._touch(session)
                        last_touch = time.monotonic()
                    continue
                try:
                    change = nxt.result()
                except StopAsyncIteration:
                    break
                await ws.send_text(
                    json.dumps(
                        {
                            "type": "change",
                            "conversation": change.conversation_id,
                            "status": change.status,
                            "kinds": list(change.kinds),
                        }
                    )
                )
        except Exception:  # a broken socket ends this connection only
            log.debug("console socket ended", exc_info=True)
        finally:
            feed.close()
            reader.cancel()
            self._sockets.discard(ws)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _touch(self, session: ConsoleSession) -> None:
        await self._db(self.accounts.touch, session.agent.id)

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking database work of the console, on the database's threads."""
        return await self.desk.db.call(fn, *args, **kwargs)


# --------------------------------------------------------------------------- helpers


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula: one starting with ``= + - @`` or a
    tab or carriage return gets a leading ``'`` (handoff reasons and intent names come
    from a store's data)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _days_by_channel(report: Report) -> list[tuple[dt.date, list[int], int]]:
    """Rows of the per-day table: the day, its conversations per channel of
    ``report.by_channel`` (in that order), and their total; every day of the window."""
    counts = {(d.day, d.channel): d.conversations for d in report.by_day}
    channels = [c for c, _ in report.by_channel]
    rows = []
    for day in report.days():
        values = [counts.get((day, c), 0) for c in channels]
        rows.append((day, values, sum(values)))
    return rows


def _form_fields(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the console's forms send nothing else)."""
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return {}


def _text(data: dict[str, Any], key: str) -> str:
    """A non-empty free text (an agent's message, note or resolution); over the desk's
    length limit is the desk's to refuse."""
    value = client_string(data.get(key), key, max_chars=MAX_BODY)
    if not value.strip():
        raise InputError(f"field {key!r} (a non-empty text) is required")
    return value


def _id(value: object) -> str:
    """A conversation or ticket id from a client: a non-blank single-line string."""
    return client_id(value, "id", max_chars=MAX_ID_CHARS, numbers=False)


def _refusal(exc: BadInput) -> JSONResponse:
    return JSONResponse(
        {"error": f"field {exc}" if exc.field else str(exc)}, status_code=exc.status
    )


def _safe_next(target: str | None) -> str:
    """Only paths inside the console: never an open redirect."""
    if not target or not target.startswith(PREFIX) or target.startswith("//") or "\\" in target:
        return PREFIX
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return PREFIX
    return target


def _same_origin(request: Request | WebSocket) -> bool:
    """A browser's ``Origin`` (when sent) must be this server."""
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or a same-origin GET
        return True
    host = request.headers.get("host") or ""
    return urlsplit(origin).netloc.lower() == host.lower()


def _page_headers(request: Request) -> dict[str, str]:
    host = request.headers.get("host") or ""
    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws://{host} wss://{host}; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
    }
