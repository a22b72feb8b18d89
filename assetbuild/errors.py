"""The exception tree. Every error assetbuild raises is one of these::

    AssetbuildError
    ├── UserError                 the user must change something; the CLI exits 2
    │   ├── ManifestError         assetbuild.toml is wrong: carries file, line and key
    │   │   └── ManifestErrors    several independent manifest problems, reported at once
    │   └── UsageError            a command-line argument is wrong (unknown target, bad flag value)
    ├── BudgetError               the build's estimate exceeds max_cost (exit 2, nothing was sent)
    ├── ProviderError             a provider could not make an image; carries any images it did return
    │   ├── ProviderUnavailable   connection errors, timeouts, 5xx, 429 after retries: a fallback may take over
    │   ├── ProviderRefused       a content-policy refusal: never retried, never falls back
    │   ├── ProviderRequestError  any other 4xx (bad key, bad field, no credit): never retried
    │   └── Interrupted           Ctrl-C: the provider stopped waiting; a job in flight stays saved
    ├── DeriveError               a derived asset's steps cannot be applied to its image (a crop box outside it)
    ├── BuildInterrupted          Ctrl-C stopped a build; what was in flight (the CLI exits 130)
    ├── LockfileError             assetbuild.lock cannot be read
    │   └── LockfileTooNew        it was written by a newer assetbuild: never rewritten, even by lock resolve
    └── CacheError                the cache cannot be read or written
        └── RemoteError           the remote cache cannot be reached, timed out or denied access
            └── RemoteNotFound    its bucket does not exist (also a UserError: the CLI exits 2)

Foreign exceptions (httpx, tomllib, pydantic, PIL, diskcache, fsspec/s3fs/botocore) are caught in the module that
imports the library and re-raised as one of these ``from`` the original.
"""

from __future__ import annotations

from typing import Any


class AssetbuildError(Exception):
    """Base of every assetbuild error."""


class UserError(AssetbuildError):
    """Something the user must fix; the CLI prints one line and exits 2."""


def one_line(text: str) -> str:
    """``text`` with every non-printable character (newlines, NUL, U+2028...) escaped, so an
    error that quotes hostile input is still one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class ManifestError(UserError):
    """A problem in the manifest, located by file, line and key."""

    def __init__(self, message: str, *, file: str = "", line: int | None = None, key: str = ""):
        self.file = file
        self.line = line
        self.key = key
        self.detail = message
        where = file
        if file and line:
            where = f"{file}:{line}"
        parts = [p for p in (where, key) if p]
        super().__init__(one_line(": ".join(parts + [message])))

    @property
    def errors(self) -> "tuple[ManifestError, ...]":
        """The independent problems this error reports: itself (see ManifestErrors)."""
        return (self,)


class ManifestErrors(ManifestError):
    """Several independent problems in the manifest, reported at once. ``errors`` lists them;
    ``str()`` gives one line per problem (the CLI prefixes each with ``error: ``). Its own
    file, line, key and detail are the first problem's."""

    def __init__(self, errors: "list[ManifestError] | tuple[ManifestError, ...]"):
        flat = tuple(e for err in errors for e in err.errors)
        if not flat:
            raise ValueError("ManifestErrors needs at least one error")
        first = flat[0]
        UserError.__init__(self, "\n".join(str(e) for e in flat))
        self.file, self.line, self.key, self.detail = first.file, first.line, first.key, first.detail
        self._errors = flat

    @property
    def errors(self) -> "tuple[ManifestError, ...]":
        return self._errors


class UsageError(UserError):
    """A command-line argument is wrong."""


class BudgetError(UserError):
    """The estimated cost exceeds the budget; nothing was sent."""


class ProviderError(AssetbuildError):
    """A provider failed to produce an asset.

    ``images`` holds whatever the provider did return before failing (a partial batch), so
    the executor can cache it: an image that was paid for is never lost.

    ``submitted`` is True when the host may already have accepted (and billed) the job: the
    executor then never falls back to another host for it. ``job_key`` names a saved job that
    reached its end: the executor forgets it once ``images`` are safe in the cache (None: the
    job stays saved, so a rerun resumes it).
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        code: str | None = None,
        status: int | None = None,
        images: tuple[bytes, ...] = (),
        submitted: bool = False,
        job_key: str | None = None,
    ):
        self.provider = provider
        self.detail = message
        self.code = code
        self.status = status
        self.images = images
        self.submitted = submitted
        self.job_key = job_key
        self.billed: str | None = None  # the request id of a job the host billed whose images never came
        prefix = f"{provider}: " if provider else ""
        suffix = f" [{code}]" if code else ""
        super().__init__(f"{prefix}{message}{suffix}")

    def billed_for(self, request_id: str) -> "ProviderError":
        """Say that the host made (and billed) job ``request_id`` but its images could not be
        fetched: the message says so, and the executor keeps its inputs from being paid for
        again until the user asks (``build --retry-failed``)."""
        self.billed = request_id
        prefix = f"{self.provider}: " if self.provider else ""
        suffix = f" [{self.code}]" if self.code else ""
        self.detail = f"job {request_id} was billed, but its images cannot be fetched: {self.detail}"
        self.args = (f"{prefix}{self.detail}{suffix}",)
        return self


class ProviderUnavailable(ProviderError):
    """The host could not be reached or kept failing (5xx, 429, timeouts) after retries."""

    retryable = True


class ProviderRefused(ProviderError):
    """The host refused the content (moderation). Not retried, no fallback."""


class ProviderRequestError(ProviderError):
    """The host rejected the request (4xx other than 429). Not retried, no fallback."""


class Interrupted(ProviderError):
    """The build was interrupted (Ctrl-C) while this provider worked: it stopped waiting at
    once. A job the host accepted stays saved, so a rerun resumes it without paying again."""


class DeriveError(AssetbuildError):
    """A derived asset's steps cannot be applied to the image they get (a crop larger than it,
    an .ico of a non-square image, a source that does not decode). Fails that asset only."""


class BuildInterrupted(AssetbuildError):
    """Ctrl-C stopped a build: nothing new was started, and the assets in flight were waited
    for (``abandoned``: a second Ctrl-C stopped the wait)."""

    def __init__(self, in_flight: list[str], *, abandoned: bool = False):
        self.in_flight = in_flight
        self.abandoned = abandoned
        names = ", ".join(in_flight)
        if abandoned:
            message = (f"interrupted twice: stopped without waiting for {names}; a job a host accepted stays "
                       "saved and a rerun resumes it, but a synchronous request (modelark, volcengine) that "
                       "was under way may have been billed")
        elif in_flight:
            message = (f"interrupted; {len(in_flight)} asset(s) were in flight ({names}): jobs the hosts accepted "
                       "stay saved and a rerun resumes them without paying again; everything finished is kept")
        else:
            message = "interrupted; everything finished so far is kept (rerun to continue)"
        super().__init__(message)


class LockfileError(AssetbuildError):
    """assetbuild.lock is unreadable or of an unknown version."""


class LockfileTooNew(LockfileError):
    """assetbuild.lock was written by a newer assetbuild: never rewritten by this one."""


class CacheError(AssetbuildError):
    """The cache could not be read or written."""


class RemoteError(CacheError):
    """The remote cache could not be reached, timed out or denied access. A build turns the
    remote off for the rest of the run (one warning); the cache commands report it."""


def clip(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error may quote hostile input, but
    stays readable (a 5,000-digit number, a 300-character name)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 5]}...{text[-2:]}"


class RemoteNotFound(RemoteError, UserError):
    """The remote cache's bucket does not exist: the URL (or endpoint) is wrong."""
