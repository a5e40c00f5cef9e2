"""Console accounts and login sessions.

Passwords are hashed with argon2id (argon2-cffi's defaults); a hash made with older
parameters is upgraded at the next successful login. A session is a random token in an
HttpOnly cookie; the database keeps its SHA-256, the agent, a CSRF token and an expiry.
Logging out deletes the row, so a stolen cookie stops working at once. An inactive agent's
sessions stop working too.

Errors: ``AgentError`` (an ``InputError``) for names, roles and passwords a caller must fix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bot.errors import InputError
from bot.store.db import Database
from bot.store.models import Agent, AgentSession

ROLES = ("agent", "admin")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
MIN_PASSWORD = 8
SESSION_HOURS = 12
_DUMMY_HASH: str | None = None


class AgentError(InputError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class AgentView:
    id: int
    name: str
    role: str
    active: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class ConsoleSession:
    agent: AgentView
    csrf_token: str


def _view(a: Agent) -> AgentView:
    return AgentView(id=a.id, name=a.name, role=a.role, active=a.active)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)  # SQLite returns naive datetimes


class AgentAccounts:
    def __init__(self, db: Database, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()

    # ------------------------------------------------------------------ accounts
    def add(self, name: str, password: str, role: str = "agent") -> AgentView:
        name = (name or "").strip()
        if not NAME_RE.fullmatch(name):
            raise AgentError("name", "a name is 1-64 letters, digits, spaces, '.', '_' or '-'")
        if role not in ROLES:
            raise AgentError("role", f"role must be one of {', '.join(ROLES)}")
        if len(password or "") < MIN_PASSWORD:
            raise AgentError("password", f"a password has at least {MIN_PASSWORD} characters")
        try:
            with self.db.session() as s:
                agent = Agent(
                    name=name, password_hash=self.hasher.hash(password), role=role, active=True
                )
                s.add(agent)
                s.flush()
                return _view(agent)
        except IntegrityError as exc:
            raise AgentError("name", f"an agent named {name!r} already exists") from exc

    def list(self) -> list[AgentView]:
        with self.db.session() as s:
            return [_view(a) for a in s.scalars(select(Agent).order_by(Agent.name))]

    def get(self, name: str) -> AgentView | None:
        with self.db.session() as s:
            a = s.scalar(select(Agent).where(Agent.name == name))
            return _view(a) if a else None

    def update(
        self,
        agent_id: int,
        *,
        role: str | None = None,
        active: bool | None = None,
        password: str | None = None,
    ) -> AgentView:
        if role is not None and role not in ROLES:
            raise AgentError("role", f"role must be one of {', '.join(ROLES)}")
        if password is not None and len(password) < MIN_PASSWORD:
            raise AgentError("password", f"a password has at least {MIN_PASSWORD} characters")
        with self.db.session() as s:
            a = s.get(Agent, agent_id)
            if a is None:
                raise AgentError("agent", "no such agent")
            if role is not None:
                a.role = role
            if active is not None:
                a.active = active
                if not active:
                    s.execute(delete(AgentSession).where(AgentSession.agent_id == a.id))
            if password is not None:
                a.password_hash = self.hasher.hash(password)
                s.execute(delete(AgentSession).where(AgentSession.agent_id == a.id))
            return _view(a)

    def authenticate(self, name: str, password: str) -> AgentView | None:
        """The active agent with this name and password, else ``None`` (same work either
        way, so timing does not tell whether a name exists)."""
        global _DUMMY_HASH
        with self.db.session() as s:
            a = s.scalar(select(Agent).where(Agent.name == (name or "").strip()))
            if a is None or not a.active:
                if _DUMMY_HASH is None:
                    _DUMMY_HASH = self.hasher.hash(secrets.token_hex(8))
                try:
                    self.hasher.verify(_DUMMY_HASH, password or "")
                except (VerificationError, InvalidHashError):
                    pass
                return None
            try:
                self.hasher.verify(a.password_hash, password or "")
            except (VerificationError, InvalidHashError):
                return None
            if self.hasher.check_needs_rehash(a.password_hash):
                a.password_hash = self.hasher.hash(password)
            a.last_seen_at = _now()
            return _view(a)

    # ------------------------------------------------------------------ sessions
    def open_session(self, agent: AgentView) -> tuple[str, ConsoleSession]:
        """A new session: (cookie token, session)."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        with self.db.session() as s:
            s.execute(delete(AgentSession).where(AgentSession.expires_at < _now()))
            s.add(
                AgentSession(
                    token_hash=_token_hash(token),
                    agent_id=agent.id,
                    csrf_token=csrf,
                    expires_at=_now() + dt.timedelta(hours=SESSION_HOURS),
                )
            )
        return token, ConsoleSession(agent=agent, csrf_token=csrf)

    def session(self, token: str | None) -> ConsoleSession | None:
        if not token or len(token) > 200:
            return None
        with self.db.session() as s:
            row = s.get(AgentSession, _token_hash(token))
            if row is None or _aware(row.expires_at) < _now():
                return None
            a = s.get(Agent, row.agent_id)
            if a is None or not a.active:
                return None
            return ConsoleSession(agent=_view(a), csrf_token=row.csrf_token)

    def close_session(self, token: str | None) -> None:
        if token:
            with self.db.session() as s:
                s.execute(delete(AgentSession).where(AgentSession.token_hash == _token_hash(token)))

    def touch(self, agent_id: int) -> None:
        with self.db.session() as s:
            a = s.get(Agent, agent_id)
            if a is not None:
                a.last_seen_at = _now()

    def online(self, within_minutes: float = 5.0) -> int:
        since = _now() - dt.timedelta(minutes=within_minutes)
        with self.db.session() as s:
            return len(
                s.scalars(
                    select(Agent.id).where(Agent.active.is_(True), Agent.last_seen_at >= since)
                ).all()
            )
