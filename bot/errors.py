"""Clerk's error tree. Every error Clerk raises on purpose derives from ``ClerkError``
and carries the data a caller needs to react, not only a message.

    ClerkError
    ├── ConfigError                 bad or missing configuration value
    │   └── ProjectNotFound         the folder is not a bot project (root, missing parts)
    ├── DataError                   training data / knowledge files that cannot be used
    │   └── TrainingDataError       (path, line) of malformed Rasa YAML or CSV
    ├── ModelNotTrainedError        a model artifact is missing (path)
    ├── InputError                  a request the caller must fix (HTTP 400)
    │   ├── MessageTooLongError     (length, limit)
    │   └── UnknownCustomer         no profile, conversation or ticket has this id (customer_id)
    ├── FeedbackRefused             a CSAT rating that is not recorded (conversation_id,
    │   │                           reason; status: the HTTP status, each subclass its own)
    │   ├── BadRating               not one of FEEDBACK_RATINGS (400)
    │   ├── UnknownConversation     no such conversation in the caller's channel (404)
    │   ├── FeedbackNotAsked        the bot never asked this conversation for a rating (409)
    │   └── FeedbackTooLate         asked in a session that has ended (409)
    ├── StoreError                  database failure during a turn (the turn is rolled back)
    ├── Unavailable                 try again later (HTTP 503 with Retry-After: retry_after)
    │   ├── Overloaded              every database thread stayed busy (resource)
    │   ├── DatabaseUnavailable     the database could not be reached (restarting, failed over)
    │   └── ConversationBusy        another turn held the conversation too long, or took it
    │                               over (conversation_id); nothing of this turn was stored
    ├── ActionError                 a custom action failed
    │   └── ActionServerUnavailable the remote action server cannot be reached (url)
    └── KnowledgeError              retrieval index missing or broken
"""

from __future__ import annotations


class ClerkError(Exception):
    """Base of every error Clerk raises on purpose."""


class ConfigError(ClerkError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class ProjectNotFound(ConfigError):
    def __init__(self, root: str, missing: list[str]) -> None:
        super().__init__(
            "project",
            f"{root} is not a Clerk project: missing {'; '.join(missing)}. Create one with "
            "`clerk init`, or point --project (CLERK_PROJECT) at a project folder.",
        )
        self.root = root
        self.missing = missing


class DataError(ClerkError):
    pass


class TrainingDataError(DataError):
    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class ModelNotTrainedError(ClerkError):
    def __init__(self, path: str) -> None:
        super().__init__(f"no trained model at {path}; run `clerk train`")
        self.path = path


class InputError(ClerkError):
    """A request the caller must fix. Channels map it to HTTP 400."""


class MessageTooLongError(InputError):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"message has {length} characters; the limit is {limit}")
        self.length = length
        self.limit = limit


class UnknownCustomer(InputError):
    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"no customer {customer_id!r}: no profile, conversation or ticket has this id"
        )
        self.customer_id = customer_id


class FeedbackRefused(ClerkError):
    """A shopper's rating that is not recorded (nothing is stored). ``reason``: a short
    code for clients (``bad_rating``, ``unknown_conversation``, ``not_asked``,
    ``session_ended``); ``status``: the HTTP status a channel answers with. Not an
    ``InputError``: only a bad rating is the caller's to fix (400); the others say what the
    conversation is (404, 409)."""

    reason = "refused"
    status = 400

    def __init__(self, message: str, conversation_id: str | None = None) -> None:
        super().__init__(message)
        self.conversation_id = conversation_id


class BadRating(FeedbackRefused):
    reason = "bad_rating"
    status = 400

    def __init__(self, rating: object, allowed: tuple[str, ...]) -> None:
        super().__init__(f"'rating' must be one of {', '.join(map(repr, allowed))}")
        self.rating = rating
        self.allowed = allowed


class UnknownConversation(FeedbackRefused):
    reason = "unknown_conversation"
    status = 404

    def __init__(self, conversation_id: str) -> None:
        super().__init__("no such conversation", conversation_id)


class FeedbackNotAsked(FeedbackRefused):
    reason = "not_asked"
    status = 409

    def __init__(self, conversation_id: str) -> None:
        super().__init__("this conversation was not asked for a rating", conversation_id)


class FeedbackTooLate(FeedbackRefused):
    """The rating of a session that has ended (expired, or a new one started): it would
    rate another conversation than the shopper's current one."""

    reason = "session_ended"
    status = 409

    def __init__(self, conversation_id: str) -> None:
        super().__init__("the conversation this rating was asked in has ended", conversation_id)


class StoreError(ClerkError):
    pass


class Unavailable(ClerkError):
    """The request could not be served now and may be retried after ``retry_after``
    seconds; nothing of it was stored. Channels answer HTTP 503 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(Unavailable):
    def __init__(self, resource: str, retry_after: float = 1.0) -> None:
        super().__init__(f"{resource} is busy; try again shortly", retry_after)
        self.resource = resource


class DatabaseUnavailable(Unavailable):
    def __init__(self, reason: str, retry_after: float = 2.0) -> None:
        super().__init__("the store's database is unavailable; try again shortly", retry_after)
        self.reason = reason


class ConversationBusy(Unavailable):
    def __init__(self, conversation_id: str, retry_after: float = 1.0) -> None:
        super().__init__(
            "this conversation is busy with another message; try again shortly", retry_after
        )
        self.conversation_id = conversation_id


class ActionError(ClerkError):
    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"action {action!r} failed: {message}")
        self.action = action


class ActionServerUnavailable(ActionError):
    def __init__(self, action: str, url: str, message: str) -> None:
        super().__init__(action, f"action server {url} unavailable: {message}")
        self.url = url


class KnowledgeError(ClerkError):
    pass
